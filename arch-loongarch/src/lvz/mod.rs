//! The LVZ backend's logic (Loongson virtualization extension, 3A5000): GID allocation, the
//! per-CPU enable sequence and GCFG trap policy, guest CSR initialisation and save/restore,
//! guest entry programming (PGDL = the partition's GPA table, GTLBC.TGID = GID, GSTAT.GID and
//! PVM, GINTC injection, GCNTC), exit decoding into `vcpu::VmExit`, and INVTLB by
//! GID as the stage-2 flush. Every CSR and TLB instruction goes through [`LvzHw`], so all of it
//! is tested on the host against a CSR model (`tests.rs`); [`real::RealLvz`] is the one
//! implementation that executes `csrrd`/`csrwr`/`gcsrrd`/`gcsrwr`/`invtlb`.
//!
//! The root TLB refill for guest GPA misses is the same handler as the deprivileged backend's
//! (the image's `trap.rs`): it walks PGDL with `lddir`/`ldpte` when the miss came from guest mode
//! (GSTAT.PVM), and `tlbfill` tags the entry with GTLBC.TGID because GTLBC.USETGID is set.
//! Dirty and young tracking use the same PME and page-invalid exits and `mmu::fast_fix` as the
//! deprivileged backend: only the exit vector differs.

mod exit;
mod guest;
#[cfg(test)]
mod guest_tests;
#[cfg(test)]
mod model;
#[cfg(target_arch = "loongarch64")]
pub mod real;
pub mod shadow;
#[cfg(test)]
mod tests;

pub use exit::{decode_exit, ExitRegs, IOCSR_FLAG};
pub use guest::{LvzVcpu, LvzWorld, Trap, VcpuConfig, FLAG_HVCL};

use crate::csr;
use mmu::Flush;

/// CPU and TLB access the backend needs; one implementation per world (hardware, host model).
pub trait LvzHw {
    /// Reads root CSR `csr`.
    fn csr_read(&mut self, csr: u16) -> u64;
    /// Writes root CSR `csr`.
    fn csr_write(&mut self, csr: u16, value: u64);
    /// Reads guest CSR `csr` (`gcsrrd`).
    fn gcsr_read(&mut self, csr: u16) -> u64;
    /// Writes guest CSR `csr` (`gcsrwr`).
    fn gcsr_write(&mut self, csr: u16, value: u64);
    /// Replaces the bits of guest CSR `csr` selected by `mask` with those of `value`, as one
    /// access (`gcsrxchg`: the hardware may set other bits of the CSR meanwhile, e.g. the guest
    /// timer's pending bit in ESTAT); returns the old value.
    fn gcsr_xchg(&mut self, csr: u16, value: u64, mask: u64) -> u64;
    /// `invtlb op, rj, rk`.
    fn invtlb(&mut self, op: u32, rj: u64, rk: u64);
}

/// GSTAT fields.
pub mod gstat {
    /// Previous mode was guest: `ertn` enters the guest.
    pub const PVM: u64 = 1 << 1;
    /// GID bits implemented (read-only), 9:4.
    pub const GIDBITS_SHIFT: u32 = 4;
    /// Current guest id, 23:16.
    pub const GID_SHIFT: u32 = 16;
    /// The GID field.
    pub const GID_MASK: u64 = 0xff << GID_SHIFT;
}

/// GTLBC fields.
pub mod gtlbc {
    /// Root TLB instructions and refills use TGID.
    pub const USETGID: u64 = 1 << 12;
    /// Trap guest TLB instructions.
    pub const TOTI: u64 = 1 << 13;
    /// TGID, 23:16.
    pub const TGID_SHIFT: u32 = 16;
    /// The TGID field.
    pub const TGID_MASK: u64 = 0xff << TGID_SHIFT;
}

/// GCFG fields (the `*P` bits say what the CPU supports).
pub mod gcfg {
    /// MATC: cache attribute from the root (GPA→HPA) mapping.
    pub const MATC_ROOT: u64 = 1 << 4;
    /// MATP bit for "root" support.
    pub const MATP_ROOT: u64 = 1 << 1;
    /// Trap on guest privileged instructions (SIT) and its present bit (SITP).
    pub const SIT: u64 = 1 << 7;
    /// SIT present.
    pub const SITP: u64 = 1 << 6;
    /// Trap on timer (TIT) and present (TITP).
    pub const TIT: u64 = 1 << 9;
    /// TIT present.
    pub const TITP: u64 = 1 << 8;
    /// GCI field: which guest cache instructions trap; 2 = secure ones only.
    pub const GCI_SECURE: u64 = 2 << 20;
    /// GCIP bit for "secure" support.
    pub const GCIP_SECURE: u64 = 1 << 18;
}

/// invtlb operations used with LVZ.
pub mod invtlb_op {
    /// Every guest's entries (GVA→GPA and GPA→HPA).
    pub const ALL_GUESTS: u32 = 0x12;
    /// One GID's GPA→HPA entries.
    pub const GID_GPA: u32 = 0x14;
    /// One GID's GPA→HPA entry for one address.
    pub const GID_ADDR: u32 = 0x16;
}

/// The `rj` operand of the GID-scoped INVTLB operations (0x13-0x16): the architecture reads
/// the guest id from rj bits 23:16, so a bare GID in the low bits would name GID 0, the root.
pub fn gid_operand(gid: u64) -> u64 {
    (gid & 0xff) << gtlbc::TGID_SHIFT
}

/// A range flush longer than this many 16 KiB pages becomes an all-guest flush.
pub const RANGE_PAGES_MAX: u64 = 64;

/// The guest id of partition `id`: never 0 (GID 0 is the root), within the implemented bits.
pub fn gid_of(id: u32, gid_bits: u32) -> Option<u64> {
    let gid = u64::from(id) + 1;
    (gid < 1u64 << gid_bits.min(8)).then_some(gid)
}

/// The implemented GID width, GSTAT.GIDBITS (read-only, 9:4).
pub fn gid_bits<H: LvzHw>(hw: &mut H) -> u32 {
    ((hw.csr_read(csr::GSTAT) >> gstat::GIDBITS_SHIFT) & 0x3f) as u32
}

/// Whether `partitions` partitions each get their own GID: ids 0..partitions map to GIDs
/// 1..=partitions, distinct by construction, so the last one fitting is enough.
pub fn gids_fit(partitions: u32, gid_bits: u32) -> bool {
    partitions == 0 || gid_of(partitions - 1, gid_bits).is_some()
}

/// The per-CPU enable sequence: guest state cleared, the trap policy set (cache attributes from
/// the root mapping, only secure cache operations trapping, where the CPU supports either; timer
/// and privileged instructions left to the guest's own CSRs), every guest TLB entry dropped, and
/// root TLB instructions switched to TGID. Returns the number of implemented GID bits.
pub fn enable<H: LvzHw>(hw: &mut H) -> u32 {
    let gid_bits = gid_bits(hw);
    hw.csr_write(csr::GSTAT, 0);
    hw.csr_write(csr::GINTC, 0);
    let caps = hw.csr_read(csr::GCFG);
    let mut cfg = 0;
    if caps & gcfg::MATP_ROOT != 0 {
        cfg |= gcfg::MATC_ROOT;
    }
    if caps & gcfg::GCIP_SECURE != 0 {
        cfg |= gcfg::GCI_SECURE;
    }
    hw.csr_write(csr::GCFG, cfg);
    let gtlbc = hw.csr_read(csr::GTLBC) & !(gtlbc::TOTI | gtlbc::TGID_MASK);
    hw.csr_write(csr::GTLBC, gtlbc | gtlbc::USETGID);
    hw.invtlb(invtlb_op::ALL_GUESTS, 0, 0);
    gid_bits
}

/// The guest CSRs saved and restored on a world switch, in restore order: the translation and
/// exception set-up first, the timer last so it does not fire against a half-restored guest.
pub const GUEST_CSRS: [u16; 38] = [
    0x0, 0x1, 0x2, 0x3, 0x4, 0x6, 0x7, 0x8,
    0xc, // CRMD PRMD EUEN MISC ECFG ERA BADV BADI EENTRY
    0x10, 0x11, 0x12, 0x13, 0x18, 0x19, 0x1a, 0x1c, 0x1d,
    0x1e, // TLB, ASID, PGD*, PWC*, STLBPS
    0x1f, 0x20, // RVACFG CPUID
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, // KS0-7
    0x88, 0x89, 0x8a, 0x8b, // TLBRENTRY TLBRBADV TLBRERA TLBRSAVE
    0x180, 0x181, // DMW0-1
    0x40, 0x41, 0x43, // TID TCFG CNTC
];

/// A vCPU's guest CSRs while it is not loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestCsrs(pub [u64; GUEST_CSRS.len()]);

impl GuestCsrs {
    /// A vCPU's first state: direct-address mode (CRMD.DA), PC = `entry`, CPUID = `vcpu`.
    pub fn initial(entry: u64, vcpu: u64) -> Self {
        let mut v = [0; GUEST_CSRS.len()];
        for (slot, &n) in v.iter_mut().zip(&GUEST_CSRS) {
            *slot = match n {
                0x0 => 0x8,
                0x6 => entry,
                0x20 | 0x40 => vcpu,
                _ => 0,
            };
        }
        Self(v)
    }

    /// Reads every guest CSR from the CPU.
    pub fn save<H: LvzHw>(hw: &mut H) -> Self {
        let mut v = [0; GUEST_CSRS.len()];
        for (slot, &n) in v.iter_mut().zip(&GUEST_CSRS) {
            *slot = hw.gcsr_read(n);
        }
        Self(v)
    }

    /// Writes every guest CSR to the CPU, in [`GUEST_CSRS`] order.
    pub fn restore<H: LvzHw>(&self, hw: &mut H) {
        for (&n, &value) in GUEST_CSRS.iter().zip(&self.0) {
            hw.gcsr_write(n, value);
        }
    }
}

/// What a guest entry needs besides the guest's registers.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// The partition's guest id.
    pub gid: u64,
    /// Physical address of its GPA table root.
    pub root: u64,
    /// Guest PC.
    pub era: u64,
    /// Virtual hardware interrupt lines (HWI0-7) raised for the guest (GINTC.HWIS).
    pub injected: u8,
    /// Offset added to the stable counter the guest reads (GCNTC).
    pub counter_offset: u64,
}

/// Programs the root CSRs for entering a guest with `ertn`: PGDL, GTLBC.TGID, GSTAT.GID and PVM,
/// GINTC (the injected virtual lines, written whole every entry: QEMU-LVZ reads HWIS back as 0
/// and copies each write's HWIS into the guest's ESTAT, so a read-modify-write would drop raised
/// lines there; no pin passed through, PIP = 0, since every device interrupt is the
/// hypervisor's to take, `crate::device_irq`), GCNTC, ERA, and PRMD with interrupts on so
/// host interrupts exit the guest.
pub fn program_entry<H: LvzHw>(hw: &mut H, e: &Entry) {
    hw.csr_write(csr::PGDL, e.root);
    let gtlbc = hw.csr_read(csr::GTLBC) & !gtlbc::TGID_MASK;
    hw.csr_write(
        csr::GTLBC,
        gtlbc | gtlbc::USETGID | e.gid << gtlbc::TGID_SHIFT,
    );
    let gintc = hw.csr_read(csr::GINTC) & !0xffff;
    hw.csr_write(csr::GINTC, gintc | u64::from(e.injected));
    hw.csr_write(csr::GCNTC, e.counter_offset);
    hw.csr_write(csr::ERA, e.era);
    hw.csr_write(csr::PRMD, 1 << 2);
    let gstat = hw.csr_read(csr::GSTAT) & !gstat::GID_MASK;
    hw.csr_write(csr::GSTAT, gstat | e.gid << gstat::GID_SHIFT | gstat::PVM);
}

/// After an exit: clears GSTAT.PVM and GTLBC.TGID so root TLB operations are the root's again.
pub fn leave_guest<H: LvzHw>(hw: &mut H) {
    let gstat = hw.csr_read(csr::GSTAT);
    hw.csr_write(csr::GSTAT, gstat & !gstat::PVM);
    let gtlbc = hw.csr_read(csr::GTLBC);
    hw.csr_write(csr::GTLBC, gtlbc & !gtlbc::TGID_MASK);
}

/// Guest ESTAT.IS bits the root drives (the rest are the guest's own: its timer, TI, bit 11).
pub mod guest_lines {
    /// The IPI line, ESTAT.IS bit 12: the level of the guest's IPI block (status & enable).
    pub const IPI: u64 = 1 << 12;
    /// The hardware lines HWI0-7, ESTAT.IS bits 9:2: virtual devices' lines, injected through
    /// GINTC.HWIS.
    pub const HWI: u64 = 0xff << 2;
    /// Every IS bit (12:0), cleared when a vCPU's CSRs are loaded on a CPU.
    pub const ALL: u64 = 0x1fff;
}

/// Sets the guest's IPI line (guest ESTAT.IS bit 12) to `level`, with `gcsrxchg` so the guest
/// timer's pending bit, which the hardware sets in the same CSR, is left alone.
pub fn set_ipi_line<H: LvzHw>(hw: &mut H, level: bool) {
    let value = if level { guest_lines::IPI } else { 0 };
    hw.gcsr_xchg(csr::ESTAT, value, guest_lines::IPI);
}

/// Whether a guest with these CRMD and ECFG values takes one of the raised `lines` (ESTAT.IS
/// layout) as soon as it runs: interrupts on (CRMD.IE) and a raised line unmasked (ECFG.LIE).
/// Otherwise the lines wait for the guest to enable them itself (its `ertn`, a CRMD or ECFG
/// write).
pub fn lines_takeable(crmd: u64, ecfg: u64, lines: u64) -> bool {
    crmd & csr::CRMD_IE != 0 && ecfg & lines != 0
}

/// Re-checking a raised IPI line the guest could not take at entry. The hardware takes such a
/// line by itself once the guest enables interrupts; QEMU-LVZ re-evaluates guest lines only at
/// the root's `ertn` and at a guest-timer event, never at the guest's own `ertn` or CRMD/ECFG
/// write, so there the line would wait for an unrelated exit (LVZ.md, difference 13). While such
/// a line stays raised, each entry asks for an exit after a delay (the root timer), and the next
/// entry's `ertn` looks again; the delay doubles from [`FIRST_NS`] to [`MAX_NS`] while the guest
/// keeps the line waiting, so a guest that stays masked costs at most one exit per `MAX_NS`.
pub mod recheck {
    /// The delay after the first entry that leaves a raised line waiting.
    pub const FIRST_NS: u64 = 20_000;
    /// The longest delay.
    pub const MAX_NS: u64 = 1_000_000;

    /// The delay for this entry, given the previous one (0: the line was not waiting).
    pub fn next(previous_ns: u64) -> u64 {
        if previous_ns == 0 {
            FIRST_NS
        } else {
            previous_ns.saturating_mul(2).min(MAX_NS)
        }
    }
}

/// The stage-2 flush for guest `gid`: one `invtlb 0x16` per 16 KiB page for a short range,
/// the whole GID otherwise (all guests when the range is large, as the hardware's cheapest
/// complete flush).
pub fn flush<H: LvzHw>(hw: &mut H, gid: u64, what: Flush) {
    match what {
        Flush::None => {}
        Flush::Range { start, end } if (end.as_u64() - start.as_u64()) >> 14 <= RANGE_PAGES_MAX => {
            let mut gpa = start.as_u64() & !((1 << 15) - 1);
            while gpa < end.as_u64() {
                hw.invtlb(invtlb_op::GID_ADDR, gid_operand(gid), gpa);
                // One entry maps an even/odd pair of pages.
                gpa += 1 << 15;
            }
        }
        Flush::Range { .. } => hw.invtlb(invtlb_op::ALL_GUESTS, 0, 0),
        Flush::All => hw.invtlb(invtlb_op::GID_GPA, gid_operand(gid), 0),
    }
}
