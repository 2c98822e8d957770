//! Building the bootable pieces: shim, kernel, initfs.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::tools::{cargo, run_checked, step};

/// The target every bare-metal crate is built for.
pub const TARGET: &str = "x86_64-unknown-none";

/// What `build` produces.
#[derive(Clone, Debug)]
pub struct Artifacts {
    /// The boot shim ELF (Multiboot1/2 + PVH in, Limine out).
    pub shim: PathBuf,
    /// The kernel ELF (with debug info, used for symbolizing too).
    pub kernel: PathBuf,
    /// The normal initfs: `version` + `root` (servers/root) + `manifest` (the compiled
    /// initfs/system.toml) + each manifest server's ELF under its crate name.
    pub initfs: PathBuf,
    /// The kernel-only initfs: `version`, no `root`, so `test` boots end after the ktests.
    pub initfs_kernel: PathBuf,
    /// The test initfs: `version` + `root` = selftest (prints `[utest]` lines, then exits).
    pub initfs_test: PathBuf,
    /// The bench initfs: the test initfs + a `bench` file (`ns`).
    pub initfs_bench: PathBuf,
    /// The bench initfs for `-icount shift=0` runs (`bench` = `icount`).
    pub initfs_icount: PathBuf,
    /// The selftest ELF (root of the test, bench and fuzz images).
    pub selftest: PathBuf,
}

impl Artifacts {
    /// The fuzz initfs: the test initfs + a `fuzz` file holding `config` (`key=value` words,
    /// read by servers/test/selftest/src/fuzz.rs), written as `name`.
    pub fn fuzz_initfs(&self, name: &str, config: &str) -> Result<PathBuf> {
        let selftest = std::fs::read(&self.selftest)
            .map_err(|e| format!("cannot read {}: {e}", self.selftest.display()))?;
        let path = out_dir().join(name);
        write_initfs(&path, &[("root", &selftest), ("fuzz", config.as_bytes())])?;
        Ok(path)
    }
}

/// User programs built for [`TARGET`] and packed into initfs images.
pub const USER_CRATES: &[&str] = &["hsync-root", "hsync-selftest"];

/// Package names of the workspace members under `servers/` (read from the root `Cargo.toml`'s
/// `members` and each member's `name = "..."`), so a new server needs no list edits in xtask.
pub fn server_packages() -> Vec<String> {
    let root = root();
    let Ok(manifest) = std::fs::read_to_string(root.join("Cargo.toml")) else {
        return Vec::new();
    };
    manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("\"servers/"))
        .filter_map(|l| l.split('"').next())
        .filter_map(|dir| {
            let toml =
                std::fs::read_to_string(root.join("servers").join(dir).join("Cargo.toml")).ok()?;
            toml.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("name = \"")?
                    .strip_suffix('"')
                    .map(str::to_owned)
            })
        })
        .collect()
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .into()
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// Directory for xtask's own outputs (images, logs).
pub fn out_dir() -> PathBuf {
    target_dir().join("hsync")
}

fn profile_dir(release: bool) -> PathBuf {
    target_dir()
        .join(TARGET)
        .join(if release { "release" } else { "debug" })
}

/// Builds bare-metal crates `packages` (with extra cargo args) for [`TARGET`].
pub fn cargo_build_target(packages: &[&str], release: bool, extra: &[&str]) -> Result<PathBuf> {
    crate::toolchain::ensure(false)?;
    let mut cmd = cargo();
    cmd.current_dir(root()).args(["build", "--target", TARGET]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    if release {
        cmd.arg("--release");
    }
    cmd.args(extra);
    run_checked(&mut cmd)?;
    Ok(profile_dir(release))
}

/// Builds shim, kernel and user programs and packs the initfs images.
pub fn build(release: bool) -> Result<Artifacts> {
    step(&format!(
        "building shim, kernel and user programs ({})",
        if release { "release" } else { "debug" }
    ));
    // The manifest is checked before anything is built; its server crates join the build.
    let plan = crate::manifest::plan()?;
    let mut crates = vec!["hsync-shim", "hsync-kernel"];
    crates.extend(USER_CRATES);
    crates.extend(plan.crates.iter().map(String::as_str));
    let dir = cargo_build_target(&crates, release, &[])?;
    step("packing initfs images");
    // Release images pack stripped programs; the ELFs with their debug info stay in `dir` for
    // symbolizing and gdb.
    let read = |name: &str| {
        let p = dir.join(name);
        if release {
            return stripped(&p);
        }
        std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let (root, selftest) = (read("hsync-root")?, read("hsync-selftest")?);
    check_elf_kernel(&dir.join("hsync-kernel"))?;
    let pack = |name: &str, files: &[(&str, &[u8])]| -> Result<PathBuf> {
        let path = out_dir().join(name);
        write_initfs(&path, files)?;
        Ok(path)
    };
    let servers = plan
        .crates
        .iter()
        .map(|c| Ok((c.as_str(), read(c)?)))
        .collect::<Result<Vec<_>>>()?;
    for (name, elf) in [("hsync-root", &root), ("hsync-selftest", &selftest)]
        .into_iter()
        .chain(servers.iter().map(|(c, e)| (*c, e)))
    {
        check_elf_user(name, elf)?;
    }
    let mut normal = vec![
        ("root", root.as_slice()),
        (hsync_initfs::manifest::FILE_NAME, plan.table.as_slice()),
    ];
    normal.extend(servers.iter().map(|(c, elf)| (*c, elf.as_slice())));
    Ok(Artifacts {
        shim: dir.join("hsync-shim"),
        kernel: dir.join("hsync-kernel"),
        initfs: pack("initfs.img", &normal)?,
        initfs_kernel: pack("initfs-kernel.img", &[])?,
        initfs_test: pack("initfs-test.img", &[("root", &selftest)])?,
        initfs_bench: pack(
            "initfs-bench.img",
            &[("root", &selftest), ("bench", b"ns\n")],
        )?,
        initfs_icount: pack(
            "initfs-bench-icount.img",
            &[("root", &selftest), ("bench", b"icount\n")],
        )?,
        selftest: dir.join("hsync-selftest"),
    })
}

/// The kernel's loader would refuse `elf` (the same checks, `hsync_kcore::elf::plan`): a build
/// error naming the program, not a fault at boot.
pub fn check_elf_user(name: &str, elf: &[u8]) -> Result<()> {
    hsync_kcore::elf::plan(elf)
        .map(|_| ())
        .map_err(|e| format!("{name}: the kernel's ELF loader refuses this program: {e:?}"))
}

/// The shim would refuse the kernel (`hsync_bootcore::elf::plan`).
fn check_elf_kernel(path: &Path) -> Result<()> {
    let elf = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    hsync_bootcore::elf::plan(&elf)
        .map(|_| ())
        .map_err(|e| format!("{}: the shim refuses this kernel: {e:?}", path.display()))
}

/// `elf` without symbols and debug info (binutils' `strip`), written beside xtask's outputs.
pub fn stripped(elf: &Path) -> Result<Vec<u8>> {
    let strip = crate::tools::require("strip", "binutils")?;
    let name = elf.file_name().ok_or("program path without a name")?;
    let out = out_dir().join("stripped").join(name);
    std::fs::create_dir_all(out_dir().join("stripped")).map_err(|e| e.to_string())?;
    crate::tools::run_quiet(
        std::process::Command::new(strip)
            .arg("--strip-all")
            .arg("-o")
            .arg(&out)
            .arg(elf),
    )?;
    std::fs::read(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))
}

/// An initfs with the `version` file and `files`.
fn write_initfs(path: &Path, files: &[(&str, &[u8])]) -> Result<()> {
    let mut b = hsync_initfs::Builder::new();
    let version = format!("HSYNC-OS {}\n", env!("CARGO_PKG_VERSION"));
    b.add("version", version.into_bytes())
        .map_err(|e| e.to_string())?;
    for (name, data) in files {
        b.add(name, data.to_vec()).map_err(|e| e.to_string())?;
    }
    write_file(path, &b.finish())
}

/// Writes `bytes` to `path`, creating parent directories.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
