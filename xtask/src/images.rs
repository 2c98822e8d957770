//! Images beyond the plain system boot: the boot probe and its inputs, the PVH variant of the
//! shim, PVH bundles, and GRUB (Multiboot2) ISOs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;
use crate::artifacts::{TARGET, cargo_build_target, out_dir, root, target_dir, write_file};
use crate::tools::{cargo, require, run_checked, run_quiet, step};

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
    crate::toolchain::ensure(false)?;
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
    run_quiet(&mut cmd)?;
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
    publish(&grub_iso("hsync-os.iso", &a.shim, &modules)?)
}

/// Copies a built image to [`iso_path`].
fn publish(built: &Path) -> Result<PathBuf> {
    let iso = iso_path();
    std::fs::copy(built, &iso).map_err(|e| format!("copy {}: {e}", built.display()))?;
    Ok(iso)
}

/// The Limine release folder: `--limine DIR`, else `LIMINE_DIR` (when set and not empty).
pub fn limine_dir(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg.or_else(|| {
        std::env::var_os("LIMINE_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
    })
}

/// A checked Limine release folder and the `limine` host tool to use with it.
pub struct Limine {
    /// The folder (`BOOTX64.EFI`, `limine-bios.sys`, ...).
    pub dir: PathBuf,
    /// Its `limine` executable, or the one built from its `limine.c` under `target/`.
    pub tool: PathBuf,
}

impl Limine {
    /// Checks `dir` and finds or builds its host tool (cached in `target/limine-tool/`).
    pub fn prepare(dir: &Path) -> Result<Limine> {
        limine_validate(dir)?;
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let on_path = require("limine", "limine").ok();
        let tool = limine_tool(
            dir,
            &target_dir().join("limine-tool"),
            &cc,
            on_path.as_deref(),
        )?;
        Ok(Limine {
            dir: dir.to_owned(),
            tool,
        })
    }
}

/// `cargo xtask iso`: GRUB by default, Limine with `--limine DIR` or `LIMINE_DIR`.
pub fn iso_command(release: bool, limine: Option<PathBuf>, cmdline: &str) -> Result<PathBuf> {
    // Check the Limine folder (and build its tool) before spending time on the system build.
    let limine = limine_dir(limine)
        .as_deref()
        .map(Limine::prepare)
        .transpose()?;
    let a = crate::artifacts::build(release)?;
    let iso = any_iso(&a, limine.as_ref(), cmdline)?;
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

/// Where to get a Limine release, for error messages.
const LIMINE_FETCH: &str = "a Limine binary release (>= 9), e.g. `git clone \
    https://github.com/limine-bootloader/limine --branch=v11.x-binary --depth=1`; see \
    docs/booting.md";

/// Checks a Limine binary release folder; the error names exactly which file is missing.
pub fn limine_validate(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(format!(
            "Limine directory {} does not exist (expected {LIMINE_FETCH})",
            dir.display()
        ));
    }
    for f in LIMINE_FILES {
        if !dir.join(f).is_file() {
            return Err(format!(
                "Limine directory {}: missing {f} (expected {LIMINE_FETCH})",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// The `limine` host tool of release `dir`: `dir/limine` when it is an executable, else (when
/// `dir` has no `limine.c`, as a distribution's folder) `installed` (the `limine` on PATH), else
/// built
/// with the C compiler `cc` from `dir/limine.c` (which embeds `limine-bios-hdd.h`) into
/// `cache/<hash of the sources>/limine`, so a changed release rebuilds and an unchanged one
/// does not. `dir` itself is never written (it is read-only in CI).
pub fn limine_tool(
    dir: &Path,
    cache: &Path,
    cc: &str,
    installed: Option<&Path>,
) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let prebuilt = dir.join("limine");
    if std::fs::metadata(&prebuilt)
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    {
        return Ok(prebuilt);
    }
    // A distribution's package keeps the boot files in one folder and the tool on PATH.
    if !dir.join("limine.c").is_file()
        && let Some(installed) = installed
    {
        return Ok(installed.to_owned());
    }
    let mut sources = Vec::new();
    for f in ["limine.c", "limine-bios-hdd.h"] {
        let bytes = std::fs::read(dir.join(f)).map_err(|_| {
            format!(
                "Limine directory {}: no `limine` host tool and no {f} to build it from \
                 (expected {LIMINE_FETCH})",
                dir.display()
            )
        })?;
        sources.push(bytes);
    }
    let key = fnv1a(sources.iter().flatten().copied());
    let out_dir = cache.join(format!("{key:016x}"));
    let tool = out_dir.join("limine");
    if tool.is_file() {
        return Ok(tool);
    }
    let compiler = if cc.contains('/') {
        Some(PathBuf::from(cc)).filter(|p| p.is_file())
    } else {
        require(cc, "gcc").ok()
    };
    let Some(compiler) = compiler else {
        return Err(format!(
            "C compiler `{cc}` not found: building the Limine host tool from {} needs one; \
             install it with: sudo apt-get install gcc (or set CC, or put a prebuilt `limine` \
             executable in that folder)",
            dir.join("limine.c").display()
        ));
    };
    step(&format!(
        "building the Limine host tool from {}",
        dir.join("limine.c").display()
    ));
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    // Build beside the final name and rename, so an interrupted build never leaves a tool.
    let partial = out_dir.join("limine.partial");
    let out = Command::new(compiler)
        .args(["-O2", "-std=c99", "-I"])
        .arg(dir)
        .arg(dir.join("limine.c"))
        .arg("-o")
        .arg(&partial)
        .output()
        .map_err(|e| format!("cannot run `{cc}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the Limine host tool failed ({cc} {}):\n{}",
            dir.join("limine.c").display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::rename(&partial, &tool)
        .map_err(|e| format!("cannot write {}: {e}", tool.display()))?;
    Ok(tool)
}

/// 64-bit FNV-1a: a stable content hash for cache keys (std's hasher may change between
/// releases).
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
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

/// A Limine hybrid ISO of the system (no shim) as `out_dir()/iso_name`, laid out in
/// `<iso_name>.d`: xorriso, then `limine bios-install` (so it also boots from a BIOS USB stick).
pub fn limine_iso(
    a: &crate::artifacts::Artifacts,
    limine: &Limine,
    iso_name: &str,
    cmdline: &str,
) -> Result<PathBuf> {
    let xorriso = require("xorriso", "xorriso")?;
    step(&format!("building Limine ISO {iso_name}"));
    let tree = out_dir().join(format!("{iso_name}.d"));
    limine_tree(&tree, &limine.dir, &a.kernel, &a.initfs, cmdline)?;
    let iso = out_dir().join(iso_name);
    run_quiet(Command::new(xorriso).args(limine_xorriso_args(&tree, &iso)))?;
    run_quiet(Command::new(&limine.tool).arg("bios-install").arg(&iso))?;
    Ok(iso)
}

/// The ISO of `cargo xtask iso` and `cargo xtask run --iso`, copied to [`iso_path`]: Limine
/// when `limine` is given, else GRUB + the shim.
pub fn any_iso(
    a: &crate::artifacts::Artifacts,
    limine: Option<&Limine>,
    cmdline: &str,
) -> Result<PathBuf> {
    let Some(limine) = limine else {
        return system_iso(a, cmdline);
    };
    publish(&limine_iso(a, limine, "hsync-os-limine.iso", cmdline)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_limine(name: &str, skip: Option<&str>) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-limine-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in LIMINE_FILES {
            if Some(*f) != skip {
                std::fs::write(dir.join(f), b"").unwrap();
            }
        }
        dir
    }

    #[test]
    fn limine_validation_names_the_missing_file() {
        let ok = fake_limine("ok", None);
        limine_validate(&ok).unwrap();
        for missing in LIMINE_FILES {
            let dir = fake_limine(&format!("no-{missing}"), Some(missing));
            let err = limine_validate(&dir).unwrap_err();
            assert!(err.contains(&format!("missing {missing}")), "{err}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let err = limine_validate(&ok.join("nope")).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        std::fs::remove_dir_all(&ok).unwrap();
    }

    #[test]
    fn limine_tool_prebuilt_built_cached_or_a_clear_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = fake_limine("tool", None);
        let cache = dir.join("cache");
        // Neither a tool nor its source.
        let err = limine_tool(&dir, &cache, "cc", None).unwrap_err();
        assert!(
            err.contains("no `limine` host tool and no limine.c"),
            "{err}"
        );
        // ... but an installed tool (a distribution's package): that one.
        let on_path = Path::new("/usr/bin/limine");
        assert_eq!(
            limine_tool(&dir, &cache, "cc", Some(on_path)).unwrap(),
            on_path
        );
        std::fs::write(
            dir.join("limine.c"),
            "#include \"limine-bios-hdd.h\"\nint main(void) { return N; }\n",
        )
        .unwrap();
        let err = limine_tool(&dir, &cache, "cc", None).unwrap_err();
        assert!(err.contains("limine-bios-hdd.h"), "{err}");
        std::fs::write(dir.join("limine-bios-hdd.h"), "#define N 7\n").unwrap();
        // No compiler: the message names the Debian package.
        let err = limine_tool(&dir, &cache, "no-such-cc-xtask", None).unwrap_err();
        assert!(err.contains("sudo apt-get install gcc"), "{err}");
        assert!(!cache.exists(), "nothing built without a compiler");
        if require("cc", "gcc").is_ok() {
            let tool = limine_tool(&dir, &cache, "cc", None).unwrap();
            assert!(tool.starts_with(&cache));
            let status = Command::new(&tool).status().unwrap();
            assert_eq!(status.code(), Some(7), "the tool built from limine.c runs");
            // Cached: the same path, not rebuilt (a compiler that does not exist is not asked).
            assert_eq!(
                limine_tool(&dir, &cache, "no-such-cc-xtask", None).unwrap(),
                tool
            );
            // A changed source is a new build.
            std::fs::write(dir.join("limine-bios-hdd.h"), "#define N 9\n").unwrap();
            let rebuilt = limine_tool(&dir, &cache, "cc", None).unwrap();
            assert_ne!(rebuilt, tool);
            assert_eq!(Command::new(&rebuilt).status().unwrap().code(), Some(9));
        }
        // A prebuilt executable in the folder wins; a non-executable file named `limine` does not.
        std::fs::write(dir.join("limine"), b"").unwrap();
        assert_ne!(
            limine_tool(&dir, &cache, "no-such-cc-xtask", None).ok(),
            Some(dir.join("limine"))
        );
        let mut perm = std::fs::metadata(dir.join("limine")).unwrap().permissions();
        perm.set_mode(0o755);
        std::fs::set_permissions(dir.join("limine"), perm).unwrap();
        assert_eq!(
            limine_tool(&dir, &cache, "no-such-cc-xtask", None).unwrap(),
            dir.join("limine")
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
