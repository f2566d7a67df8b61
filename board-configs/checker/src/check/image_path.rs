//! Where a partition's `image` may come from. The image build embeds the file in the hypervisor
//! image, so a board file must not be able to pull in anything outside its own folder (an
//! absolute path, `..`, a symlink pointing out), nor a directory or a device (which would be read
//! without end). Each refusal says which of these it is.

use super::error::Rule;
use std::path::{Component, Path, PathBuf};

/// An image file that may be embedded: where it is and how large.
pub struct Found {
    pub resolved: PathBuf,
    pub size: Option<u64>,
    /// Why it may not be embedded, if it may not: the rule and the sentence after the key.
    pub fault: Option<(Rule, String)>,
}

/// Whether `path`, taken lexically, stays inside the folder it is relative to.
fn stays_inside(path: &Path) -> bool {
    let mut depth = 0usize;
    for c in path.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Looks `path` (as written in the board file) up below `base_dir`.
pub fn find(path: &str, base_dir: &Path) -> Found {
    let rel = Path::new(path);
    let resolved = base_dir.join(rel);
    let refuse = |rule, text: String| Found {
        resolved: resolved.clone(),
        size: None,
        fault: Some((rule, text)),
    };
    if rel.is_absolute() || rel.has_root() {
        return refuse(
            Rule::ImagePath,
            format!("{path:?} is absolute (give a path relative to the board file's folder)"),
        );
    }
    if !stays_inside(rel) {
        return refuse(
            Rule::ImagePath,
            format!("{path:?} leaves the board file's folder"),
        );
    }
    let Ok(meta) = std::fs::metadata(&resolved) else {
        let looked = resolved.display().to_string();
        return refuse(
            Rule::ImageMissing,
            format!("{path:?} does not exist (looked for {looked})"),
        );
    };
    // A symlink (anywhere along the path) may point out of the folder: compare real paths.
    if let (Ok(real), Ok(root)) = (
        std::fs::canonicalize(&resolved),
        std::fs::canonicalize(base_dir),
    ) {
        if !real.starts_with(&root) {
            return refuse(
                Rule::ImagePath,
                format!("{path:?} is a symlink that leads outside the board file's folder"),
            );
        }
    }
    if meta.is_dir() {
        return refuse(
            Rule::ImagePath,
            format!("{path:?} is a directory, not a file"),
        );
    }
    if !meta.is_file() {
        return refuse(
            Rule::ImagePath,
            format!("{path:?} is not a regular file (a device, FIFO or socket)"),
        );
    }
    Found {
        resolved,
        size: Some(meta.len()),
        fault: None,
    }
}
