//! What the hypervisor adds to a Linux partition's command line when it loads the kernel, after
//! the build laid the boot out: facts only known at run time. Linux 6.1 reads no CPUID leaf for
//! the TSC rate on an AMD CPU or under an unknown hypervisor, and a partition has no PIT, HPET or
//! PM timer to calibrate against, so the hypervisor, acting as the boot loader, passes the rate it
//! measured as `tsc_early_khz=`. The functions work on the bytes of the command line in guest
//! memory and are pure, so they are tested on the host.

use core::fmt::Write;

/// `boot_params.hdr.cmd_line_ptr` (boot protocol 2.02+): the command line's guest address.
pub const CMD_LINE_PTR: usize = 0x228;
/// `boot_params.hdr.cmdline_size` (2.06+): the longest command line the kernel takes, without
/// the NUL.
pub const CMDLINE_SIZE: usize = 0x238;

/// A small formatting buffer for one argument.
pub struct Arg {
    buf: [u8; 48],
    len: usize,
}

impl Write for Arg {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Arg {
    /// The argument's text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// `tsc_early_khz=<khz>`.
pub fn tsc_early_khz(khz: u64) -> Arg {
    let mut a = Arg {
        buf: [0; 48],
        len: 0,
    };
    // 20 digits at most: always fits.
    let _ = write!(a, "tsc_early_khz={khz}");
    a
}

pub use vcpu::cmdline::{append, AppendError};

#[cfg(test)]
mod tests {
    use super::*;

    fn line(space: &[u8]) -> &str {
        vcpu::cmdline::current(space).unwrap()
    }

    #[test]
    fn the_tsc_rate_is_appended_within_the_limits() {
        let mut space = [0u8; 64];
        space[..14].copy_from_slice(b"console=ttyS0\0");
        let arg = tsc_early_khz(2_623_000);
        assert_eq!(arg.as_bytes(), b"tsc_early_khz=2623000");
        assert_eq!(append(&mut space, arg.as_bytes(), 2047), Ok(35));
        assert_eq!(line(&space), "console=ttyS0 tsc_early_khz=2623000");
        // Set already (here by the previous call, as a board file may): left alone.
        assert_eq!(
            append(&mut space, tsc_early_khz(1).as_bytes(), 2047),
            Err(AppendError::AlreadySet)
        );
        assert_eq!(line(&space), "console=ttyS0 tsc_early_khz=2623000");
    }
}
