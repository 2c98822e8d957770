//! Whole-system lifecycle suites.
//!
//! `lifecycle`: one boot of the normal image on a machine that restarts on a guest reset (no
//! `-no-reboot`), a session typed into COM1 and on the PS/2 keyboard (monitor `sendkey`):
//! `crash serial`, then `ps` typed on serial must answer on serial and list serial with one
//! restart; `crash ps2`, then `help` typed on the keyboard must reach the shell; `reboot` must
//! reset the machine (the kernel's reset request, no triple-fault fallback, the whole boot a
//! second time with fresh counters in `ps`); then `poweroff` ends QEMU with status 0.
//!
//! `new-server`: `cargo xtask new-server demo` and `cargo xtask new-server ticker --irq` in a
//! copy of this workspace (its tracked and untracked-but-not-ignored files, as they are on disk),
//! then `cargo xtask run --headless` there: root's `system ready` line must name both, each must
//! log that it serves, the interrupt-driven `ticker` (the skeleton docs/servers.md shows) must
//! count 4 interrupts of the CMOS clock, and the shell's `ps` must list both running. The copy lives in a fixed directory under xtask's
//! output directory and builds into `<target>/new-server`, both kept between runs, so after
//! the first run (a full build, dependencies included) only what changed is rebuilt.
//!
//! The copy must not build into our target directory itself: cargo names a workspace crate's
//! build by its path *relative to the workspace root*, so the copy's units would be the same
//! units as ours, with dependency info pointing into the copy. After that, edits in this tree
//! are not seen as changes, and `cargo xtask` here runs the copy's xtask binary (whose
//! workspace is the copy).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::shell::{HELP_END, Input, Step, drive, ps_rows, report};
use super::{Case, check};
use crate::Result;
use crate::artifacts::{self, Artifacts};
use crate::qemu::{self, Machine};
use crate::symbolize::Symbolizer;

/// The lifecycle suite's name (`--filter lifecycle`).
pub const SUITE: &str = "lifecycle";

/// The new-server suite's name (`--filter new-server`).
pub const NEW_SERVER_SUITE: &str = "new-server";

/// Both boots of the lifecycle session (each boot takes a few seconds under TCG).
const TIMEOUT: Duration = Duration::from_secs(120);

/// The shell's greeting: once per boot.
const SHELL_UP: &str = "HSYNC-OS shell: type `help`";

/// `ps`'s header: the shell prints the whole listing before it reads the next line.
const PS_HEADER: &str = "  #  name          state";

/// The kernel's line when a reset was asked for (kernel/src/hw.rs, `system_power`).
const RESET_ASKED: &str = "reboot requested by process";

/// The kernel's line when neither 0xCF9 nor the keyboard controller reset the machine.
const RESET_FALLBACK: &str = "triple-faulting";

/// The lifecycle session. Each step waits for the previous answer, so input never races the
/// shell; steps after `reboot` wait for the second boot's greeting.
const SESSION: &[Step] = &[
    Step {
        after: SHELL_UP,
        input: Input::Serial(b"crash serial\r"),
    },
    Step {
        // Printed through the restarted serial server.
        after: "serial: reconnected",
        input: Input::Serial(b"ps\r"),
    },
    Step {
        after: PS_HEADER,
        input: Input::Serial(b"crash ps2\r"),
    },
    Step {
        after: "ps2: reconnected",
        input: Input::Keys(&["h", "e", "l", "p", "ret"]),
    },
    Step {
        after: HELP_END,
        input: Input::Serial(b"ps\r"),
    },
    Step {
        after: PS_HEADER,
        input: Input::Serial(b"reboot\r"),
    },
    Step {
        // The second boot's greeting.
        after: SHELL_UP,
        input: Input::Serial(b"ps\r"),
    },
    Step {
        after: PS_HEADER,
        input: Input::Serial(b"poweroff\r"),
    },
];

/// How many [`SESSION`] steps there are up to and including `reboot`.
const STEPS_TO_REBOOT: usize = 6;

/// Runs the lifecycle suite: one boot (two, counting the reset).
pub fn run(system: &Artifacts, symbolizer: &Symbolizer) -> Result<Vec<Case>> {
    crate::tools::step(&format!("QEMU suite `{SUITE}`"));
    let sock = artifacts::out_dir().join("lifecycle-monitor.sock");
    let _ = std::fs::remove_file(&sock);
    let machine = Machine {
        reboot: true,
        ..qemu::with_monitor(&sock)
    };
    let boot = qemu::system_boot(system, "");
    let s = drive(
        &machine,
        &boot,
        &sock,
        SESSION,
        TIMEOUT,
        symbolizer,
        |_, _| {},
    )?;
    let _ = std::fs::remove_file(&sock);
    let results = judge(&s.output, s.typed, s.status);
    report(SUITE, &results, &s.output, s.elapsed, s.status);
    Ok(results)
}

/// The lifecycle verdicts: `typed` steps were reached, QEMU ended with `status`.
fn judge(output: &str, typed: usize, status: Option<i32>) -> Vec<Case> {
    let lines: Vec<&str> = output.lines().collect();
    let find = |from: usize, s: &str| {
        lines[from.min(lines.len())..]
            .iter()
            .position(|l| l.contains(s))
            .map(|i| i + from)
    };
    let has = |s: &str| output.contains(s);
    // The first boot ends at the kernel's reset line; everything after it is the second boot.
    let reset = find(0, RESET_ASKED);
    let (first, second) = match reset {
        Some(i) => (lines[..i].join("\n"), lines[i..].join("\n")),
        None => (output.to_owned(), String::new()),
    };
    let keys_answer = find(0, "ps2: reconnected").and_then(|i| find(i, HELP_END));
    let second_boot = reset.and_then(|i| find(i, "boot: HSYNC-OS"));
    let booted_twice = second_boot
        .is_some_and(|i| find(i, "system ready:").is_some() && find(i, SHELL_UP).is_some());
    vec![
        check(
            SUITE,
            "crash_serial_logged_and_restarted",
            has("server `serial` faulted: PageFault") && has("restarting `serial` (1 of"),
            "root did not log serial's fault and restart it",
        ),
        check(
            SUITE,
            "serial_answers_after_crash",
            has("serial: reconnected") && ps_rows(&first, "serial").any(|r| r == (1, 1)),
            "after `crash serial`, `ps` typed on serial did not list serial running with 1 \
             restart and 1 fault",
        ),
        check(
            SUITE,
            "crash_ps2_logged_and_restarted",
            has("server `ps2` faulted: PageFault") && has("restarting `ps2` (1 of"),
            "root did not log ps2's fault and restart it",
        ),
        check(
            SUITE,
            "keys_reach_the_shell_after_ps2_crash",
            keys_answer.is_some() && ps_rows(&first, "ps2").any(|r| r == (1, 1)),
            "after `crash ps2`, `help` typed with sendkey brought no help text, or `ps` did not \
             list ps2 with 1 restart and 1 fault",
        ),
        check(
            SUITE,
            "reboot_resets_the_machine",
            reset.is_some() && !has(RESET_FALLBACK) && booted_twice,
            format!(
                "no kernel `{RESET_ASKED}` line, a triple-fault fallback, or no second boot \
                 (kernel banner, `system ready`, shell greeting) after it"
            ),
        ),
        check(
            SUITE,
            "second_boot_is_fresh",
            ["serial", "ps2"].iter().all(|n| {
                ps_rows(&second, n).next().is_some() && ps_rows(&second, n).all(|r| r == (0, 0))
            }),
            "`ps` after the reboot did not list serial and ps2 with no restarts and no faults",
        ),
        check(
            SUITE,
            "poweroff_exits_0",
            typed == SESSION.len() && status == Some(0),
            format!(
                "reached {typed} of {} session steps (the first {STEPS_TO_REBOOT} end with `reboot`); QEMU \
                 exit status {status:?}, not Some(0)",
                SESSION.len()
            ),
        ),
        check(
            SUITE,
            "no_other_fault",
            !has("KERNEL PANIC")
                && !has("panic:")
                && lines
                    .iter()
                    .filter(|l| l.contains("faulted"))
                    .all(|l| crashed_on_purpose(l)),
            "a panic or a server fault other than the asked-for serial and ps2 crashes",
        ),
    ]
}

/// Whether a `faulted` line is about serial or ps2 (root names servers as `` `name` ``, the
/// kernel as `(name)`, the shell says `name: faulted as asked`).
fn crashed_on_purpose(line: &str) -> bool {
    ["serial", "ps2"].iter().any(|n| {
        line.contains(&format!("`{n}`"))
            || line.contains(&format!("({n})"))
            || line.starts_with(&format!("{n}: faulted as asked"))
    })
}

/// The generated server's name.
const DEMO: &str = "demo";
/// The generated interrupt-driven driver's name (`new-server --irq`).
const DRIVER: &str = "ticker";

/// Bound on each `cargo xtask` step in the copy: the first run builds the copy's crates.
const CARGO_TIMEOUT: Duration = Duration::from_secs(900);

/// Bound on the copy's QEMU boot (`cargo xtask run --timeout`).
const BOOT_TIMEOUT_SECS: u64 = 60;

/// The line that shows the driver took 4 interrupts (half a second at its 8 Hz).
const DRIVER_COUNTED: &str = "ticker: 4 interrupts";

/// The copy's session: `ps` once the driver counted its interrupts (the shell, started before
/// the two new servers, is up by then; bytes typed early wait in serial's buffer), then
/// `poweroff`.
const DEMO_SESSION: &[(&str, &[u8])] = &[(DRIVER_COUNTED, b"ps\r"), (PS_HEADER, b"poweroff\r")];

/// Runs the new-server suite. It builds nothing of this tree: everything happens in the copy.
pub fn run_new_server() -> Result<Vec<Case>> {
    crate::tools::step(&format!("suite `{NEW_SERVER_SUITE}`"));
    let start = Instant::now();
    let ws = artifacts::out_dir().join("new-server-ws");
    sync_copy(&artifacts::root(), &ws)?;
    let copied = start.elapsed();

    let mut log = String::new();
    let created = cargo_in(&ws, &["xtask", "new-server", DEMO], None)?;
    log.push_str(&created.output);
    let driver = cargo_in(&ws, &["xtask", "new-server", DRIVER, "--irq"], None)?;
    log.push_str(&driver.output);
    let made = [&created, &driver].iter().all(|r| r.status == Some(0))
        && [DEMO, DRIVER].iter().all(|n| {
            ws.join(format!("servers/{n}/src/main.rs")).is_file()
                && ws.join(format!("servers/{n}-api/src/lib.rs")).is_file()
        });
    let timeout = BOOT_TIMEOUT_SECS.to_string();
    let ran = if made {
        cargo_in(
            &ws,
            &["xtask", "run", "--headless", "--timeout", &timeout],
            Some(DEMO_SESSION),
        )?
    } else {
        Ran::default()
    };
    log.push_str(&ran.output);
    let results = judge_new_server(made, &ran.output, ran.status);
    eprintln!(
        "    (copy {:.1} s, new-server {:.1} s, build and boot {:.1} s)",
        copied.as_secs_f64(),
        created.elapsed.as_secs_f64(),
        ran.elapsed.as_secs_f64()
    );
    report(
        NEW_SERVER_SUITE,
        &results,
        &log,
        start.elapsed(),
        ran.status,
    );
    Ok(results)
}

/// The new-server verdicts: the crates were `made`; the boot printed `output` and `cargo
/// xtask run` ended with `status`.
fn judge_new_server(made: bool, output: &str, status: Option<i32>) -> Vec<Case> {
    let s = NEW_SERVER_SUITE;
    vec![
        check(
            s,
            "crates_created",
            made,
            "`cargo xtask new-server demo` or `new-server ticker --irq` failed or did not \
             create both crates of each",
        ),
        check(
            s,
            "root_reports_demo_ready",
            output
                .lines()
                .any(|l| l.contains("system ready:") && l.split_whitespace().any(|w| w == DEMO)),
            "no `system ready:` line naming `demo`",
        ),
        check(
            s,
            "demo_serves",
            output.contains("demo: serving") && output.contains("root: `demo` is ready"),
            "the demo server did not log `demo: serving`, or root did not get its ready report",
        ),
        check(
            s,
            "ps_lists_demo",
            ps_rows(output, DEMO).any(|r| r == (0, 0)),
            "the shell's `ps` did not list demo running",
        ),
        check(
            s,
            "driver_counts_interrupts",
            output
                .lines()
                .any(|l| l.contains("system ready:") && l.split_whitespace().any(|w| w == DRIVER))
                && output.contains("ticker: serving, IRQ 8")
                && output.contains(DRIVER_COUNTED)
                && ps_rows(output, DRIVER).any(|r| r == (0, 0)),
            "the --irq driver `ticker` was not ready and running, or did not log `ticker: 4 \
             interrupts` (the CMOS clock's periodic IRQ 8 through libhsync::serve)",
        ),
        check(
            s,
            "poweroff_exits_0",
            status == Some(0),
            format!("`cargo xtask run` exit status {status:?}, not Some(0)"),
        ),
        check(
            s,
            "no_fault",
            !output.contains("KERNEL PANIC")
                && !output.contains("panic:")
                && !output.contains("faulted"),
            "a panic or a server fault during the boot",
        ),
    ]
}

/// Makes `to` hold exactly the workspace files of `from` that git knows or would add
/// (tracked, and untracked but not ignored), as they are on disk. Files whose content is
/// already right are left alone, so cargo sees them unchanged; anything else in `to` is removed.
fn sync_copy(from: &Path, to: &Path) -> Result<()> {
    let out = Command::new("git")
        .current_dir(from)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .map_err(|e| format!("cannot run git ls-files: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git ls-files failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut wanted = std::collections::BTreeSet::new();
    for name in out.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let rel = PathBuf::from(std::str::from_utf8(name).map_err(|_| "a non-UTF-8 file name")?);
        let src = from.join(&rel);
        // Tracked but deleted in the working tree: not part of the tree under test.
        let Ok(data) = std::fs::read(&src) else {
            continue;
        };
        let dst = to.join(&rel);
        if std::fs::read(&dst).ok().as_deref() != Some(&data[..]) {
            artifacts::write_file(&dst, &data)?;
        }
        wanted.insert(rel);
    }
    remove_unwanted(to, to, &wanted)
}

/// Removes every file under `dir` (inside the copy `root`) that is not in `wanted`, and the
/// directories that leaves empty.
fn remove_unwanted(
    root: &Path,
    dir: &Path,
    wanted: &std::collections::BTreeSet<PathBuf>,
) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_owned();
        if path.is_dir() {
            remove_unwanted(root, &path, wanted)?;
            // Fails (and is left) when something wanted is inside.
            let _ = std::fs::remove_dir(&path);
        } else if !wanted.contains(&rel) {
            std::fs::remove_file(&path)
                .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// What a `cargo` run in the copy left.
#[derive(Default)]
struct Ran {
    /// Its stdout then its stderr.
    output: String,
    /// Its exit status; `None` when it was stopped at [`CARGO_TIMEOUT`].
    status: Option<i32>,
    elapsed: Duration,
}

/// The copy's own cargo target directory, inside ours: kept between runs, so only the first
/// run builds the dependencies and later ones rebuild what changed.
fn copy_target_dir() -> PathBuf {
    artifacts::target_dir().join(NEW_SERVER_SUITE)
}

/// `cargo ARGS` in `ws` (target directory: [`copy_target_dir`]), bounded by
/// [`CARGO_TIMEOUT`]. With `session`, each stdout line containing a step's text gets the
/// step's bytes on stdin (in order); stdin is closed otherwise.
fn cargo_in(ws: &Path, args: &[&str], session: Option<&[(&str, &[u8])]>) -> Result<Ran> {
    use std::os::unix::process::CommandExt;
    let mut cmd = crate::tools::cargo();
    cmd.current_dir(ws)
        .args(args)
        // A target directory of its own, never ours: see the module documentation.
        .env("CARGO_TARGET_DIR", copy_target_dir())
        // Its own process group, so a timeout stops cargo, xtask and QEMU together.
        .process_group(0)
        .stdin(if session.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run cargo in {}: {e}", ws.display()))?;
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().ok_or("no cargo stdout")?;
    let mut stderr = child.stderr.take().ok_or("no cargo stderr")?;
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (rx, reader) = qemu::line_reader(stdout);
    let steps = session.unwrap_or_default();
    let deadline = start + CARGO_TIMEOUT;
    let mut output = String::new();
    let mut typed = 0;
    let mut ended = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let line = match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                ended = true;
                break;
            }
        };
        if let Some((_, bytes)) = steps.get(typed).filter(|(after, _)| line.contains(after)) {
            typed += 1;
            if let Some(w) = stdin.as_mut()
                && let Err(e) = w.write_all(bytes).and_then(|()| w.flush())
            {
                output.push_str(&format!("xtask: writing the copy's stdin: {e}\n"));
            }
        }
        output.push_str(&line);
        output.push('\n');
    }
    drop(stdin);
    let status = if ended {
        child.wait().ok().and_then(|s| s.code())
    } else {
        stop_group(&mut child);
        None
    };
    drop(rx);
    let _ = reader.join();
    output.push_str(&err_reader.join().unwrap_or_default());
    Ok(Ran {
        output,
        status,
        elapsed: start.elapsed(),
    })
}

/// Kills `child`'s whole process group (cargo, the copy's xtask, its QEMU) and reaps `child`.
fn stop_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
[root] INFO  hsync_root: root: server `serial` faulted: PageFault address=0x0\n\
[root] INFO  hsync_root: root: restarting `serial` (1 of 5)\n\
[    0.17] WARN  proc: process 2 (serial) thread 4 faulted: PageFault at rip 0x40718a\n\
serial: faulted as asked; root restarts it\n\
serial: reconnected\n\
  #  name          state     prio  restarts  faults\n\
  1  serial        running     24         1       1\n\
  3  ps2           running     20         0       0\n\
[root] INFO  hsync_root: root: server `ps2` faulted: PageFault address=0x0\n\
[root] INFO  hsync_root: root: restarting `ps2` (1 of 3)\n\
ps2: faulted as asked; root restarts it\n\
ps2: reconnected\n\
commands:\n\
\x20 reboot           restart the machine\n\
  #  name          state     prio  restarts  faults\n\
  1  serial        running     24         1       1\n\
  3  ps2           running     20         1       1\n\
rebooting\n\
[    1.5] INFO  hw: reboot requested by process 1\n\
[    1.5] INFO  power: rebooting\n\
[    0.01] INFO  boot: HSYNC-OS 0.1.0 booted by HSYNC-OS boot shim\n\
[root] system ready: serial vga ps2 phase shell\n\
HSYNC-OS shell: type `help`\n\
  #  name          state     prio  restarts  faults\n\
  1  serial        running     24         0       0\n\
  3  ps2           running     20         0       0\n";

    fn failed(out: &str, typed: usize, status: Option<i32>) -> Vec<String> {
        judge(out, typed, status)
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn lifecycle_judge_needs_each_recovery_and_a_real_reset() {
        let n = SESSION.len();
        assert!(matches!(
            SESSION[STEPS_TO_REBOOT - 1].input,
            Input::Serial(b"reboot\r")
        ));
        assert_eq!(failed(GOOD, n, Some(0)), Vec::<String>::new());
        assert_eq!(failed(GOOD, n, None), ["lifecycle::poweroff_exits_0"]);
        // No second boot after the reset line: not a reboot.
        let cut = &GOOD[..GOOD.find("[    0.01]").unwrap()];
        let f = failed(cut, n, Some(0));
        assert!(
            f.contains(&"lifecycle::reboot_resets_the_machine".into()),
            "{f:?}"
        );
        assert!(
            f.contains(&"lifecycle::second_boot_is_fresh".into()),
            "{f:?}"
        );
        // The triple-fault fallback is not the reset under test.
        let tf = GOOD.replace(
            "power: rebooting\n",
            "power: rebooting\nWARN  power: no reset yet; triple-faulting\n",
        );
        assert_eq!(
            failed(&tf, n, Some(0)),
            ["lifecycle::reboot_resets_the_machine"]
        );
        // serial's restart must show in `ps` before the reboot, not only in root's log.
        let no_restart = GOOD.replacen("24         1       1", "24         0       0", 2);
        assert_eq!(
            failed(&no_restart, n, Some(0)),
            ["lifecycle::serial_answers_after_crash"]
        );
        // Help after the ps2 crash must come after the reconnect.
        let no_keys = GOOD.replace(HELP_END, "");
        assert_eq!(
            failed(&no_keys, n, Some(0)),
            ["lifecycle::keys_reach_the_shell_after_ps2_crash"]
        );
        for other in [
            "root: server `phase` faulted: PageFault",
            "WARN  proc: process 3 (phase) thread 7 faulted: PageFault at rip 0x1",
        ] {
            let out = format!("{GOOD}{other}\n");
            assert_eq!(failed(&out, n, Some(0)), ["lifecycle::no_other_fault"]);
        }
    }

    #[test]
    fn new_server_judge_needs_demo_ready_and_running() {
        let good = "[root] INFO  hsync_root: root: `demo` is ready\nINFO  hsync_demo: demo: serving\n\
                    [ticker] INFO  ticker: serving, IRQ 8\n[ticker] INFO  ticker: 4 interrupts\n\
                    [root] system ready: serial vga ps2 phase demo ticker shell\n\
                    \x20 6  demo          running     16         0       0\n\
                    \x20 7  ticker        running     16         0       0\n";
        let failed = |out: &str, made, status| {
            judge_new_server(made, out, status)
                .into_iter()
                .filter(|c| !c.passed)
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(failed(good, true, Some(0)), Vec::<String>::new());
        assert_eq!(
            failed(&good.replace(" demo ticker", " ticker"), true, Some(0)),
            ["new-server::root_reports_demo_ready"]
        );
        assert_eq!(
            failed(
                &good.replace(" demo ticker", " demo-x ticker"),
                true,
                Some(0)
            ),
            ["new-server::root_reports_demo_ready"]
        );
        assert_eq!(
            failed(&good.replace("4 interrupts", "2 interrupts"), true, Some(0)),
            ["new-server::driver_counts_interrupts"]
        );
        assert_eq!(
            failed(good, false, None),
            ["new-server::crates_created", "new-server::poweroff_exits_0"]
        );
    }

    #[test]
    fn sync_copy_mirrors_and_keeps_unchanged_files() {
        let dir = std::env::temp_dir().join(format!("hsync-sync-copy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (to, keep) = (dir.join("to"), PathBuf::from("a/keep.txt"));
        let wanted: std::collections::BTreeSet<PathBuf> = [keep.clone()].into();
        artifacts::write_file(&to.join(&keep), b"k").unwrap();
        artifacts::write_file(&to.join("a/stale.txt"), b"s").unwrap();
        artifacts::write_file(&to.join("b/c/old.rs"), b"o").unwrap();
        remove_unwanted(&to, &to, &wanted).unwrap();
        assert!(to.join(&keep).is_file());
        assert!(!to.join("a/stale.txt").exists());
        assert!(!to.join("b").exists(), "emptied directories are removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
