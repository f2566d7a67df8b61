//! UEFI firmware for booting LoongArch EFI images on QEMU `virt`: Debian trixie's
//! `qemu-efi-loongarch64` (edk2, Architecture: all), fetched once with `apt-get download` through
//! a private apt configuration in a temporary directory (its own sources list, lists and cache;
//! the system's apt sources are never touched), unpacked with `dpkg-deb -x`, and cached as
//! `out/firmware/qemu-efi-loongarch64/QEMU_EFI.fd`.

use crate::{process, root};
use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE: &str = "qemu-efi-loongarch64";
const SOURCE: &str = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
                      http://deb.debian.org/debian trixie main\n";

/// Where the firmware is cached.
pub fn firmware_path() -> PathBuf {
    root()
        .join("out/firmware")
        .join(PACKAGE)
        .join("QEMU_EFI.fd")
}

fn apt(dir: &Path) -> Command {
    let mut cmd = Command::new("apt-get");
    let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
    cmd.current_dir(dir)
        .args(["-q", "-o"])
        .arg(opt("Dir::Etc::SourceList", &dir.join("sources.list")))
        .arg("-o")
        .arg(opt("Dir::Etc::SourceParts", &dir.join("parts")))
        .arg("-o")
        .arg(opt("Dir::State::Lists", &dir.join("lists")))
        .arg("-o")
        .arg(opt("Dir::Cache", &dir.join("cache")))
        .args(["-o", "APT::Sandbox::User=root"]);
    cmd
}

/// The firmware file, fetched and cached on first use.
pub fn ensure_firmware() -> Result<PathBuf, String> {
    let dest = firmware_path();
    if dest.exists() {
        return Ok(dest);
    }
    for tool in ["apt-get", "dpkg-deb"] {
        if !process::on_path(tool) {
            return Err(format!(
                "{tool} is needed to fetch {PACKAGE} (a Debian host)"
            ));
        }
    }
    let tmp = std::env::temp_dir().join(format!("septum-apt-trixie-{}", std::process::id()));
    let result = fetch(&tmp, &dest);
    let _ = std::fs::remove_dir_all(&tmp);
    result.map(|()| dest)
}

fn fetch(tmp: &Path, dest: &Path) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    for d in ["parts", "lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(tmp.join(d)).map_err(io)?;
    }
    std::fs::write(tmp.join("sources.list"), SOURCE).map_err(io)?;
    process::run(apt(tmp).arg("update"))?;
    process::run(apt(tmp).args(["download", PACKAGE]))?;
    let deb = std::fs::read_dir(tmp)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download left no {PACKAGE} package"))?;
    let unpacked = tmp.join("x");
    process::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let fd = unpacked.join("usr/share").join(PACKAGE).join("QEMU_EFI.fd");
    std::fs::create_dir_all(dest.parent().unwrap()).map_err(io)?;
    std::fs::copy(&fd, dest).map_err(|e| format!("{}: {e}", fd.display()))?;
    Ok(())
}
