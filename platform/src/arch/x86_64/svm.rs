//! AMD SVM on each CPU: turning it on (EFER.SVME and NXE, a host save area for VMRUN, a second
//! page for the host's VMSAVE/VMLOAD state), what the CPU offers, and the TLB flushes the
//! partition layer asks for. A CPU runs one vCPU at a time, so the ASID is per CPU (index + 1);
//! a flush request only marks the CPU, and its next VMRUN carries the flush in the VMCB's TLB
//! control (this ASID when the CPU can flush by ASID, everything otherwise; the vCPU decides,
//! `arch_x86::svm::vcpu`). Requests come from the CPU itself, between exits, so no guest runs on
//! a stale translation. The pages and the request live in the CPU's slot (`percpu::SvmCpu`).

use super::percpu;
use arch_x86::svm::{self, SvmFeatures};
use core::sync::atomic::Ordering;
use spin::Once;

static FEATURES: Once<SvmFeatures> = Once::new();

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The SVM features of this machine (every CPU reports the same), read once.
pub fn features() -> SvmFeatures {
    *FEATURES.call_once(|| SvmFeatures::read().unwrap_or_default())
}

/// Whether this machine can run partitions under SVM: SVM with nested paging.
pub fn usable() -> bool {
    SvmFeatures::read().is_some_and(|f| f.nested_paging)
}

/// Prints what SVM offers and which missing features the backend works around.
pub fn report() {
    let f = features();
    log::info!(
        "svm: revision {}, {} ASIDs, nested paging {}, NRIP save {}, flush by ASID {}, decode assists {}, VMCB clean bits {}",
        f.revision,
        f.asids,
        yes(f.nested_paging),
        yes(f.nrip_save),
        yes(f.flush_by_asid),
        yes(f.decode_assists),
        yes(f.vmcb_clean)
    );
    if !f.nrip_save {
        log::info!("svm: no NRIP save: RIP advanced by instruction length (IOIO: EXITINFO2)");
    }
    if !f.flush_by_asid {
        log::info!("svm: no flush by ASID: a stage-2 flush drops every ASID's TLB entries");
    }
    if !f.decode_assists {
        log::info!(
            "svm: no decode assists: none needed (x86 partitions' virtual devices are ports)"
        );
    }
}

/// Turns SVM on for CPU `cpu` when the CPU has SVM with nested paging.
pub fn enable(cpu: usize) -> Result<Option<&'static str>, &'static str> {
    if !usable() {
        return Ok(None);
    }
    // SAFETY: the CPU reports SVM, so VM_CR exists.
    if !unsafe { svm::firmware_allows() } {
        return Err("SVM disabled by firmware (VM_CR.SVMDIS)");
    }
    if usize::try_from(features().asids).unwrap_or(0) <= cpu + 1 {
        return Err("SVM: not enough ASIDs for one per CPU");
    }
    let hsave = crate::memory::alloc_frame().ok_or("SVM: no free frame for the host save area")?;
    let Some(host_state) = crate::memory::alloc_frame() else {
        crate::memory::free_frame(hsave);
        return Err("SVM: no free frame for the host state");
    };
    for pa in [hsave, host_state] {
        let ptr = super::Current::phys_to_virt_ptr(pa) as *mut u8;
        // SAFETY: the frame was just allocated for this CPU alone and is mapped.
        unsafe { core::ptr::write_bytes(ptr, 0, crate::memory::FRAME_SIZE as usize) };
    }
    // SAFETY: SVM is present and allowed, and the host save area is this CPU's from now on.
    unsafe { svm::enable(hsave) };
    let c = &percpu::of_cpu(cpu).svm;
    c.host_state.store(host_state, Ordering::SeqCst);
    c.host_save_area.store(hsave, Ordering::SeqCst);
    Ok(Some("SVM (EFER.SVME)"))
}

/// Whether the calling CPU has SVM on.
pub fn on() -> bool {
    percpu::this_cpu().svm.host_save_area.load(Ordering::SeqCst) != 0
}

/// The calling CPU's page for the host's VMSAVE/VMLOAD state.
pub fn host_state_pa() -> u64 {
    percpu::this_cpu().svm.host_state.load(Ordering::SeqCst)
}

/// The ASID of vCPUs on the calling CPU.
pub fn asid() -> u32 {
    percpu::cpu_index() as u32 + 1
}

/// Asks the calling CPU's next VMRUN to drop its guest translations.
pub fn request_flush() {
    percpu::this_cpu()
        .svm
        .flush_requested
        .store(true, Ordering::SeqCst);
}

/// Consumes the calling CPU's flush request: whether its next VMRUN must flush (the vCPU picks
/// the TLB control, `arch_x86::svm::vcpu::tlb_control`).
pub fn take_flush_request() -> bool {
    percpu::this_cpu()
        .svm
        .flush_requested
        .swap(false, Ordering::SeqCst)
}
