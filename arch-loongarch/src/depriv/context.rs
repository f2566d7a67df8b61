//! [`GuestContext`], a deprivileged vCPU's registers and its last exit's exception state: what the
//! image's world switch loads before its `ertn` and stores at the guest exit vector (hence
//! `#[repr(C)]`: the asm addresses its fields by `offset_of!`), and what the vCPU logic decodes
//! and completes.

/// A vCPU's registers and the state of its last exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestContext {
    /// `regs[n]` is `$rn` (`regs[0]` stays 0).
    pub regs: [u64; 32],
    /// ERA: where the guest resumes; after an exit, the instruction that took it.
    pub era: u64,
    /// PRMD: the mode the guest is entered in.
    pub prmd: u64,
    /// ESTAT of the last exit: Ecode, EsubCode, pending interrupt lines.
    pub estat: u64,
    /// BADV of the last exit: the faulting address.
    pub badv: u64,
    /// BADI of the last exit: the instruction word that took it.
    pub badi: u64,
    /// The hypervisor's stack pointer while the guest runs; only the world switch uses it.
    pub host_sp: u64,
}

impl GuestContext {
    /// A context that starts at `era` with mode `prmd` and all registers 0.
    pub fn new(era: u64, prmd: u64) -> Self {
        Self {
            era,
            prmd,
            ..Default::default()
        }
    }
}
