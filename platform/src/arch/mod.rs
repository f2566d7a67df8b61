//! The seam between the arch-neutral boot sequence and one architecture. Each arch module provides a
//! `Current` type implementing [`Machine`]; its entry code sets up a stack and calls
//! [`crate::boot::primary_main`] on the boot CPU and [`crate::boot::secondary_main`] on the others.

#[cfg(target_arch = "loongarch64")]
mod loongarch64;
#[cfg(target_arch = "loongarch64")]
pub use loongarch64::Current;

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::Current;

/// How a run ends, as the emulator or the board sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything the image set out to do was done: the emulator must exit with its success status.
    Success,
    /// A panic, an unexpected exception, or a failed check: the emulator must exit with a failure.
    Failure,
}

/// What one architecture provides to the boot sequence.
pub trait Machine {
    /// Index of the CPU running this code, 0 for the boot CPU, dense up to the number of CPUs.
    fn cpu_index() -> usize;

    /// Prints the CPU's features (CPUCFG / CPUID), saying plainly whether hardware virtualization
    /// (LVZ, VMX, SVM) is present.
    fn report_features();

    /// Enables hardware virtualization on the calling CPU where the CPU has it (VMXON on x86).
    /// `Ok(None)` means the CPU has none, which is not an error for booting; `Ok(Some(what))`
    /// names what was enabled.
    fn enable_virtualization(cpu: usize) -> Result<Option<&'static str>, &'static str>;

    /// Starts every other CPU the firmware reports (at most `max`), each entering
    /// [`crate::boot::secondary_main`] on its own stack from [`crate::cpu_stacks::cpu_stack_top`].
    /// Returns how many were asked to start.
    fn start_secondaries(max: usize) -> usize;

    /// Converts a physical address to the address the hypervisor uses to reach it.
    fn phys_to_virt(pa: u64) -> usize;

    /// Ends the run: powers off (or exits the emulator) with a status that tells `outcome`.
    fn exit(outcome: Outcome) -> !;

    /// Parks the calling CPU forever with interrupts off.
    fn park() -> !;
}
