//! The LoongArch guest's kernel: its cache key (everything that decides what the build
//! produces), the build in the chroot from Debian's `linux-source-6.12` with the config fragment,
//! and the check that every option of the fragment holds in the final `.config`.

use super::chroot::{in_chroot, remove_tree};
use super::{io, FRAGMENT, MAKE, RECIPE_VERSION, SOURCE_PACKAGE, SOURCE_TARBALL};
use crate::cache::sha256_bytes as sha256;
use std::path::Path;
use std::time::Instant;

/// The kernel's cache key: everything that decides what the build produces.
pub(super) fn kernel_key(
    fragment: &str,
    packages: &[&str],
    source_version: &str,
) -> Result<String, String> {
    sha256(
        format!(
            "recipe {RECIPE_VERSION}\n{MAKE}\nsource {source_version}\npackages {}\n{fragment}",
            packages.join(" ")
        )
        .as_bytes(),
    )
}

/// Stage 3: the kernel, built in the chroot's `/build/linux` (deleted afterwards; about 1.5 GB)
/// and copied into `kernel` with its final .config.
pub(super) fn build_kernel(chroot: &Path, kernel: &Path, version: &str) -> Result<(), String> {
    remove_tree(kernel)?;
    std::fs::create_dir_all(kernel).map_err(io(kernel))?;
    let log = kernel.join("build.log");
    let start = Instant::now();
    eprintln!(
        "xtask: building the LoongArch Linux kernel ({SOURCE_PACKAGE} {version}; several \
         minutes; log {})",
        log.display()
    );
    let build = chroot.join("build");
    let tree = build.join("linux");
    remove_tree(&tree)?;
    std::fs::create_dir_all(&build).map_err(io(&build))?;
    let fragment = build.join("config-fragment");
    std::fs::write(&fragment, FRAGMENT).map_err(io(&fragment))?;
    // Configure, then check the fragment stuck before spending minutes on the build.
    let configure = format!(
        "mkdir /build/linux\n\
         tar -xJf {SOURCE_TARBALL} -C /build/linux --strip-components=1\n\
         cd /build/linux\n\
         {MAKE} tinyconfig\n\
         scripts/kconfig/merge_config.sh -m .config /build/config-fragment\n\
         {MAKE} olddefconfig"
    );
    in_chroot(chroot, &configure, &log)?;
    check_config(&tree.join(".config"))?;
    // `all` is vmlinux plus arch/loongarch/boot/vmlinux.efi (an objcopy of it).
    in_chroot(
        chroot,
        &format!("cd /build/linux\n{MAKE} -j$(nproc) all"),
        &log,
    )?;
    check_config(&tree.join(".config"))?;
    for (from, to) in [
        ("vmlinux", "vmlinux"),
        ("arch/loongarch/boot/vmlinux.efi", "vmlinux.efi"),
        (".config", "config"),
        ("System.map", "System.map"),
    ] {
        let from = tree.join(from);
        if from.is_file() || to != "vmlinux.efi" {
            std::fs::copy(&from, kernel.join(to)).map_err(io(&from))?;
        }
    }
    remove_tree(&tree)?;
    let done = kernel.join("done");
    std::fs::write(&done, version).map_err(io(&done))?;
    eprintln!(
        "xtask: LoongArch Linux kernel built in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Fails, naming them, when options of the fragment do not hold in the .config at `path`.
fn check_config(path: &Path) -> Result<(), String> {
    let config = std::fs::read_to_string(path).map_err(io(path))?;
    let unmet = unmet_options(FRAGMENT, &config);
    if unmet.is_empty() {
        return Ok(());
    }
    Err(format!(
        "options of scripts/xtask/la-linux/config-fragment did not stick in {} (a dependency \
         is missing or the option does not exist on LoongArch):\n  {}",
        path.display(),
        unmet.join("\n  ")
    ))
}

/// The fragment's options that `config` does not have as asked: `CONFIG_X=v` must appear
/// verbatim; `# CONFIG_X is not set` holds when no `CONFIG_X=` line sets it.
fn unmet_options(fragment: &str, config: &str) -> Vec<String> {
    let value = |name: &str| {
        config
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
    };
    let mut unmet = Vec::new();
    for line in fragment.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
        {
            if let Some(v) = value(name) {
                unmet.push(format!("{line} (final: {name}={v})"));
            }
        } else if let Some((name, want)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            match value(name) {
                Some(v) if v == want => {}
                Some(v) => unmet.push(format!("{line} (final: {name}={v})")),
                None => unmet.push(format!("{line} (final: not set)")),
            }
        }
    }
    unmet
}

#[cfg(test)]
mod tests {
    use super::super::{initrd_key, INIT_C, PACKAGES};
    use super::*;

    #[test]
    fn the_kernel_key_follows_the_recipe() {
        let key = kernel_key(FRAGMENT, PACKAGES, "6.12.57-1").unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(key, kernel_key(FRAGMENT, PACKAGES, "6.12.57-1").unwrap());
        let edited = format!("{FRAGMENT}CONFIG_PRINTK=n\n");
        assert_ne!(key, kernel_key(&edited, PACKAGES, "6.12.57-1").unwrap());
        assert_ne!(key, kernel_key(FRAGMENT, PACKAGES, "6.12.58-1").unwrap());
        assert_ne!(
            key,
            kernel_key(FRAGMENT, &PACKAGES[1..], "6.12.57-1").unwrap()
        );
        assert_ne!(
            initrd_key(INIT_C).unwrap(),
            initrd_key(&format!("{INIT_C}\n")).unwrap()
        );
    }

    #[test]
    fn the_config_check_names_options_that_did_not_stick() {
        let fragment = "# comment\nCONFIG_SMP=y\nCONFIG_NR_CPUS=16\nCONFIG_EARLY_PRINTK=y\n\
                        # CONFIG_VT is not set\n# CONFIG_MODULES is not set\n";
        let config = "CONFIG_SMP=y\nCONFIG_NR_CPUS=64\nCONFIG_VT=y\n# CONFIG_MODULES is not set\n";
        assert_eq!(
            unmet_options(fragment, config),
            [
                "CONFIG_NR_CPUS=16 (final: CONFIG_NR_CPUS=64)",
                "CONFIG_EARLY_PRINTK=y (final: not set)",
                "# CONFIG_VT is not set (final: CONFIG_VT=y)",
            ]
        );
        let good = "CONFIG_SMP=y\nCONFIG_NR_CPUS=16\nCONFIG_EARLY_PRINTK=y\n";
        assert!(unmet_options(fragment, good).is_empty());
        // A prefix of another option's name is not that option.
        assert_eq!(
            unmet_options("CONFIG_SMP=y\n", "CONFIG_SMP_UP=y\n"),
            ["CONFIG_SMP=y (final: not set)"]
        );
    }

    #[test]
    fn the_fragment_asks_for_what_the_guest_needs() {
        for option in [
            "CONFIG_SMP=y",
            "CONFIG_NR_CPUS=16",
            "CONFIG_BLK_DEV_INITRD=y",
            "CONFIG_SERIAL_8250_CONSOLE=y",
            "CONFIG_POWER_RESET_SYSCON_POWEROFF=y",
            "# CONFIG_RELOCATABLE is not set",
            "# CONFIG_MODULES is not set",
        ] {
            assert!(FRAGMENT.lines().any(|l| l == option), "{option}");
        }
        assert!(!FRAGMENT.contains("INITRAMFS_SOURCE="));
    }
}
