//! `cargo xtask check`: rustfmt and clippy (`-D warnings`) for host and target crates.

use crate::Result;
use crate::artifacts::{TARGET, root};
use crate::tools::{cargo, run_checked, step};

/// Crates built for the host (tested with `cargo test`).
const HOST: &[&str] = &[
    "xtask",
    "hsync-initfs",
    "hsync-bootcore",
    "hsync-kcore",
    "hsync-elf",
    "hsync-abi",
    "libhsync",
    "hsync-phase-core",
    "hsync-shell-lang",
];
/// Crates built for bare metal.
const BARE: &[&str] = &[
    "hsync-kernel",
    "hsync-shim",
    "hsync-bootprobe",
    "libhsync",
    "hsync-root",
    "hsync-selftest",
    "hsync-initfs",
    "hsync-abi",
    "hsync-elf",
];

/// Runs every check, failing on the first problem.
pub fn run() -> Result<()> {
    crate::toolchain::ensure(true)?;
    step("rustfmt --check");
    run_checked(
        cargo()
            .current_dir(root())
            .args(["fmt", "--all", "--check"]),
    )?;

    step("clippy (host crates, all targets)");
    let mut cmd = cargo();
    cmd.current_dir(root())
        .args(["clippy", "--all-targets", "--features", "hsync-initfs/std"]);
    for p in HOST {
        cmd.args(["-p", p]);
    }
    for p in crate::artifacts::server_packages()
        .into_iter()
        .filter(|p| p.ends_with("-api"))
    {
        cmd.args(["-p", &p]);
    }
    run_checked(cmd.args(["--", "-D", "warnings"]))?;

    step(&format!("clippy ({TARGET} crates)"));
    let mut cmd = cargo();
    cmd.current_dir(root()).args(["clippy", "--target", TARGET]);
    for p in BARE {
        cmd.args(["-p", p]);
    }
    // Every crate under servers/ (servers, their -api crates, the phase engine) is no_std.
    for p in crate::artifacts::server_packages() {
        if !BARE.contains(&p.as_str()) {
            cmd.args(["-p", &p]);
        }
    }
    run_checked(cmd.args(["--", "-D", "warnings"]))?;
    step("check passed");
    Ok(())
}
