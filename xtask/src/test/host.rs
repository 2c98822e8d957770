//! Host unit tests: `cargo test` for the arch-free logic crates, one case per libtest test.

use std::process::Stdio;

use super::Case;
use crate::Result;
use crate::artifacts;
use crate::tools::{cargo, step};

/// Host crates with unit tests (the arch-free logic).
pub const HOST_CRATES: &[&str] = &[
    "hsync-initfs",
    "hsync-bootcore",
    "hsync-kcore",
    "hsync-elf",
    "hsync-abi",
    "libhsync",
    "xtask",
    "hsync-phase-core",
    "hsync-shell-lang",
    "hsync-vga",
    "hsync-phase",
];

/// `cargo test` for the host crates; one case per libtest test.
pub fn host_tests(crates: &[&str]) -> Result<Vec<Case>> {
    step(&format!("host tests: {}", crates.join(", ")));
    let mut cmd = cargo();
    cmd.current_dir(artifacts::root())
        .args(["test", "--no-fail-fast"]);
    for c in crates {
        cmd.args(["-p", c]);
    }
    if crates.contains(&"hsync-initfs") {
        cmd.args(["--features", "hsync-initfs/std"]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut cases = parse_libtest(&stdout);
    if !out.status.success() || cases.iter().any(|c| !c.passed) {
        eprintln!("---- cargo test output ----\n{stdout}\n{stderr}----");
    }
    if !out.status.success() && cases.iter().all(|c| c.passed) {
        cases.push(Case::new(
            "host::cargo-test",
            false,
            format!("cargo test failed: {}", out.status),
        ));
    }
    eprintln!("    {} host tests", cases.len());
    Ok(cases)
}

/// Reads libtest's `test NAME ... ok|FAILED` lines.
fn parse_libtest(stdout: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("test ") else {
            continue;
        };
        let Some((name, verdict)) = rest.rsplit_once(" ... ") else {
            continue;
        };
        match verdict.trim() {
            "ok" => cases.push(Case::new(format!("host::{name}"), true, "")),
            "FAILED" => cases.push(Case::new(
                format!("host::{name}"),
                false,
                "see output above",
            )),
            _ => {} // ignored / bench lines are not counted as passed
        }
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_lines_are_counted() {
        let out = "running 3 tests\ntest a::b ... ok\ntest c ... FAILED\ntest d ... ignored\n\
                   test result: FAILED. 1 passed; 1 failed;";
        let cases = parse_libtest(out);
        assert_eq!(cases.len(), 2);
        assert!(cases[0].passed && !cases[1].passed);
    }
}
