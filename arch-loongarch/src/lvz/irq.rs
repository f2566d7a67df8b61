//! Device interrupts under LVZ: which CPU pins a partition's guest sees directly, and where the
//! extended I/O interrupt controller (EIOINTC) may send a partition's lines. The hypervisor keeps
//! PCH-PIC and EIOINTC; the partition's device lines are routed (PCH-PIC line → EIOINTC vector →
//! CPU) only to CPUs the partition owns, on the pin Linux uses for EIOINTC ([`DEVICE_PIN`], HWI1),
//! and that pin is passed straight through to the guest on those CPUs (GINTC.PIP), so a device
//! interrupt reaches the guest with no exit. The guest timer needs nothing here: under LVZ the
//! guest owns its TCFG/TVAL (guest CSRs, restored last, see `GUEST_CSRS`) and GCFG.TIT stays
//! clear, so its ticks are delivered by the hardware in guest mode.

/// The CPU interrupt pin EIOINTC drives (HWI1, ESTAT.IS bit 3).
pub const DEVICE_PIN: u32 = 1;

/// The GINTC.PIP mask for a vCPU of a partition: the device pin if the partition owns lines.
pub const fn pass_through(owns_lines: bool) -> u8 {
    if owns_lines {
        1 << DEVICE_PIN
    } else {
        0
    }
}

/// Why a device-line route was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// The board file does not give the line to this partition.
    NotOwned,
    /// The CPU is not one of the partition's.
    CpuOutside,
    /// The CPU cannot be named in an EIOINTC route (node 0, cores 0-3 only).
    CpuUnroutable,
}

/// The EIOINTC ROUTE byte that sends a vector to core `cpu` of node 0 (bits 3:0: core mask,
/// bits 7:4: node), after checking that `line` is the partition's (`owned`) and `cpu` one of
/// its CPUs (`cpus`).
pub fn route(owned: &[u32], cpus: &[u32], line: u32, cpu: u32) -> Result<u8, RouteError> {
    if !owned.contains(&line) {
        return Err(RouteError::NotOwned);
    }
    if !cpus.contains(&cpu) {
        return Err(RouteError::CpuOutside);
    }
    if cpu >= 4 {
        return Err(RouteError::CpuUnroutable);
    }
    Ok(1 << cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owning_partitions_get_the_pin() {
        assert_eq!(pass_through(true), 0b10);
        assert_eq!(pass_through(false), 0);
    }

    #[test]
    fn routes_go_only_to_the_partitions_own_cpus() {
        let (owned, cpus) = ([3, 7], [1, 2]);
        assert_eq!(route(&owned, &cpus, 3, 2), Ok(0b100));
        assert_eq!(route(&owned, &cpus, 4, 1), Err(RouteError::NotOwned));
        assert_eq!(route(&owned, &cpus, 7, 3), Err(RouteError::CpuOutside));
        assert_eq!(route(&[1], &[5], 1, 5), Err(RouteError::CpuUnroutable));
    }
}
