//! Inter-processor mailboxes and interrupts through IOCSR. A core cannot write another core's
//! mailbox directly: it writes a command word to MBUF_SEND naming the target core, the 32-bit half
//! of the mailbox, and the data; IPI_SEND likewise names the core and the vector. The encodings
//! are pure functions (host-tested); the senders execute them.

/// Bit 31 of a send command: wait until the write has reached the target before completing.
const BLOCKING: u64 = 1 << 31;

/// The MBUF_SEND command that stores `data` into 32-bit half `half` of core `cpu`'s mailboxes
/// (mailbox `n` is halves `2n` (low) and `2n + 1` (high)).
pub fn mail_send_command(cpu: u32, half: u32, data: u32) -> u64 {
    BLOCKING
        | (u64::from(half & 0x7) << 2)
        | (u64::from(cpu & 0x3ff) << 16)
        | (u64::from(data) << 32)
}

/// The two MBUF_SEND commands that store a 64-bit `value` into mailbox `mailbox` of core `cpu`,
/// high half first: a core polling the mailbox for a non-zero value then sees it only when the
/// low half lands, so values below 4 GiB (physical entry addresses) never appear torn.
pub fn mail_send_commands(cpu: u32, mailbox: u32, value: u64) -> [u64; 2] {
    [
        mail_send_command(cpu, mailbox * 2 + 1, (value >> 32) as u32),
        mail_send_command(cpu, mailbox * 2, value as u32),
    ]
}

/// The IPI_SEND command that raises IPI vector `vector` (0..32) on core `cpu`.
pub fn ipi_send_command(cpu: u32, vector: u32) -> u32 {
    (1 << 31) | ((cpu & 0x3ff) << 16) | (vector & 0x1f)
}

/// Stores `value` into mailbox `mailbox` of core `cpu`.
///
/// # Safety
/// The target core may act on the value (QEMU's secondary boot code jumps to mailbox 0): the
/// caller must make it valid for that use.
#[cfg(target_arch = "loongarch64")]
pub unsafe fn send_mail(cpu: u32, mailbox: u32, value: u64) {
    for cmd in mail_send_commands(cpu, mailbox, value) {
        // SAFETY: the caller vouches for the value; the command only names a mailbox.
        unsafe { crate::iocsr::write64(crate::iocsr::MBUF_SEND, cmd) };
    }
}

/// Raises IPI vector `vector` on core `cpu`.
///
/// # Safety
/// The target core must be able to handle (or ignore) the interrupt.
#[cfg(target_arch = "loongarch64")]
pub unsafe fn send_ipi(cpu: u32, vector: u32) {
    // SAFETY: the caller vouches for the target; the command only sets a pending bit there.
    unsafe { crate::iocsr::write32(crate::iocsr::IPI_SEND, ipi_send_command(cpu, vector)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_commands_high_half_first() {
        let [hi, lo] = mail_send_commands(3, 0, 0x9000_0000_0020_1000);
        assert_eq!(
            hi,
            (1 << 31) | (1 << 2) | (3 << 16) | (0x9000_0000u64 << 32)
        );
        assert_eq!(lo, (1 << 31) | (3 << 16) | (0x0020_1000u64 << 32));
    }

    #[test]
    fn second_mailbox_uses_halves_two_and_three() {
        let [hi, lo] = mail_send_commands(1, 1, 0x1_0000_0002);
        assert_eq!((hi >> 2) & 7, 3);
        assert_eq!((lo >> 2) & 7, 2);
        assert_eq!(hi >> 32, 1);
        assert_eq!(lo >> 32, 2);
    }

    #[test]
    fn ipi_command() {
        assert_eq!(ipi_send_command(2, 0), 0x8002_0000);
        assert_eq!(ipi_send_command(1, 33), 0x8001_0001);
    }
}
