//! A kernel command line in guest memory, extended at run time: the hypervisor, acting as the
//! boot loader, appends words only it knows (the boot count, a measured clock rate, words a
//! test passes through) to the line the build placed. Arch-neutral: x86 finds the line through
//! the zero page, LoongArch through the boot plan; both append the same way.

/// Why an argument was not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The command line has no terminating NUL in the space it may use.
    Unterminated,
    /// The result would be longer than the kernel takes (`cmdline_size`) or the space allows.
    TooLong,
    /// The board's command line already sets the parameter: the board file wins.
    AlreadySet,
}

/// Appends ` arg` to the NUL-terminated command line at the start of `space` (the bytes from
/// the command line to the end of the memory set aside for it), keeping it within `limit`
/// characters (the kernel's `cmdline_size`). Returns the new length.
pub fn append(space: &mut [u8], arg: &[u8], limit: usize) -> Result<usize, AppendError> {
    let len = space
        .iter()
        .position(|&b| b == 0)
        .ok_or(AppendError::Unterminated)?;
    let key_end = arg
        .iter()
        .position(|&b| b == b'=')
        .map_or(arg.len(), |i| i + 1);
    let key = &arg[..key_end];
    if space[..len]
        .split(|&b| b == b' ')
        .any(|w| w.starts_with(key))
    {
        return Err(AppendError::AlreadySet);
    }
    let sep = usize::from(len != 0);
    let new = len + sep + arg.len();
    if new > limit || new >= space.len() {
        return Err(AppendError::TooLong);
    }
    if sep == 1 {
        space[len] = b' ';
    }
    space[len + sep..new].copy_from_slice(arg);
    space[new] = 0;
    Ok(new)
}

/// The command line at the start of `space`, up to its NUL; `None` if it has none or is not
/// UTF-8.
pub fn current(space: &[u8]) -> Option<&str> {
    let n = space.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&space[..n]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(space: &[u8]) -> &str {
        current(space).unwrap()
    }

    #[test]
    fn too_long_or_unterminated_lines_are_left_alone() {
        let mut space = [b'x'; 16];
        assert_eq!(
            append(&mut space, b"a=1", 100),
            Err(AppendError::Unterminated)
        );
        let mut space = [0u8; 16];
        space[..10].copy_from_slice(b"123456789\0");
        assert_eq!(append(&mut space, b"ab=12", 12), Err(AppendError::TooLong));
        assert_eq!(
            append(&mut space, b"ab=12345", 100),
            Err(AppendError::TooLong)
        );
        assert_eq!(line(&space), "123456789");
        let mut empty = [0u8; 16];
        assert_eq!(append(&mut empty, b"a=1", 100), Ok(3));
        assert_eq!(line(&empty), "a=1");
    }
}
