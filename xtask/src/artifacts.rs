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
    /// The initfs image.
    pub initfs: PathBuf,
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

/// Builds shim and kernel and packs the initfs.
pub fn build(release: bool) -> Result<Artifacts> {
    step(&format!(
        "building shim and kernel ({})",
        if release { "release" } else { "debug" }
    ));
    let dir = cargo_build_target(&["hsync-shim", "hsync-kernel"], release, &[])?;
    step("packing initfs");
    let initfs = out_dir().join("initfs.img");
    write_initfs(&initfs)?;
    Ok(Artifacts {
        shim: dir.join("hsync-shim"),
        kernel: dir.join("hsync-kernel"),
        initfs,
    })
}

/// The initfs of this milestone: only a version file (servers arrive with the kernel core).
fn write_initfs(path: &Path) -> Result<()> {
    let mut b = hsync_initfs::Builder::new();
    let version = format!("HSYNC-OS {}\n", env!("CARGO_PKG_VERSION"));
    b.add("version", version.into_bytes())
        .map_err(|e| e.to_string())?;
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
