//! The `limine-bios` and `limine-uefi` suites: the system as a real Limine ISO (`cargo xtask iso
//! --limine DIR`, no shim), booted from the CD drive under SeaBIOS and under OVMF. Checks: the
//! kernel names the loader as `booted by Limine <version> (Bios)` / `(Uefi64)`, where the
//! version is what the release's host tool reports (`limine --version`); root reaches `system
//! ready` with the manifest's servers, nothing faults or panics; under UEFI the vga console
//! comes up on Limine's framebuffer; the shell answers `help` on COM1, and `poweroff` ends QEMU
//! with status 0.
//!
//! They run when a Limine folder is given (`cargo xtask test --limine DIR` or `LIMINE_DIR`);
//! without one they are reported as skipped, never as passed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::shell::{self, Input, Step};
use super::{Case, check, iso, no_panic, system};
use crate::Result;
use crate::artifacts::{self, Artifacts};
use crate::images::{self, Limine};
use crate::qemu::{Boot, Captured, Machine, Outcome};
use crate::symbolize::Symbolizer;
use crate::tools::step;

/// The suites: name, UEFI, timeout (TCG; OVMF alone takes tens of seconds).
const SUITES: &[(&str, bool, Duration)] = &[
    ("limine-bios", false, Duration::from_secs(120)),
    ("limine-uefi", true, Duration::from_secs(240)),
];

/// The shell's greeting.
const SHELL_UP: &str = "HSYNC-OS shell: type `help`";

/// The session: `help` once the shell is up, `poweroff` once it answered.
const SESSION: &[Step] = &[
    Step {
        after: SHELL_UP,
        input: Input::Serial(b"help\r"),
    },
    Step {
        after: shell::HELP_END,
        input: Input::Serial(b"poweroff\r"),
    },
];

/// Whether `filter` selects any Limine suite.
pub fn wanted(filter: &dyn Fn(&str) -> bool) -> bool {
    SUITES.iter().any(|(name, ..)| filter(name))
}

/// What the Limine suites did: their cases, and the names of suites skipped (no Limine).
pub struct Report {
    /// Verdicts of the suites that ran.
    pub cases: Vec<Case>,
    /// Suites that could not run.
    pub skipped: Vec<String>,
}

/// Runs the selected suites with the Limine release `dir` (`None`: all skipped).
pub fn run(
    a: &Artifacts,
    symbolizer: &Symbolizer,
    filter: &dyn Fn(&str) -> bool,
    dir: Option<PathBuf>,
) -> Result<Report> {
    let names = SUITES.iter().map(|(n, ..)| *n).filter(|n| filter(n));
    let Some(dir) = dir else {
        step("Limine suites skipped: no Limine folder (--limine DIR or LIMINE_DIR)");
        return Ok(Report {
            cases: Vec::new(),
            skipped: names.map(str::to_owned).collect(),
        });
    };
    // A folder was given: anything wrong with it is a failure, not a skip.
    let prepared = Limine::prepare(&dir).and_then(|l| {
        let version = tool_version(&l.tool)?;
        let iso = images::limine_iso(a, &l, "limine-test.iso", "")?;
        Ok((version, iso))
    });
    let (version, iso) = match prepared {
        Ok(v) => v,
        Err(e) => {
            let cases = names
                .map(|n| {
                    check(
                        n,
                        "image",
                        false,
                        format!("Limine ISO from {}: {e}", dir.display()),
                    )
                })
                .collect();
            return Ok(Report {
                cases,
                skipped: Vec::new(),
            });
        }
    };
    let mut cases = Vec::new();
    for &(name, uefi, timeout) in SUITES.iter().filter(|(n, ..)| filter(n)) {
        step(&format!("QEMU suite `{name}` (Limine {version})"));
        let sock = artifacts::out_dir().join(format!("{name}-monitor.sock"));
        let boot = Boot::Cdrom {
            iso: iso.clone(),
            uefi,
        };
        // Timed from just before QEMU starts, as the iso suites print it.
        let start = std::time::Instant::now();
        let mut ready_after = None;
        let session = shell::drive(
            &Machine::default(),
            &boot,
            &sock,
            SESSION,
            timeout,
            symbolizer,
            |event, _| {
                if let shell::Event::Line(line) = event
                    && ready_after.is_none()
                    && line.contains("system ready:")
                {
                    ready_after = Some(start.elapsed());
                }
            },
        )?;
        eprintln!(
            "    system ready after {}",
            ready_after.map_or("(never)".into(), |t| format!("{:.1} s", t.as_secs_f64()))
        );
        let results = judge(name, uefi, &version, &session);
        shell::report(
            name,
            &results,
            &session.output,
            session.elapsed,
            session.status,
        );
        cases.extend(results);
    }
    Ok(Report {
        cases,
        skipped: Vec::new(),
    })
}

/// The version the release's host tool reports (`Limine 11.4.1` → `11.4.1`).
fn tool_version(tool: &Path) -> Result<String> {
    let out = Command::new(tool)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", tool.display()))?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| format!("{} --version did not name a Limine version", tool.display()))
}

fn parse_version(text: &str) -> Option<String> {
    let first = text.lines().next()?.trim();
    let v = first.strip_prefix("Limine ")?.split_whitespace().next()?;
    v.starts_with(|c: char| c.is_ascii_digit())
        .then(|| v.to_owned())
}

/// The verdicts of one Limine boot.
fn judge(suite: &str, uefi: bool, version: &str, s: &shell::Session) -> Vec<Case> {
    let out = &s.output;
    let firmware = if uefi { "Uefi64" } else { "Bios" };
    let loader = format!("booted by Limine {version} ({firmware})");
    let run = Captured {
        outcome: s
            .status
            .map_or(Outcome::Timeout, |c| Outcome::from_status(Some(c))),
        output: out.clone(),
        elapsed: s.elapsed,
    };
    let mut cases = vec![
        check(
            suite,
            "loader",
            out.contains(&loader),
            format!("the kernel did not log `{loader}`"),
        ),
        system::judge_ready(suite, out),
        check(
            suite,
            "no_fault",
            !out.contains("faulted:"),
            "a server faulted during boot",
        ),
        no_panic(suite, &run),
    ];
    if uefi {
        cases.push(iso::framebuffer_console(suite, out));
    }
    let answered = out
        .find(SHELL_UP)
        .is_some_and(|at| out[at..].contains(shell::HELP_END));
    cases.push(check(
        suite,
        "shell_answers",
        answered && s.typed == SESSION.len(),
        "the shell did not answer `help` on COM1",
    ));
    cases.push(check(
        suite,
        "poweroff_exits_0",
        s.status == Some(0),
        format!(
            "`poweroff` should end QEMU with status 0, got {:?}",
            s.status
        ),
    ));
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_the_tool_banner() {
        let banner = "Limine 11.4.1\nCopyright (C) 2019-2026 Mintsuki and contributors.\n";
        assert_eq!(parse_version(banner).as_deref(), Some("11.4.1"));
        assert_eq!(parse_version("limine: unknown option\n"), None);
        assert_eq!(parse_version("Limine \n"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn judged_by_what_the_log_says() {
        let session = |output: &str, typed, status| shell::Session {
            output: output.into(),
            typed,
            status,
            elapsed: Duration::ZERO,
            ended_at: std::time::Instant::now(),
        };
        let failed = |s: &shell::Session, uefi| -> Vec<String> {
            judge("limine-x", uefi, "11.4.1", s)
                .into_iter()
                .filter(|c| !c.passed)
                .map(|c| c.name)
                .collect()
        };
        let ready = format!(
            "system ready: {}",
            system::expected_ready().unwrap().join(" ")
        );
        let good = format!(
            "HSYNC-OS 0.1.0 booted by Limine 11.4.1 (Bios), cmdline \"\"\n{ready}\n{SHELL_UP}\n{}\n",
            shell::HELP_END
        );
        assert!(failed(&session(&good, 2, Some(0)), false).is_empty());
        // Another loader, or the right one under the wrong firmware.
        assert_eq!(
            failed(&session(&good.replace("Limine", "shim"), 2, Some(0)), false),
            ["limine-x::loader"]
        );
        let uefi = failed(&session(&good, 2, Some(0)), true);
        assert_eq!(uefi, ["limine-x::loader", "limine-x::framebuffer_console"]);
        // A shell that never answered; a QEMU that had to be stopped.
        let mute = good.replace(shell::HELP_END, "");
        assert_eq!(
            failed(&session(&mute, 1, None), false),
            ["limine-x::shell_answers", "limine-x::poweroff_exits_0"]
        );
    }
}
