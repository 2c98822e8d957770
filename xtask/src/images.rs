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

/// Name of the kernel on the system ISO (under `/boot/`).
const ISO_KERNEL: &str = "hsync-kernel";
/// Name of the initfs on the system ISO (under `/boot/`).
const ISO_INITFS: &str = "initfs.img";

/// Where `cargo xtask iso` writes the image.
pub fn iso_path() -> PathBuf {
    target_dir().join("hsync-os.iso")
}

/// The system as a GRUB hybrid ISO: the shim through Multiboot2 with the kernel (+ `cmdline`)
/// and the initfs (`initfs`), as docs/booting.md describes; copied to [`iso_path`].
pub fn system_iso(a: &crate::artifacts::Artifacts, cmdline: &str) -> Result<PathBuf> {
    let modules = [
        IsoModule {
            source: &a.kernel,
            name: ISO_KERNEL,
            args: cmdline.trim(),
        },
        IsoModule {
            source: &a.initfs,
            name: ISO_INITFS,
            args: "initfs",
        },
    ];
    let built = grub_iso("hsync-os.iso", &a.shim, &modules)?;
    let iso = iso_path();
    std::fs::copy(&built, &iso).map_err(|e| format!("copy {}: {e}", built.display()))?;
    Ok(iso)
}

/// `cargo xtask iso`: GRUB by default, Limine with `--limine DIR` or `LIMINE_DIR`.
pub fn iso_command(release: bool, limine: Option<PathBuf>, cmdline: &str) -> Result<PathBuf> {
    let limine = limine.or_else(|| {
        std::env::var_os("LIMINE_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
    });
    // Check the Limine directory before spending time on the build.
    let limine_tool = limine.as_deref().map(limine_validate).transpose()?;
    let a = crate::artifacts::build(release)?;
    let iso = match (limine.as_deref(), limine_tool) {
        (Some(dir), Some(tool)) => limine_iso(&a, dir, &tool, cmdline)?,
        _ => system_iso(&a, cmdline)?,
    };
    let size = std::fs::metadata(&iso).map(|m| m.len()).unwrap_or(0);
    step(&format!(
        "wrote {} ({:.1} MiB); write it to a USB stick with: sudo dd if={} of=/dev/sdX bs=4M \
         conv=fsync status=progress (docs/hardware.md)",
        iso.display(),
        size as f64 / (1024.0 * 1024.0),
        iso.display()
    ));
    Ok(iso)
}

/// Files a Limine binary release must hold (as `limine bios-install` and Limine's ISO recipe use
/// them); the `limine` host tool is checked separately.
pub const LIMINE_FILES: &[&str] = &[
    "limine-bios.sys",
    "limine-bios-cd.bin",
    "limine-uefi-cd.bin",
    "BOOTX64.EFI",
];

/// Checks a Limine binary release directory; returns its `limine` host tool. The error names
/// exactly which file is missing.
pub fn limine_validate(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(format!(
            "Limine directory {} does not exist (expected a Limine binary release, e.g. \
             `git clone https://github.com/limine-bootloader/limine --branch=v9.x-binary --depth=1`)",
            dir.display()
        ));
    }
    for f in LIMINE_FILES {
        if !dir.join(f).is_file() {
            return Err(format!(
                "Limine directory {}: missing {f} (expected a Limine binary release)",
                dir.display()
            ));
        }
    }
    let tool = dir.join("limine");
    if !tool.is_file() {
        return Err(format!(
            "Limine directory {}: missing the `limine` host tool (build it with `make -C {}`)",
            dir.display(),
            dir.display()
        ));
    }
    Ok(tool)
}

/// `limine.conf` for the system: the kernel through the Limine protocol with `cmdline`, and the
/// initfs as a module with the string `initfs` (docs/booting.md).
pub fn limine_conf(cmdline: &str) -> String {
    format!(
        "timeout: 0\nserial: yes\n\n/HSYNC-OS\n    protocol: limine\n    path: boot():/boot/{ISO_KERNEL}\n    \
         cmdline: {}\n    module_path: boot():/boot/{ISO_INITFS}\n    module_string: initfs\n",
        cmdline.trim()
    )
}

/// Lays out a Limine ISO tree under `tree`: `/boot/{kernel,initfs}`, `/boot/limine/` (config and
/// BIOS/CD files) and `/EFI/BOOT/BOOTX64.EFI`.
pub fn limine_tree(
    tree: &Path,
    limine: &Path,
    kernel: &Path,
    initfs: &Path,
    cmdline: &str,
) -> Result<()> {
    let _ = std::fs::remove_dir_all(tree);
    let boot = tree.join("boot");
    let efi = tree.join("EFI").join("BOOT");
    for d in [boot.join("limine"), efi.clone()] {
        std::fs::create_dir_all(&d).map_err(|e| format!("create {}: {e}", d.display()))?;
    }
    let copy = |from: &Path, to: &Path| {
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| format!("copy {}: {e}", from.display()))
    };
    copy(kernel, &boot.join(ISO_KERNEL))?;
    copy(initfs, &boot.join(ISO_INITFS))?;
    for f in [
        "limine-bios.sys",
        "limine-bios-cd.bin",
        "limine-uefi-cd.bin",
    ] {
        copy(&limine.join(f), &boot.join("limine").join(f))?;
    }
    copy(&limine.join("BOOTX64.EFI"), &efi.join("BOOTX64.EFI"))?;
    write_file(
        &boot.join("limine").join("limine.conf"),
        limine_conf(cmdline).as_bytes(),
    )
}

/// The xorriso arguments of Limine's hybrid ISO recipe (its USAGE.md / README).
pub fn limine_xorriso_args(tree: &Path, iso: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "-as",
        "mkisofs",
        "-R",
        "-r",
        "-J",
        "-b",
        "boot/limine/limine-bios-cd.bin",
        "-no-emul-boot",
        "-boot-load-size",
        "4",
        "-boot-info-table",
        "-hfsplus",
        "-apm-block-size",
        "2048",
        "--efi-boot",
        "boot/limine/limine-uefi-cd.bin",
        "-efi-boot-part",
        "--efi-boot-image",
        "--protective-msdos-label",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(tree.into());
    args.push("-o".into());
    args.push(iso.into());
    args
}

/// A Limine hybrid ISO of the system (no shim): tree, xorriso, `limine bios-install`.
fn limine_iso(
    a: &crate::artifacts::Artifacts,
    dir: &Path,
    tool: &Path,
    cmdline: &str,
) -> Result<PathBuf> {
    let xorriso = require("xorriso", "xorriso")?;
    step("building Limine ISO hsync-os.iso");
    let tree = out_dir().join("hsync-os-limine.d");
    limine_tree(&tree, dir, &a.kernel, &a.initfs, cmdline)?;
    let iso = iso_path();
    run_checked(Command::new(xorriso).args(limine_xorriso_args(&tree, &iso)))?;
    run_checked(Command::new(tool).arg("bios-install").arg(&iso))?;
    Ok(iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_limine(name: &str, skip: Option<&str>) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-limine-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in LIMINE_FILES.iter().chain(&["limine"]) {
            if Some(*f) != skip {
                std::fs::write(dir.join(f), b"").unwrap();
            }
        }
        dir
    }

    #[test]
    fn limine_validation_names_the_missing_file() {
        let ok = fake_limine("ok", None);
        assert_eq!(limine_validate(&ok).unwrap(), ok.join("limine"));
        for missing in LIMINE_FILES.iter().chain(&["limine"]) {
            let dir = fake_limine(&format!("no-{missing}"), Some(missing));
            let err = limine_validate(&dir).unwrap_err();
            assert!(err.contains(&format!("missing {missing}")) || err.contains("`limine`"));
            if *missing == "limine" {
                assert!(err.contains("host tool"), "{err}");
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let err = limine_validate(&ok.join("nope")).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        std::fs::remove_dir_all(&ok).unwrap();
    }

    #[test]
    fn limine_conf_and_tree() {
        let conf = limine_conf(" log=debug ");
        for want in [
            "timeout: 0\n",
            "/HSYNC-OS\n",
            "    protocol: limine\n",
            "    path: boot():/boot/hsync-kernel\n",
            "    cmdline: log=debug\n",
            "    module_path: boot():/boot/initfs.img\n",
            "    module_string: initfs\n",
        ] {
            assert!(conf.contains(want), "{want:?} not in {conf}");
        }
        let dir = fake_limine("tree", None);
        std::fs::write(dir.join("k.elf"), b"kernel").unwrap();
        std::fs::write(dir.join("i.img"), b"initfs").unwrap();
        let tree = dir.join("iso");
        limine_tree(&tree, &dir, &dir.join("k.elf"), &dir.join("i.img"), "x=1").unwrap();
        let read = |p: &str| std::fs::read(tree.join(p)).unwrap();
        assert_eq!(read("boot/hsync-kernel"), b"kernel");
        assert_eq!(read("boot/initfs.img"), b"initfs");
        assert_eq!(
            read("boot/limine/limine.conf"),
            limine_conf("x=1").as_bytes()
        );
        for f in [
            "boot/limine/limine-bios.sys",
            "boot/limine/limine-bios-cd.bin",
            "boot/limine/limine-uefi-cd.bin",
            "EFI/BOOT/BOOTX64.EFI",
        ] {
            assert!(tree.join(f).is_file(), "{f}");
        }
        let args = limine_xorriso_args(&tree, Path::new("o.iso"));
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        let joined = args.join(" ");
        assert!(joined.contains("-b boot/limine/limine-bios-cd.bin -no-emul-boot"));
        assert!(joined.contains("--efi-boot boot/limine/limine-uefi-cd.bin -efi-boot-part"));
        assert!(joined.ends_with("-o o.iso"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
