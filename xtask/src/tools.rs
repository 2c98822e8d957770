//! External commands: presence checks with install hints, and running cargo.

use std::path::PathBuf;
use std::process::Command;

use crate::Result;

/// Finds `name` on PATH or fails with the Debian package that provides it.
pub fn require(name: &str, debian_package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!("`{name}` not found; install it with: sudo apt-get install {debian_package}")
        })
}

/// The cargo that runs us (so the pinned toolchain is used throughout).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cmd`, failing with its command line when it does not succeed.
pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("command failed ({status}): {cmd:?}"))
    }
}

/// Runs `cmd` with its output captured (tools that talk a lot, like xorriso), failing with
/// its command line and what it printed when it does not succeed.
pub fn run_quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "command failed ({}): {cmd:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Prints one progress line.
pub fn step(what: &str) {
    eprintln!("==> {what}");
}
