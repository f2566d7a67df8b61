//! LoongArch's side of the partition seam (`partition::arch::PartitionArch`): the GPA-table
//! format both backends share, per-CPU translation set-up (the page-walk geometry, an all-invalid
//! high-half root, IPIs and the timer unmasked), local flushes by address-space id, kicks (and
//! flush-shootdown IPIs) through the IPI mailbox, the stable counter and the core timer (one-shot
//! countdowns to the vCPU's next virtual-timer deadline or, under LVZ, to the re-check of an IPI
//! line the guest could not take, whichever comes first), and the choice of backend: LVZ when
//! CPUCFG2 reports it and every partition gets a GID of its own, the deprivileged backend
//! otherwise. Under LVZ the vCPU is `arch_loongarch::lvz::LvzVcpu` on [`RealWorld`], flushes are
//! INVTLB by GID (and address), and each CPU runs LVZ's enable sequence (GCFG policy, USETGID)
//! before its first guest. Otherwise the vCPU is `arch_loongarch::depriv::DeprivilegedVcpu` on
//! [`deprivileged::RealDepriv`], and flushes are INVTLB by ASID (and address).

use super::deprivileged;
use super::device_irq;
use super::host_irq;
use super::lvz_world::RealWorld;
use super::Current;
use crate::board::BOARD;
use crate::partitions::{Partition, TableFrames};
use alloc::format;
use alloc::string::String;
use arch_loongarch::cpucfg::{self, CpuCfg};
use arch_loongarch::depriv::asid;
use arch_loongarch::device_irq::{Target, HOST_PIN_IS};
use arch_loongarch::lvz::real::RealLvz;
use arch_loongarch::lvz::{self, LvzVcpu, VcpuConfig};
use arch_loongarch::stage2::{GpaTable16K, PAGE_SHIFT_16K, PWCH_16K, PWCL_16K};
use arch_loongarch::{csr, instr, iocsr, ipi, timer};
use core::fmt::Write;
use core::sync::atomic::AtomicBool;
use mmu::{Flush, Hpa, NoTlb, StageTwoTable};
use partition::arch::{BootAbi, DeviceRoute, GuestBoot, PartitionArch, VirtualUartAt};
use partition::PartitionId;
use spin::Once;
use vcpu::{ArchVcpu, Completion, Delivery, VmExit};

/// The IPI vector kicks use (any vector raises ESTAT.IS bit 12).
const KICK_VECTOR: u32 = 1;
/// ECFG.LIE bits of the IPI, timer and device (EIOINTC pin) lines.
const LIE_IPI: u64 = 1 << 12;
const LIE_TIMER: u64 = timer::LINE;
const LIE_DEVICE: u64 = HOST_PIN_IS as u64;
/// A range flush longer than this many pages drops the whole address space instead.
const RANGE_PAGES_MAX: u64 = 64;

/// An empty GPA table whose root goes into PGDH: a partition access to the high half walks into
/// invalid tables and faults, never into physical address 0.
static HIGH_ROOT: Once<StageTwoTable<GpaTable16K, TableFrames, NoTlb>> = Once::new();

/// The backend decision, made once: `Some(GID bits)` for LVZ.
static LVZ: Once<Option<u32>> = Once::new();
/// The backend line for the log.
static BACKEND: Once<String> = Once::new();

/// Whether the CPU implements LVZ (CPUCFG2.LVZP).
fn lvz_present() -> bool {
    CpuCfg {
        words: [0, 0, cpucfg::read(2), 0, 0, 0],
    }
    .lvz()
    .is_some()
}

/// `Some(GID bits)` when partitions run under LVZ: the CPU has it and the implemented GID width
/// gives every partition its own non-zero GID. All CPUs of a board are the same part, so the boot
/// CPU's answer holds for all.
fn lvz_gid_bits() -> Option<u32> {
    *LVZ.call_once(|| {
        if !lvz_present() {
            return None;
        }
        let bits = lvz::gid_bits(&mut RealLvz);
        lvz::gids_fit(BOARD.partitions.len() as u32, bits).then_some(bits)
    })
}

/// Partition `id`'s GID; only called under LVZ, where the choice checked that every id has one.
fn gid(id: PartitionId, bits: u32) -> u64 {
    lvz::gid_of(id, bits).expect("the backend choice checked every partition's GID")
}

/// A vCPU of either backend. The LVZ one carries its guest CSR image and is several times the
/// other's size; one lives per CPU, on the run loop's stack, so the difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum LaVcpu {
    Deprivileged(deprivileged::Vcpu),
    Lvz(LvzVcpu<RealWorld>),
}

impl ArchVcpu for LaVcpu {
    fn run(&mut self) -> VmExit {
        match self {
            Self::Deprivileged(v) => v.run(),
            Self::Lvz(v) => v.run(),
        }
    }

    fn complete(&mut self, completion: Completion) {
        match self {
            Self::Deprivileged(v) => v.complete(completion),
            Self::Lvz(v) => v.complete(completion),
        }
    }

    fn deliver_upcall(&mut self, delivery: Delivery) -> bool {
        match self {
            Self::Deprivileged(v) => v.deliver_upcall(delivery),
            Self::Lvz(v) => v.deliver_upcall(delivery),
        }
    }

    fn return_from_upcall(&mut self) {
        match self {
            Self::Deprivileged(v) => v.return_from_upcall(),
            Self::Lvz(v) => v.return_from_upcall(),
        }
    }

    fn set_irq_lines(&mut self, lines: u32) {
        if let Self::Lvz(v) = self {
            v.set_irq_lines(lines);
        }
    }
    /// No IDT to inject into: LoongArch guests get interrupts as upcalls or lines.
    fn inject_interrupt(&mut self, _vector: u8) -> bool {
        false
    }
}

impl PartitionArch for Current {
    type Format = GpaTable16K;
    type Frames = TableFrames;
    type Vcpu = LaVcpu;
    const VIRTUAL_UART: VirtualUartAt = VirtualUartAt::Mmio(arch_loongarch::linux::UART);
    // A line of the PCH-PIC view; its vector reaches a Linux partition through its EIOINTC view.
    const VIRTUAL_UART_LINE: Option<u32> = Some(arch_loongarch::linux::UART_LINE);

    fn stage2_format() -> GpaTable16K {
        GpaTable16K::default()
    }

    fn backend() -> &'static str {
        BACKEND.call_once(|| match lvz_gid_bits() {
            Some(bits) => {
                let mut s = String::from("LVZ (");
                for (i, p) in BOARD.partitions.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    let _ = write!(s, "{sep}GID {} for {}", gid(i as PartitionId, bits), p.name);
                }
                s.push(')');
                s
            }
            None if lvz_present() => format!(
                "deprivileged (LVZ present, but {} partitions exceed its {} GID bits)",
                BOARD.partitions.len(),
                lvz::gid_bits(&mut RealLvz)
            ),
            None => String::from("deprivileged (LVZ absent)"),
        })
    }

    fn prepare_cpu() {
        let high = HIGH_ROOT.call_once(|| {
            StageTwoTable::new(GpaTable16K::default(), TableFrames, NoTlb)
                .expect("memory for the high-half invalid root")
        });
        // SAFETY: the hypervisor runs only in the DMW windows, so the page-walk geometry, the
        // page-table roots and the TLB are the partitions' alone; nothing is translated through
        // them until a guest runs. Unmasking the IPI and device lines in ECFG has no effect while
        // CRMD.IE is clear in the hypervisor; it lets a kick or a device interrupt a guest. Pending IPIs (the wake-up)
        // are acknowledged so the first guest entry does not exit at once.
        unsafe {
            csr::write::<{ csr::PWCL }>(PWCL_16K);
            csr::write::<{ csr::PWCH }>(PWCH_16K);
            csr::write::<{ csr::STLBPS }>(PAGE_SHIFT_16K);
            csr::xchg::<{ csr::TLBREHI }>(PAGE_SHIFT_16K, 0x3f);
            csr::xchg::<{ csr::TLBIDX }>(PAGE_SHIFT_16K << 24, 0x3f << 24);
            csr::write::<{ csr::PGDH }>(high.root().as_u64());
            let lie = LIE_IPI | LIE_TIMER | LIE_DEVICE;
            csr::xchg::<{ csr::ECFG }>(lie, lie | 0x7_0000);
            csr::write::<{ timer::TCFG }>(timer::OFF);
            csr::write::<{ csr::TICLR }>(1);
            iocsr::write32(iocsr::IPI_ENABLE, u32::MAX);
            iocsr::write32(iocsr::IPI_CLEAR, iocsr::read32(iocsr::IPI_STATUS));
        }
        instr::invtlb_all();
        if lvz_gid_bits().is_some() {
            // GCFG policy, guest state cleared, guest TLB flushed, root TLB ops by TGID.
            lvz::enable(&mut RealLvz);
        }
    }

    /// The kick flag is not needed: a kick is an IPI, which stays pending until taken.
    fn create_vcpu(
        partition: &'static Partition,
        boot: GuestBoot,
        _kick: &'static AtomicBool,
    ) -> Self::Vcpu {
        // Real-mode starts come from x86 STARTUP IPIs, which no LoongArch guest can send.
        debug_assert!(!boot.real_mode, "an x86 real-mode start on LoongArch");
        // The image was just copied in by this CPU: make its fetches see it, whichever backend
        // runs it.
        instr::ibar();
        let Some(bits) = lvz_gid_bits() else {
            if boot.abi == BootAbi::Exact {
                // A kernel's first instructions are privileged (CSR writes): at PLV3 they stop
                // the partition as violations, so say why first.
                crate::println!(
                    "partition {}: a Linux kernel needs LVZ; the deprivileged backend runs only test guests",
                    partition.name()
                );
            }
            return LaVcpu::Deprivileged(deprivileged::create(partition, boot));
        };
        let mut args = boot.args;
        if boot.abi == BootAbi::TestGuest {
            args[1] |= lvz::FLAG_HVCL;
        }
        LaVcpu::Lvz(LvzVcpu::new(
            RealWorld::new(partition),
            VcpuConfig {
                gid: gid(partition.id, bits),
                root: partition.table().root().as_u64(),
                entry: boot.entry,
                args,
                // The guest's CPUID CSR shows its index inside the partition.
                index: u64::from(boot.vcpu),
                counter_offset: 0,
            },
        ))
    }

    /// The GID or ASID names the partition's translations; the root is not needed.
    fn flush_local(id: PartitionId, _root: Hpa, what: Flush) {
        if let Some(bits) = lvz_gid_bits() {
            lvz::flush(&mut RealLvz, gid(id, bits), what);
            return;
        }
        match what {
            Flush::None => {}
            Flush::Range { start, end }
                if (end.as_u64() - start.as_u64()) >> PAGE_SHIFT_16K <= RANGE_PAGES_MAX =>
            {
                let mut va = start.as_u64();
                while va < end.as_u64() {
                    instr::invtlb_asid_addr(asid(id), va);
                    va += 1 << PAGE_SHIFT_16K;
                }
            }
            _ => instr::invtlb_asid(asid(id)),
        }
    }

    /// Returns at once: an idle LoongArch vCPU (deprivileged: never; LVZ: its `idle` exits as
    /// a GSPR) executes its idle instruction again, a busy wait. Waiting with the core's own
    /// `idle` is not written.
    fn idle(_deadline: Option<u64>, _kick: &AtomicBool, _taken: &mut dyn FnMut(u32)) {}

    fn send_flush_ipi(cpu: usize) {
        Self::kick(cpu);
    }

    /// Every LoongArch CPU can run partitions: LVZ where CPUCFG2 has it, the deprivileged backend
    /// everywhere else.
    fn available() -> bool {
        true
    }

    /// A guest's `cpucfg` word `leaf` (an LVZ guest's exits as `CpuCfg`; the deprivileged
    /// backend's executes natively): the real word, filtered (`cpucfg::guest_word`).
    fn cpuid(leaf: u32, _subleaf: u32) -> [u32; 4] {
        [cpucfg::guest_word(leaf, cpucfg::read(leaf)), 0, 0, 0]
    }

    /// The physical PCH-PIC line and its EIOINTC vector (`device_irq`): to the core of the CPU
    /// that runs the chosen vCPU, or masked. A route the chips cannot express (a core EIOINTC
    /// cannot name) leaves the line masked and says so.
    fn route_device_line(line: u32, to: Option<DeviceRoute>) {
        let target = to.map(|r| Target {
            core: r.cpu as u32,
            level: r.level,
            active_low: r.active_low,
        });
        if let Err(e) = device_irq::route(line, target) {
            crate::println!("device line {line}: not routed ({e:?}), left masked");
        }
    }

    /// The lines pending on this CPU's EIOINTC when its pin made the exit, acknowledged.
    fn device_lines(vector: u32) -> u64 {
        if vector == host_irq::DEVICE_VECTOR {
            device_irq::take()
        } else {
            0
        }
    }

    fn iocsr_read64(addr: u64) -> u64 {
        arch_loongarch::iocsr::read64(addr)
    }

    fn kick(cpu: usize) {
        // SAFETY: the target handles IPIs: in a guest it exits (ECFG unmasks the line), in the
        // hypervisor the pending bit waits for its next guest entry.
        unsafe { ipi::send_ipi(cpu as u32, KICK_VECTOR) };
    }

    fn now() -> u64 {
        instr::rdtime()
    }

    fn counter_hz() -> u64 {
        *COUNTER_HZ.call_once(|| CpuCfg::read().counter_hz().unwrap_or(0))
    }

    fn arm_timer(deadline: Option<u64>) {
        host_irq::arm_virtual_timer(deadline);
    }

    /// The kick flag is not needed here: a kick is an IPI that stays pending, so `idle` ends
    /// at once if one came before it.
    fn wait(_kick: &AtomicBool) {
        // SAFETY: no vCPU runs on this CPU, so its timer is free; `idle` with CRMD.IE clear wakes
        // on the timer or an IPI (both enabled in ECFG) without taking an exception. The IPI
        // status is cleared afterwards: a kick to a waiting CPU carries no message (requests live
        // in memory), and a pending bit would end every later wait at once.
        unsafe {
            csr::write::<{ timer::TCFG }>(timer::oneshot(WAIT_TICKS));
            instr::idle();
            csr::write::<{ timer::TCFG }>(timer::OFF);
            csr::write::<{ csr::TICLR }>(1);
            iocsr::write32(iocsr::IPI_CLEAR, iocsr::read32(iocsr::IPI_STATUS));
        }
        // A device line still pending here was masked since (its partition's run ended): no one
        // takes it, and its pin would end every later wait at once.
        if csr::read::<{ csr::ESTAT }>() as u32 & host_irq::IS_DEVICE != 0 {
            device_irq::take();
        }
    }
}

/// How long a waiting CPU halts before it looks again (100 µs at 100 MHz).
const WAIT_TICKS: u64 = 10_000;

/// The stable counter's rate, read once.
static COUNTER_HZ: Once<u64> = Once::new();
