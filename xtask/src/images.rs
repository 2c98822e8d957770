//! Images beyond the plain system boot: the boot probe and its inputs, the PVH variant of the
//! shim, PVH bundles, and GRUB (Multiboot2) ISOs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;
use crate::artifacts::{TARGET, cargo_build_target, out_dir, root, target_dir, write_file};
use crate::tools::{cargo, require, run_checked, step};

/// Kernel command line the probe expects to receive verbatim.
pub const PROBE_CMDLINE: &str = "probe a=1 b=two";
/// Length of the probe's `pattern` module (deliberately not a multiple of a page).
pub const PATTERN_LEN: usize = 12345;

/// Builds the boot probe (a Limine test kernel); returns its ELF.
pub fn probe(release: bool) -> Result<PathBuf> {
    step("building boot probe");
    Ok(cargo_build_target(&["hsync-bootprobe"], release, &[])?.join("hsync-bootprobe"))
}

/// Writes the probe's `pattern` module: byte `i` is `(i * 7 + 3) mod 256`.
pub fn pattern() -> Result<PathBuf> {
    let bytes: Vec<u8> = (0..PATTERN_LEN).map(|i| (i * 7 + 3) as u8).collect();
    let path = out_dir().join("pattern.bin");
    write_file(&path, &bytes)?;
    Ok(path)
}

/// Builds the shim without its Multiboot1 header so QEMU's `-kernel` takes the PVH path.
/// A separate target dir keeps it from replacing the real shim.
pub fn pvh_shim(release: bool) -> Result<PathBuf> {
    step("building shim (PVH test variant)");
    let dir = target_dir().join("pvh-test");
    let mut cmd = cargo();
    cmd.current_dir(root())
        .args(["build", "--target", TARGET, "-p", "hsync-shim"]);
    cmd.args(["--features", "pvh-test"])
        .arg("--target-dir")
        .arg(&dir);
    if release {
        cmd.arg("--release");
    }
    run_checked(&mut cmd)?;
    Ok(dir
        .join(TARGET)
        .join(if release { "release" } else { "debug" })
        .join("hsync-shim"))
}

/// A PVH bundle: one initfs archive holding `kernel` and the other modules by name.
pub fn bundle(name: &str, kernel: &Path, modules: &[(&str, &Path)]) -> Result<PathBuf> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let mut b = hsync_initfs::Builder::new();
    b.add("kernel", read(kernel)?).map_err(|e| e.to_string())?;
    for (module, path) in modules {
        b.add(module, read(path)?).map_err(|e| e.to_string())?;
    }
    let path = out_dir().join(name);
    write_file(&path, &b.finish())?;
    Ok(path)
}

/// One file on an ISO and the `module2` line that loads it.
pub struct IsoModule<'a> {
    /// Host file.
    pub source: &'a Path,
    /// Name under `/boot/` on the ISO.
    pub name: &'a str,
    /// Module string after its path (the kernel command line for module 0).
    pub args: &'a str,
}

/// Builds a hybrid BIOS/UEFI GRUB ISO that boots `shim` through Multiboot2 with `modules`.
pub fn grub_iso(iso_name: &str, shim: &Path, modules: &[IsoModule<'_>]) -> Result<PathBuf> {
    let mkrescue = require(
        "grub-mkrescue",
        "grub-pc-bin grub-efi-amd64-bin xorriso mtools",
    )?;
    require("xorriso", "xorriso")?;
    require("mformat", "mtools")?;
    step(&format!("building GRUB ISO {iso_name}"));
    let tree = out_dir().join(format!("{iso_name}.d"));
    let _ = std::fs::remove_dir_all(&tree);
    let boot = tree.join("boot");
    let copy = |from: &Path, to: &Path| {
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| format!("copy {}: {e}", from.display()))
    };
    std::fs::create_dir_all(boot.join("grub")).map_err(|e| format!("create iso tree: {e}"))?;
    copy(shim, &boot.join("shim.elf"))?;
    let mut entry = String::from("    multiboot2 /boot/shim.elf\n");
    for m in modules {
        copy(m.source, &boot.join(m.name))?;
        // The first word after the file is the Limine `path`, the rest its string (docs/booting.md).
        entry.push_str(&format!(
            "    module2 /boot/{0} /boot/{0} {1}\n",
            m.name, m.args
        ));
    }
    let cfg = format!(
        "set timeout=0\nset default=0\ninsmod all_video\nserial --unit=0 --speed=115200\n\
         terminal_input serial console\nterminal_output serial console\n\
         menuentry \"HSYNC-OS\" {{\n{entry}    boot\n}}\n"
    );
    write_file(&boot.join("grub").join("grub.cfg"), cfg.as_bytes())?;
    let iso = out_dir().join(iso_name);
    // A trimmed module list keeps the image small; the part_* modules silence GRUB-EFI's
    // "not found" complaints about partition maps it probes for.
    let install = "multiboot2 normal configfile iso9660 part_msdos part_gpt part_acorn part_amiga \
                   part_apple part_bsd part_dfly part_dvh part_plan part_sun part_sunpc all_video \
                   serial terminal boot echo";
    let mut cmd = Command::new(mkrescue);
    cmd.arg("-o")
        .arg(&iso)
        .arg(format!("--install-modules={install}"));
    cmd.args(["--locales=", "--fonts=", "--themes="]).arg(&tree);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run grub-mkrescue: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "grub-mkrescue failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(iso)
}

/// OVMF firmware: the read-only code image and a private, writable copy of the variable store.
pub fn ovmf() -> Result<(PathBuf, PathBuf)> {
    let code = Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd");
    let vars = Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd");
    if !code.exists() || !vars.exists() {
        return Err("OVMF not found; install it with: sudo apt-get install ovmf".into());
    }
    let copy = out_dir().join("OVMF_VARS_4M.fd");
    std::fs::create_dir_all(out_dir()).map_err(|e| e.to_string())?;
    std::fs::copy(vars, &copy).map_err(|e| format!("copy OVMF vars: {e}"))?;
    Ok((code.to_owned(), copy))
}
