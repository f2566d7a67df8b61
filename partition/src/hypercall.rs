//! Hypercalls, as `vcpu/README.md` defines them: decoded and argument-checked by
//! `vcpu::Hypercall::decode`, then checked here against the partition table (only the manager may
//! make management calls: -3; buffers must lie in the caller's memory: -6; the target must exist:
//! -4, and be in a state that allows the request: -5) before anything is done. The vCPU calls
//! (identity, start, IPI, timer, upcalls, IRQ routing) act on the caller's own partition only and
//! go to `vintr`.

use crate::arch::PartitionArch;
use crate::vintr::{self, VirtualInterrupts};
use crate::{guest_mem, manage, Partition, Partitions, State};
use core::sync::atomic::Ordering;
use vcpu::hypercall::{encode_result, ABI_VERSION};
use vcpu::{Action, Completion, Hypercall, HypercallError, StopReason};

type Result = core::result::Result<u64, HypercallError>;

fn reply(r: Result) -> Action {
    Action::Resume(Completion::Value(encode_result(r)))
}

fn console_write<A: PartitionArch>(p: &Partition<A>, gpa: u64, len: u64) -> Result {
    let bytes = guest_mem::host_slice(p, gpa, len, false).ok_or(HypercallError::BadAddress)?;
    let text = core::str::from_utf8(bytes).unwrap_or("<not UTF-8>");
    for line in text.trim_end_matches('\n').split('\n') {
        if !text.is_empty() {
            say!(A, "[{}] {}", p.name(), line);
        }
    }
    Ok(len)
}

fn stop<A: PartitionArch>(
    all: &Partitions<A>,
    caller: &Partition<A>,
    id: vcpu::PartitionId,
) -> Result {
    let t = all.target(id)?;
    if t.id == caller.id || t.state() != State::Running {
        return Err(HypercallError::BadState);
    }
    // Timed from here to the moment every vCPU is out of its guest (`run::run_partition`): the
    // figure of the boot tests' spin scenario. Never 0, which means "none pending".
    let _ =
        t.stop_asked_at
            .compare_exchange(0, A::now().max(1), Ordering::SeqCst, Ordering::SeqCst);
    t.request_stop();
    Ok(0)
}

fn start<A: PartitionArch>(all: &Partitions<A>, id: vcpu::PartitionId) -> Result {
    let t = all.target(id)?;
    if !matches!(t.state(), State::Stopped | State::Finished) {
        return Err(HypercallError::BadState);
    }
    t.request_start();
    if let Some(v) = t.vcpus.first().filter(|v| v.joined()) {
        t.kick(v.cpu);
    }
    Ok(0)
}

/// Handles hypercall `nr` with `args` from vCPU `vcpu` of partition `p`, whose interrupt state is
/// `irqs`.
pub fn handle<A: PartitionArch>(
    all: &'static Partitions<A>,
    p: &'static Partition<A>,
    vcpu: u32,
    irqs: &mut VirtualInterrupts<A>,
    nr: u64,
    args: [u64; 6],
) -> Action {
    let call = match Hypercall::decode(nr, args) {
        Ok(c) => c,
        Err(e) => return reply(Err(e)),
    };
    if call.needs_manager() && !p.config.manager {
        return reply(Err(HypercallError::Permission));
    }
    let r = match call {
        Hypercall::Version => Ok(ABI_VERSION),
        Hypercall::ConsoleWrite { gpa, len } => console_write(p, gpa, len),
        Hypercall::SelfId => Ok(u64::from(p.id)),
        Hypercall::PowerOff { code } => return Action::Stop(StopReason::PowerOff { code }),
        Hypercall::VcpuId => Ok(u64::from(vcpu)),
        Hypercall::VcpuCount => Ok(p.vcpus.len() as u64),
        Hypercall::VcpuStart { index, entry, arg } => vintr::vcpu_start(p, vcpu, index, entry, arg),
        Hypercall::SendIpi { index } => vintr::send_ipi(p, vcpu, index),
        Hypercall::TimerSet { ns, periodic } => irqs.timer_set(ns, periodic),
        Hypercall::UpcallSet { entry, stack } => irqs.upcall_set(entry, stack),
        Hypercall::UpcallReturn => {
            if irqs.upcall_return() {
                return Action::ReturnFromUpcall;
            }
            Err(HypercallError::BadState)
        }
        Hypercall::IrqRoute { line, index } => vintr::irq_route(p, line, index),
        Hypercall::PartitionCount => Ok(all.all().len() as u64),
        Hypercall::PartitionState { id } => all.target(id).map(|t| t.state() as u64),
        Hypercall::PartitionStop { id } => stop(all, p, id),
        Hypercall::PartitionStart { id } => start(all, id),
        Hypercall::DirtyLogStart { id } => manage::dirty_log_start(all, id),
        Hypercall::DirtyLogStop { id } => manage::dirty_log_stop(all, id),
        Hypercall::DirtyHarvest {
            id,
            bitmap_gpa,
            bytes,
        } => manage::dirty_harvest(all, p, id, bitmap_gpa, bytes),
        Hypercall::AgeStart { id } => manage::age_start(all, id),
        Hypercall::AgeHarvest { id } => manage::age_harvest(all, id),
        Hypercall::ExitCounters { id, gpa, bytes } => manage::exit_counters(all, p, id, gpa, bytes),
        Hypercall::VcpuInfo { id, gpa, bytes } => manage::vcpu_info(all, p, id, gpa, bytes),
    };
    reply(r)
}
