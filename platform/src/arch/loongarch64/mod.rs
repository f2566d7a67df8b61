//! LoongArch64 (QEMU `virt`, Loongson 3A5000): the image runs at PLV0 in the two direct-mapped
//! windows (DMW0 uncached at 0x8000…, DMW1 cached at 0x9000…, both `| PA`) with paging on and an
//! empty TLB, so nothing outside the windows is reachable and a stray address faults at once.
//! This module ties the pieces to [`Machine`]: entry and trap vectors in asm, the boot data from
//! the device tree, the mailbox wake-up of secondaries, and the exit paths.
//!
//! Hidden command-line switches for boot tests: `fault=1` (a TLB refill from an unmapped load)
//! and `fault=2` (a `break`) raise an exception on the boot CPU just before the secondaries start.

mod deprivileged;
mod device_irq;
mod efi;
mod entry;
mod firmware;
mod header;
mod host_irq;
mod lvz_world;
mod partition;
mod power;
mod smp;
mod trap;
mod uart;
mod world;

use crate::arch::{Machine, Outcome};
use arch_loongarch::cpucfg::{self, CpuCfg};
use arch_loongarch::{csr, instr, iocsr};

/// The running LoongArch64 machine.
pub struct Current;

/// An IOCSR identification word as text ("Loongson", "3A5000"), trailing NULs dropped.
fn id_string(word: u64, buf: &mut [u8; 8]) -> &str {
    *buf = word.to_le_bytes();
    let len = buf.iter().position(|&b| b == 0).unwrap_or(8);
    core::str::from_utf8(&buf[..len]).unwrap_or("?")
}

impl Machine for Current {
    fn cpu_index() -> usize {
        (csr::read::<{ csr::CPUID }>() & 0x1ff) as usize
    }

    fn report_features() {
        let c = CpuCfg::read();
        log::info!(
            "cpu: LoongArch CPUCFG0 prid={:#x}, LA{} PALEN {} VALEN {}, FP {} LSX {} LASX {} \
             LAM {}, counter {} MHz",
            c.prid(),
            if c.arch() == 2 { 64 } else { 32 },
            c.palen(),
            c.valen(),
            c.fp() as u8,
            c.lsx() as u8,
            c.lasx() as u8,
            c.lam() as u8,
            c.counter_hz().unwrap_or(0) / 1_000_000,
        );
        if c.iocsr() {
            let (mut v, mut n) = ([0; 8], [0; 8]);
            log::info!(
                "cpu: {} {} (IOCSR features {:#x})",
                id_string(iocsr::read64(iocsr::VENDOR), &mut v),
                id_string(iocsr::read64(iocsr::CPU_NAME), &mut n),
                iocsr::read64(iocsr::FEATURES)
            );
        }
        match c.lvz() {
            None => log::info!("virt: LVZ absent (CPUCFG2.LVZP=0)"),
            Some(version) => log::info!("virt: LVZ present (version {version})"),
        }
    }

    fn enable_virtualization(cpu: usize) -> Result<Option<&'static str>, &'static str> {
        if (CpuCfg {
            words: [0, 0, cpucfg::read(2), 0, 0, 0],
        })
        .lvz()
        .is_none()
        {
            return Ok(None);
        }
        // Detection and a sanity read only; guest entry comes with the partition code.
        let gstat = csr::read::<{ csr::GSTAT }>();
        let gcfg = csr::read::<{ csr::GCFG }>();
        if gstat & 1 != 0 {
            return Err("LVZ: GSTAT.VM is set while the hypervisor runs in root mode");
        }
        log::debug!(
            "virt: cpu{cpu} GSTAT={gstat:#x} (GID bits {}) GCFG={gcfg:#x}",
            (gstat >> 4) & 0x3f
        );
        Ok(Some("LVZ"))
    }

    fn start_secondaries(max: usize) -> usize {
        if let Some(kind) = firmware::cmdline_value("fault").and_then(|v| v.parse().ok()) {
            trap::deliberate_fault(kind);
        }
        smp::start_secondaries(max)
    }

    fn phys_to_virt(pa: u64) -> usize {
        (pa | csr::CACHED_BASE) as usize
    }

    fn exit(outcome: Outcome) -> ! {
        power::exit(outcome)
    }

    fn park() -> ! {
        // SAFETY: clearing CRMD.IE only masks interrupts on this CPU, which is about to stop.
        unsafe { csr::xchg::<{ csr::CRMD }>(0, csr::CRMD_IE) };
        loop {
            instr::idle();
        }
    }
}
