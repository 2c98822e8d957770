//! `cargo xtask test`: host unit tests, then in-QEMU suites, then one `N passed, N failed` line.
//!
//! Each QEMU suite is one boot. Kernel-side tests report over serial in the ktest wire format
//! (`[ktest] start|pass|fail|done ...`); boot suites check what a person would look for in the
//! log. A suite that hangs is stopped by its timeout and counted as failed, never waited on.

use std::process::{ExitCode, Stdio};
use std::time::Duration;

use crate::Result;
use std::path::PathBuf;

use crate::artifacts::{self, Artifacts};
use crate::images::{self, IsoModule};
use crate::qemu::{self, Boot, Captured, Machine, Module, Outcome};
use crate::symbolize::Symbolizer;
use crate::tools::{cargo, step};

mod iso;
mod lifecycle;
mod shell;
mod system;

/// Host crates with unit tests (the arch-free logic).
const HOST_CRATES: &[&str] = &[
    "hsync-initfs",
    "hsync-bootcore",
    "hsync-kcore",
    "hsync-abi",
    "libhsync",
    "xtask",
    "hsync-phase-engine",
    "hsync-vga",
];

/// One test's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// `suite::name`.
    pub name: String,
    /// Passed or not.
    pub passed: bool,
    /// Why it failed.
    pub detail: String,
}

impl Case {
    fn new(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Self {
        Case {
            name: name.into(),
            passed,
            detail: detail.into(),
        }
    }
}

/// What suites boot, built on first use so a filtered run builds only what it needs.
struct Ctx {
    release: bool,
    system: Artifacts,
    probe: Option<PathBuf>,
    pattern: Option<PathBuf>,
    probe_iso: Option<PathBuf>,
}

impl Ctx {
    fn probe(&mut self) -> Result<PathBuf> {
        if self.probe.is_none() {
            self.probe = Some(images::probe(self.release)?);
        }
        Ok(self.probe.clone().unwrap_or_default())
    }

    fn pattern(&mut self) -> Result<PathBuf> {
        if self.pattern.is_none() {
            self.pattern = Some(images::pattern()?);
        }
        Ok(self.pattern.clone().unwrap_or_default())
    }

    fn probe_iso(&mut self) -> Result<PathBuf> {
        if self.probe_iso.is_none() {
            let (probe, pattern) = (self.probe()?, self.pattern()?);
            let modules = [
                IsoModule {
                    source: &probe,
                    name: "probe.elf",
                    args: images::PROBE_CMDLINE,
                },
                IsoModule {
                    source: &pattern,
                    name: "pattern.bin",
                    args: "pattern",
                },
            ];
            self.probe_iso = Some(images::grub_iso("probe.iso", &self.system.shim, &modules)?);
        }
        Ok(self.probe_iso.clone().unwrap_or_default())
    }
}

/// A QEMU suite: a name, how to boot, how long to wait, how to judge the output.
struct Suite {
    name: &'static str,
    timeout_secs: u64,
    machine: fn() -> Machine,
    boot: fn(&mut Ctx) -> Result<Boot>,
    judge: fn(&str, &Captured) -> Vec<Case>,
}

fn default_machine() -> Machine {
    Machine::default()
}

fn qemu64_machine() -> Machine {
    Machine {
        cpu: Some("qemu64".into()),
        ..Machine::default()
    }
}

fn big_machine() -> Machine {
    Machine {
        memory_mib: 4096,
        ..Machine::default()
    }
}

fn system(cmdline: &'static str) -> impl Fn(&mut Ctx) -> Result<Boot> {
    move |ctx| Ok(qemu::system_boot(&ctx.system, cmdline))
}

/// The kernel alone: an initfs without `root`, so `test` boots end after the ktests and
/// normal boots idle in the kernel.
fn kernel_only(cmdline: &'static str) -> impl Fn(&mut Ctx) -> Result<Boot> {
    move |ctx| {
        Ok(qemu::boot_with_initfs(
            &ctx.system,
            &ctx.system.initfs_kernel,
            cmdline,
        ))
    }
}

const SUITES: &[Suite] = &[
    Suite {
        name: "kernel",
        timeout_secs: 120,
        machine: default_machine,
        boot: |ctx| kernel_only("test")(ctx),
        judge: judge_ktest,
    },
    Suite {
        name: "kernel-qemu64",
        timeout_secs: 120,
        machine: qemu64_machine,
        boot: |ctx| kernel_only("test")(ctx),
        judge: judge_ktest,
    },
    Suite {
        name: "kernel-4g",
        timeout_secs: 180,
        machine: big_machine,
        boot: |ctx| kernel_only("test")(ctx),
        judge: judge_ktest,
    },
    Suite {
        name: "boot",
        timeout_secs: 60,
        machine: default_machine,
        boot: |ctx| kernel_only("poweroff")(ctx),
        judge: judge_boot,
    },
    Suite {
        name: "idle",
        timeout_secs: 5,
        machine: default_machine,
        boot: |ctx| kernel_only("")(ctx),
        judge: judge_idle,
    },
    Suite {
        name: "panic",
        timeout_secs: 60,
        machine: default_machine,
        boot: |ctx| kernel_only("test panic-test")(ctx),
        judge: judge_panic,
    },
    Suite {
        name: "panic-pagefault",
        timeout_secs: 60,
        machine: default_machine,
        boot: |ctx| kernel_only("test panic-test=fault")(ctx),
        judge: judge_page_fault,
    },
    Suite {
        name: "panic-stack-overflow",
        timeout_secs: 60,
        machine: default_machine,
        boot: |ctx| kernel_only("test panic-test=overflow")(ctx),
        judge: judge_stack_overflow,
    },
    // User space: the ktests, then root = selftest from the test initfs (`[utest]` lines).
    Suite {
        name: "user",
        timeout_secs: 600,
        machine: default_machine,
        boot: |ctx| {
            Ok(qemu::boot_with_initfs(
                &ctx.system,
                &ctx.system.initfs_test,
                "test",
            ))
        },
        judge: judge_user,
    },
    // The normal image: the kernel starts servers/root, which greets and waits.
    Suite {
        name: "root",
        timeout_secs: 15,
        machine: default_machine,
        boot: |ctx| system("")(ctx),
        judge: judge_root,
    },
    // Root as the supervisor: `system ready` with the manifest's servers (test/system.rs).
    Suite {
        name: "system",
        timeout_secs: 15,
        machine: default_machine,
        boot: |ctx| system("")(ctx),
        judge: system::judge_system,
    },
    // A server faults; root logs it and restarts it; the root protocol (test/system.rs).
    Suite {
        name: "system-restart",
        timeout_secs: 15,
        machine: default_machine,
        boot: system::boot_restart,
        judge: system::judge_restart,
    },
    // The boot shim, checked by the probe kernel through every entry path.
    Suite {
        name: "shim-multiboot1",
        timeout_secs: 60,
        machine: default_machine,
        boot: |ctx| {
            let (probe, pattern) = (ctx.probe()?, ctx.pattern()?);
            Ok(Boot::Direct {
                loader: ctx.system.shim.clone(),
                modules: vec![
                    Module {
                        path: probe,
                        args: images::PROBE_CMDLINE.into(),
                    },
                    Module {
                        path: pattern,
                        args: "pattern".into(),
                    },
                ],
                append: None,
            })
        },
        judge: judge_ktest,
    },
    Suite {
        name: "shim-pvh",
        timeout_secs: 60,
        machine: default_machine,
        boot: |ctx| {
            let (probe, pattern) = (ctx.probe()?, ctx.pattern()?);
            let bundle = images::bundle("probe-bundle.img", &probe, &[("pattern", &pattern)])?;
            Ok(Boot::Direct {
                loader: images::pvh_shim(ctx.release)?,
                modules: vec![Module {
                    path: bundle,
                    args: String::new(),
                }],
                append: Some(images::PROBE_CMDLINE.into()),
            })
        },
        judge: judge_ktest,
    },
    Suite {
        name: "shim-multiboot2-bios",
        timeout_secs: 90,
        machine: default_machine,
        boot: |ctx| {
            Ok(Boot::Cdrom {
                iso: ctx.probe_iso()?,
                uefi: false,
            })
        },
        judge: judge_ktest,
    },
    Suite {
        name: "shim-multiboot2-uefi",
        timeout_secs: 180,
        machine: default_machine,
        boot: |ctx| {
            Ok(Boot::Cdrom {
                iso: ctx.probe_iso()?,
                uefi: true,
            })
        },
        judge: judge_ktest,
    },
];

/// Runs everything; the exit status is non-zero when anything failed.
pub fn run(filter: Option<&str>, release: bool) -> Result<ExitCode> {
    let wanted = |name: &str| filter.is_none_or(|f| name.contains(f));
    let mut cases = Vec::new();

    // Protocol crates (`servers/*-api`) hold host-testable encodings: test them too.
    let apis: Vec<String> = artifacts::server_packages()
        .into_iter()
        .filter(|p| p.ends_with("-api"))
        .collect();
    let host: Vec<&str> = HOST_CRATES
        .iter()
        .copied()
        .chain(apis.iter().map(String::as_str))
        .filter(|c| wanted(c))
        .collect();
    if !host.is_empty() {
        cases.extend(host_tests(&host)?);
    }

    let suites: Vec<&Suite> = SUITES.iter().filter(|s| wanted(s.name)).collect();
    let want_vga = wanted(vga::SUITE);
    let want_drivers = drivers::wanted(&wanted);
    let want_shell = wanted(shell::SUITE);
    let want_iso = iso::wanted(&wanted);
    let want_lifecycle = wanted(lifecycle::SUITE);
    if !suites.is_empty() || want_vga || want_drivers || want_shell || want_iso || want_lifecycle {
        let system = artifacts::build(release)?;
        let symbolizer = Symbolizer::new(&system.kernel);
        let mut ctx = Ctx {
            release,
            system,
            probe: None,
            pattern: None,
            probe_iso: None,
        };
        for suite in suites {
            let boot = (suite.boot)(&mut ctx)?;
            step(&format!("QEMU suite `{}`", suite.name));
            let cmd = qemu::command(&(suite.machine)(), &boot)?;
            let timeout = Duration::from_secs(suite.timeout_secs);
            let captured = qemu::run_captured(cmd, &symbolizer, Some(timeout), false, false)?;
            let results = (suite.judge)(suite.name, &captured);
            let failed = results.iter().filter(|c| !c.passed).count();
            eprintln!(
                "    {} tests, {} failed, {:.1} s, {:?}",
                results.len(),
                failed,
                captured.elapsed.as_secs_f64(),
                captured.outcome
            );
            if failed > 0 {
                eprintln!(
                    "---- output of suite `{}` ----\n{}----",
                    suite.name, captured.output
                );
            }
            cases.extend(results);
        }
        if want_vga {
            cases.extend(vga::run(&ctx.system, &symbolizer)?);
        }
        if want_drivers {
            cases.extend(drivers::run(&ctx.system, &symbolizer, &wanted)?);
        }
        if want_shell {
            cases.extend(shell::run(&ctx.system, &symbolizer)?);
        }
        if want_iso {
            cases.extend(iso::run(&ctx.system, &symbolizer, &wanted)?);
        }
        if want_lifecycle {
            cases.extend(lifecycle::run(&ctx.system, &symbolizer)?);
        }
    }
    // A copy of the workspace with its own build (test/lifecycle.rs): nothing above needed.
    if wanted(lifecycle::NEW_SERVER_SUITE) {
        cases.extend(lifecycle::run_new_server()?);
    }

    let failed: Vec<&Case> = cases.iter().filter(|c| !c.passed).collect();
    for c in &failed {
        eprintln!("FAILED {}: {}", c.name, c.detail);
    }
    println!(
        "{} passed, {} failed",
        cases.len() - failed.len(),
        failed.len()
    );
    Ok(if failed.is_empty() && !cases.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The vga server on the real text buffer: a test initfs whose root is `hsync-vga-probe`
/// (servers/vga/src/probe.rs), which starts `hsync-vga` and drives it through its protocol;
/// meanwhile xtask reads guest memory at 0xB8000 through a QEMU monitor socket (`pmemsave`)
/// until the screen the probe leaves appears, then quits QEMU.
mod vga {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::{Case, check, no_panic, parse_tagged};
    use crate::Result;
    use crate::artifacts::{self, Artifacts};
    use crate::qemu;
    use crate::symbolize::Symbolizer;

    /// The suite's name (`--filter vga`).
    pub const SUITE: &str = "vga";
    const TIMEOUT: Duration = Duration::from_secs(90);
    const COLS: usize = 80;

    /// What the probe leaves on screen: (row, column, text, attribute).
    const EXPECT: &[(usize, usize, &str, u8)] = &[
        (0, 0, "line 1", 0x07),
        (10, 0, "HSYNC-OS vga probe: hello, screen", 0x1E),
        (20, 0, "wave", 0x0A),
        (24, 79, "#", 0x4F),
    ];

    /// Where the screen differs from [`EXPECT`], or `None` when it matches.
    pub fn mismatch(screen: &[u8]) -> Option<String> {
        for &(row, col, text, attr) in EXPECT {
            for (i, ch) in text.bytes().enumerate() {
                let at = (row * COLS + col + i) * 2;
                let got = (screen.get(at).copied(), screen.get(at + 1).copied());
                if got != (Some(ch), Some(attr)) {
                    return Some(format!(
                        "cell ({}, {row}): want {:?}/{attr:#04x}, got {got:?}",
                        col + i,
                        ch as char
                    ));
                }
            }
        }
        None
    }

    /// The screen's glyphs as text rows (non-blank rows only), for failure reports.
    pub fn render(screen: &[u8]) -> String {
        let mut out = String::new();
        for (y, row) in screen.chunks(COLS * 2).enumerate() {
            let line: String = row
                .chunks(2)
                .map(|c| match c[0] {
                    0x20..=0x7E => c[0] as char,
                    0 => ' ',
                    _ => '?',
                })
                .collect();
            if !line.trim().is_empty() {
                out.push_str(&format!("{y:2}|{}\n", line.trim_end()));
            }
        }
        out
    }

    /// A QEMU monitor connection: one command at a time, each answered up to the next prompt.
    pub(super) struct Monitor(UnixStream);

    impl Monitor {
        pub(super) fn connect(path: &Path, deadline: Instant) -> Option<Monitor> {
            while Instant::now() < deadline {
                if let Ok(s) = UnixStream::connect(path) {
                    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                    let mut m = Monitor(s);
                    m.until_prompt()?;
                    return Some(m);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            None
        }

        fn until_prompt(&mut self) -> Option<String> {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"(qemu) ") {
                let n = self.0.read(&mut buf).ok()?;
                if n == 0 {
                    return None;
                }
                got.extend_from_slice(&buf[..n]);
            }
            Some(String::from_utf8_lossy(&got).into_owned())
        }

        pub(super) fn command(&mut self, cmd: &str) -> Option<String> {
            self.0.write_all(format!("{cmd}\n").as_bytes()).ok()?;
            self.until_prompt()
        }
    }

    /// Polls the text buffer until it matches or `deadline`; always asks QEMU to quit.
    fn watch(sock: &Path, dump: &Path, deadline: Instant) -> (bool, String) {
        let Some(mut mon) = Monitor::connect(sock, deadline) else {
            return (false, "no QEMU monitor connection".into());
        };
        let mut last = String::from("no dump read");
        let mut matched = false;
        while Instant::now() < deadline {
            let _ = std::fs::remove_file(dump);
            let cmd = format!("pmemsave 0xb8000 4000 \"{}\"", dump.display());
            if mon.command(&cmd).is_none() {
                last = "the monitor stopped answering".into();
                break;
            }
            if let Ok(screen) = std::fs::read(dump) {
                match mismatch(&screen) {
                    None => {
                        matched = true;
                        last = render(&screen);
                        break;
                    }
                    Some(why) => last = format!("{why}\n{}", render(&screen)),
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = mon.command("quit");
        (matched, last)
    }

    pub fn run(system: &Artifacts, symbolizer: &Symbolizer) -> Result<Vec<Case>> {
        crate::tools::step(&format!("QEMU suite `{SUITE}`"));
        let dir = system
            .kernel
            .parent()
            .ok_or("kernel path has no directory")?
            .to_owned();
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let mut b = hsync_initfs::Builder::new();
        b.add("version", b"HSYNC-OS vga probe\n".to_vec())
            .map_err(|e| e.to_string())?;
        let (probe, server) = (read("hsync-vga-probe")?, read("hsync-vga")?);
        b.add("root", probe)
            .and_then(|b| b.add("hsync-vga", server))
            .map_err(|e| e.to_string())?;
        let initfs = artifacts::out_dir().join("initfs-vga.img");
        artifacts::write_file(&initfs, &b.finish())?;
        let sock = artifacts::out_dir().join("vga-monitor.sock");
        let dump = artifacts::out_dir().join("vga-screen.bin");
        let _ = std::fs::remove_file(&sock);
        let machine = qemu::with_monitor(&sock);
        let boot = qemu::boot_with_initfs(system, &initfs, "");
        let cmd = qemu::command(&machine, &boot)?;
        let deadline = Instant::now() + TIMEOUT;
        let watcher = std::thread::spawn({
            let (sock, dump) = (sock.clone(), dump.clone());
            move || watch(&sock, &dump, deadline)
        });
        let captured = qemu::run_captured(
            cmd,
            symbolizer,
            Some(TIMEOUT + Duration::from_secs(5)),
            false,
            false,
        )?;
        let (matched, screen) = watcher
            .join()
            .unwrap_or((false, "the monitor thread panicked".into()));
        let (mut cases, done) = parse_tagged(SUITE, &captured.output, "[vga] ");
        cases.push(check(
            SUITE,
            "probe_done",
            done.is_some_and(|(_, failed)| failed == 0),
            format!("`[vga] done` line: {done:?}"),
        ));
        cases.push(check(SUITE, "text_buffer", matched, screen));
        cases.push(no_panic(SUITE, &captured));
        let failed = cases.iter().filter(|c| !c.passed).count();
        eprintln!(
            "    {} tests, {} failed, {:.1} s, {:?}",
            cases.len(),
            failed,
            captured.elapsed.as_secs_f64(),
            captured.outcome
        );
        if failed > 0 {
            eprintln!(
                "---- output of suite `{SUITE}` ----\n{}----",
                captured.output
            );
        }
        Ok(cases)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn screen() -> Vec<u8> {
            let mut s = vec![0u8; 4000];
            for &(row, col, text, attr) in EXPECT {
                for (i, ch) in text.bytes().enumerate() {
                    let at = (row * COLS + col + i) * 2;
                    s[at] = ch;
                    s[at + 1] = attr;
                }
            }
            s
        }

        #[test]
        fn vga_screen_check_matches_and_names_the_first_difference() {
            let mut s = screen();
            assert_eq!(mismatch(&s), None);
            s[(10 * COLS + 3) * 2 + 1] = 0x07;
            let why = mismatch(&s).unwrap();
            assert!(why.contains("cell (3, 10)"), "{why}");
            assert_eq!(mismatch(&s[..100]).map(|w| w.contains("None")), Some(true));
            assert!(render(&screen()).contains("10|HSYNC-OS vga probe: hello, screen"));
        }
    }
}

/// `cargo test` for the host crates; one case per libtest test.
fn host_tests(crates: &[&str]) -> Result<Vec<Case>> {
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

/// Judges a ktest run: each test by its own verdict, plus the suite's completion and exit.
pub fn judge_ktest(suite: &str, run: &Captured) -> Vec<Case> {
    let (mut cases, done) = parse_tagged(suite, &run.output, "[ktest] ");
    let complete = stream_complete("[ktest] ", &cases, done, run).and_then(|()| {
        let expected = if cases.iter().all(|c| c.passed) {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        if run.outcome == expected {
            Ok(())
        } else {
            Err(format!("exit {:?}, expected {expected:?}", run.outcome))
        }
    });
    let detail = complete.as_ref().err().cloned().unwrap_or_default();
    cases.push(Case::new(
        format!("{suite}::<suite completed>"),
        complete.is_ok(),
        detail,
    ));
    cases
}

/// Reads one wire-format stream (`[ktest]` or `[utest]`): the per-test cases (plus one for
/// every test that started but never finished) and the `done` counts.
fn parse_tagged(suite: &str, output: &str, tag: &str) -> (Vec<Case>, Option<(usize, usize)>) {
    let mut cases: Vec<Case> = Vec::new();
    let mut open: Vec<String> = Vec::new();
    let mut done = None;
    for line in output.lines() {
        let Some(rest) = line.find(tag).map(|i| &line[i + tag.len()..]) else {
            continue;
        };
        if let Some(name) = rest.strip_prefix("start ") {
            open.push(name.trim().to_owned());
        } else if let Some(name) = rest.strip_prefix("pass ") {
            open.retain(|n| n != name.trim());
            cases.push(Case::new(format!("{suite}::{}", name.trim()), true, ""));
        } else if let Some(msg) = rest.strip_prefix("fail ") {
            let (name, why) = msg.split_once(": ").unwrap_or((msg, ""));
            open.retain(|n| n != name.trim());
            cases.push(Case::new(format!("{suite}::{}", name.trim()), false, why));
        } else if let Some(counts) = rest.strip_prefix("done ") {
            done = parse_done(counts);
        }
    }
    for name in open {
        cases.push(Case::new(
            format!("{suite}::{name}"),
            false,
            "started but never finished",
        ));
    }
    (cases, done)
}

/// Whether a stream's `done` line matches what the serial log showed.
fn stream_complete(
    tag: &str,
    cases: &[Case],
    done: Option<(usize, usize)>,
    run: &Captured,
) -> Result<(), String> {
    let failed = cases.iter().filter(|c| !c.passed).count();
    match done {
        None => Err(format!("no `{tag}done` line (outcome {:?})", run.outcome)),
        Some(counts) if counts != (cases.len() - failed, failed) => Err(format!(
            "counted {counts:?}, serial showed {} results",
            cases.len()
        )),
        Some(_) if cases.is_empty() => Err("no tests ran".into()),
        Some(_) => Ok(()),
    }
}

/// The test image: the `[ktest]` stream, then the `[utest]` stream of root = selftest, each
/// with its own `done` check; the exit status must be success iff everything passed; no panic.
pub fn judge_user(suite: &str, run: &Captured) -> Vec<Case> {
    let (mut cases, kdone) = parse_tagged(&format!("{suite}::k"), &run.output, "[ktest] ");
    let kcomplete = stream_complete("[ktest] ", &cases, kdone, run);
    let (ucases, udone) = parse_tagged(&format!("{suite}::u"), &run.output, "[utest] ");
    let ucomplete = stream_complete("[utest] ", &ucases, udone, run);
    cases.extend(ucases);
    let all_passed = cases.iter().all(|c| c.passed);
    for (name, r) in [
        ("ktest_completed", kcomplete),
        ("utest_completed", ucomplete),
    ] {
        let detail = r.as_ref().err().cloned().unwrap_or_default();
        cases.push(Case::new(format!("{suite}::<{name}>"), r.is_ok(), detail));
    }
    let expected = if all_passed {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    cases.push(check(
        suite,
        "<exit_status>",
        run.outcome == expected,
        format!("exit {:?}, expected {expected:?}", run.outcome),
    ));
    cases.push(no_panic(suite, run));
    cases
}

/// The normal image: root greets with the ABI version, lists the initfs, and keeps running.
pub fn judge_root(suite: &str, run: &Captured) -> Vec<Case> {
    let out = &run.output;
    vec![
        check(
            suite,
            "hello",
            out.contains("root: hello from user space, ABI version"),
            "no hello line from root",
        ),
        check(
            suite,
            "initfs_listing",
            out.contains("root: initfs version") && out.contains("root: initfs root"),
            "root did not list the initfs (version, root)",
        ),
        no_panic(suite, run),
        check(
            suite,
            "keeps_running",
            run.outcome == Outcome::Timeout,
            format!(
                "expected root to wait until the timeout, got {:?}",
                run.outcome
            ),
        ),
    ]
}

fn parse_done(counts: &str) -> Option<(usize, usize)> {
    let mut passed = None;
    let mut failed = None;
    for word in counts.split_whitespace() {
        match word.split_once('=') {
            Some(("passed", n)) => passed = n.parse().ok(),
            Some(("failed", n)) => failed = n.parse().ok(),
            _ => {}
        }
    }
    Some((passed?, failed?))
}

fn check(suite: &str, name: &str, ok: bool, why: impl Into<String>) -> Case {
    let why = why.into();
    Case::new(
        format!("{suite}::{name}"),
        ok,
        if ok { String::new() } else { why },
    )
}

fn no_panic(suite: &str, run: &Captured) -> Case {
    check(
        suite,
        "no_panic",
        !run.output.contains("KERNEL PANIC"),
        "the kernel panicked",
    )
}

/// A normal boot with `poweroff`: banner, CPU and memory summaries, clean ACPI power-off.
pub fn judge_boot(suite: &str, run: &Captured) -> Vec<Case> {
    let out = &run.output;
    let version = env!("CARGO_PKG_VERSION");
    vec![
        check(
            suite,
            "banner",
            out.lines()
                .any(|l| l.contains("HSYNC-OS") && l.contains(version)),
            format!("no banner line with `HSYNC-OS` and `{version}`"),
        ),
        check(
            suite,
            "cpu_features",
            out.lines()
                .any(|l| l.contains("x2apic") && l.contains("smep")),
            "no CPU feature line (x2apic, smep, ...)",
        ),
        check(
            suite,
            "memory_summary",
            out.contains("memory: total="),
            "no `memory: total=` line",
        ),
        no_panic(suite, run),
        check(
            suite,
            "acpi_power_off",
            run.outcome == Outcome::Success && out.contains("poweroff"),
            format!("expected a clean power-off, got {:?}", run.outcome),
        ),
    ]
}

/// A normal boot without `poweroff`: the kernel idles until the timeout stops QEMU.
pub fn judge_idle(suite: &str, run: &Captured) -> Vec<Case> {
    vec![
        check(
            suite,
            "reaches_idle",
            run.output.contains("boot complete"),
            "no `boot complete` line",
        ),
        no_panic(suite, run),
        check(
            suite,
            "stopped_by_timeout",
            run.outcome == Outcome::Timeout,
            format!("expected the timeout to stop QEMU, got {:?}", run.outcome),
        ),
    ]
}

/// A deliberate panic: a readable, symbolized report and a failure exit.
pub fn judge_panic(suite: &str, run: &Captured) -> Vec<Case> {
    let out = &run.output;
    let report = out.find("KERNEL PANIC").map(|i| &out[i..]).unwrap_or("");
    vec![
        check(
            suite,
            "reported",
            !report.is_empty(),
            "no `KERNEL PANIC` report",
        ),
        check(
            suite,
            "message_and_location",
            report.contains("panic-test") && report.contains(".rs:"),
            "report lacks the panic message or its file:line",
        ),
        check(
            suite,
            "symbolized_backtrace",
            report
                .lines()
                .any(|l| l.trim_start().starts_with('#') && l.contains("hsync_kernel::")),
            "no backtrace frame symbolized to an hsync_kernel function",
        ),
        check(
            suite,
            "exit_failure",
            run.outcome == Outcome::Failure,
            format!("expected the failure exit (0x11), got {:?}", run.outcome),
        ),
    ]
}

/// The report of an exception taken in kernel mode: vector, CR2, registers, backtrace, exit.
fn judge_exception(suite: &str, run: &Captured, what: &str, needles: &[&str]) -> Vec<Case> {
    let out = &run.output;
    let report = out.find("KERNEL PANIC").map(|i| &out[i..]).unwrap_or("");
    let registers = ["rax=0x", "rsp=0x", "r15=0x", "rip=0x", "rflags=0x", "cs=0x"];
    vec![
        check(
            suite,
            "exception_named",
            needles.iter().all(|n| report.contains(n)),
            format!("report does not name the {what} with {needles:?}"),
        ),
        check(
            suite,
            "registers_dumped",
            registers.iter().all(|r| report.contains(r)),
            "register dump incomplete",
        ),
        check(
            suite,
            "symbolized_backtrace",
            report
                .lines()
                .any(|l| l.trim_start().starts_with("#0") && l.contains("hsync_kernel::")),
            "frame #0 not symbolized to an hsync_kernel function",
        ),
        check(
            suite,
            "exit_failure",
            run.outcome == Outcome::Failure,
            format!("expected the failure exit (0x11), got {:?}", run.outcome),
        ),
    ]
}

/// A deliberate read of an unmapped kernel address.
pub fn judge_page_fault(suite: &str, run: &Captured) -> Vec<Case> {
    judge_exception(
        suite,
        run,
        "page fault",
        &["#PF", "vector 14", "cr2 0x", "not-present"],
    )
}

/// Unbounded recursion on a kernel stack: the guard page turns it into a double fault that is
/// handled on its own IST stack instead of triple-faulting the machine.
pub fn judge_stack_overflow(suite: &str, run: &Captured) -> Vec<Case> {
    judge_exception(suite, run, "double fault", &["#DF", "vector 8"])
}

/// Driver bring-up suites (`serial`, `ps2`): a test initfs whose `root` is the driver itself. A
/// driver started as the first process holds the hardware authority, claims its device and
/// reports what it receives (servers/serial and servers/ps2, "bring-up"). xtask waits for the
/// driver's ready line, then types: bytes on QEMU's stdin (the `-serial stdio` line into COM1)
/// or `sendkey` on a QEMU monitor socket (the PS/2 keyboard), and waits for the driver to log
/// what arrived. Each boot ends at the expected line or its timeout.
mod drivers {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::{Case, check, no_panic};
    use crate::Result;
    use crate::artifacts::{self, Artifacts};
    use crate::qemu;
    use crate::symbolize::Symbolizer;

    /// How the suite types.
    enum Input {
        /// Bytes written to COM1's receive side.
        Serial(&'static [u8]),
        /// QEMU monitor `sendkey` arguments, one per key.
        Keys(&'static [&'static str]),
    }

    /// One driver suite.
    struct DriverSuite {
        name: &'static str,
        /// The driver crate, packed as `root`.
        crate_name: &'static str,
        /// The line that says the driver listens.
        ready: &'static str,
        input: Input,
        /// Lines that must appear after the input, in this order.
        expect: &'static [&'static str],
    }

    const TIMEOUT: Duration = Duration::from_secs(60);

    const SUITES: &[DriverSuite] = &[
        DriverSuite {
            name: "serial",
            crate_name: "hsync-serial",
            ready: "serial: COM1 ready",
            // Two lines, the second with a byte that is not UTF-8 on its own and a CR ending.
            input: Input::Serial(b"hello hsync\nsecond \xff line\r"),
            expect: &[
                "serial: received line \"hello hsync\"",
                "serial: received line \"<not UTF-8>\"",
            ],
        },
        DriverSuite {
            name: "ps2",
            crate_name: "hsync-ps2",
            ready: "ps2: i8042 ready",
            input: Input::Keys(&["h", "e", "l", "l", "o", "shift-i", "ret"]),
            expect: &[
                "ps2: key H pressed (char Some('h'))",
                "ps2: key H released (char None)",
                "ps2: key O pressed (char Some('o'))",
                "ps2: key I pressed (char Some('I'))",
                "ps2: key Return pressed (char Some('\\n'))",
            ],
        },
    ];

    /// Whether `filter` selects any driver suite.
    pub fn wanted(filter: &dyn Fn(&str) -> bool) -> bool {
        SUITES.iter().any(|s| filter(s.name))
    }

    /// Runs the selected suites.
    pub fn run(
        system: &Artifacts,
        symbolizer: &Symbolizer,
        filter: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Case>> {
        let mut cases = Vec::new();
        for suite in SUITES.iter().filter(|s| filter(s.name)) {
            crate::tools::step(&format!("QEMU suite `{}`", suite.name));
            let (output, ok_exit) = boot(system, symbolizer, suite)?;
            let mut results = judge(suite, &output);
            results.push(check(
                suite.name,
                "bounded",
                ok_exit,
                "QEMU did not stop when asked",
            ));
            let failed = results.iter().filter(|c| !c.passed).count();
            eprintln!("    {} tests, {failed} failed", results.len());
            if failed > 0 {
                eprintln!("---- output of suite `{}` ----\n{output}----", suite.name);
            }
            cases.extend(results);
        }
        Ok(cases)
    }

    /// `ready` once, then each `expect` line in order (after the ready line), no panic.
    fn judge(suite: &DriverSuite, output: &str) -> Vec<Case> {
        let lines: Vec<&str> = output.lines().collect();
        let ready = lines.iter().position(|l| l.contains(suite.ready));
        let mut cases = vec![check(
            suite.name,
            "ready",
            ready.is_some(),
            format!("no `{}` line", suite.ready),
        )];
        let mut at = ready.map_or(lines.len(), |i| i + 1);
        for (n, want) in suite.expect.iter().enumerate() {
            let found = lines[at.min(lines.len())..]
                .iter()
                .position(|l| l.contains(want));
            cases.push(check(
                suite.name,
                &format!("input_{n}"),
                found.is_some(),
                format!("no `{want}` line after the previous expectation"),
            ));
            if let Some(i) = found {
                at += i + 1;
            }
        }
        let crashed = output.contains("panic:") || output.contains("fault");
        cases.push(check(
            suite.name,
            "no_driver_fault",
            !crashed,
            "the driver panicked or faulted",
        ));
        cases.push(no_panic(
            suite.name,
            &qemu::Captured {
                outcome: qemu::Outcome::Timeout,
                output: output.to_owned(),
                elapsed: Duration::ZERO,
            },
        ));
        cases
    }

    /// One boot: returns the serial output and whether QEMU ended when told to.
    fn boot(
        system: &Artifacts,
        symbolizer: &Symbolizer,
        suite: &DriverSuite,
    ) -> Result<(String, bool)> {
        let dir = system
            .kernel
            .parent()
            .ok_or("kernel path has no directory")?
            .to_owned();
        let elf = std::fs::read(dir.join(suite.crate_name))
            .map_err(|e| format!("cannot read {}: {e}", suite.crate_name))?;
        let mut b = hsync_initfs::Builder::new();
        b.add("version", b"HSYNC-OS driver bring-up\n".to_vec())
            .and_then(|b| b.add("root", elf))
            .map_err(|e| e.to_string())?;
        let initfs = artifacts::out_dir().join(format!("initfs-{}.img", suite.name));
        artifacts::write_file(&initfs, &b.finish())?;
        let sock = artifacts::out_dir().join(format!("{}-monitor.sock", suite.name));
        let _ = std::fs::remove_file(&sock);
        let machine = qemu::with_monitor(&sock);
        let boot = qemu::boot_with_initfs(system, &initfs, "");
        let mut cmd = qemu::command(&machine, &boot)?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| format!("cannot start QEMU: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("no QEMU stdin")?;
        let stdout = child.stdout.take().ok_or("no QEMU stdout")?;
        let (rx, reader) = qemu::line_reader(stdout);
        let deadline = Instant::now() + TIMEOUT;
        let mut output = String::new();
        let mut typed = false;
        let mut seen = 0;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let line = match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => symbolizer.annotate(&line),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            output.push_str(&line);
            output.push('\n');
            if !typed && line.contains(suite.ready) {
                typed = true;
                match &suite.input {
                    Input::Serial(bytes) => {
                        stdin
                            .write_all(bytes)
                            .and_then(|()| stdin.flush())
                            .map_err(|e| format!("writing QEMU stdin: {e}"))?;
                    }
                    Input::Keys(keys) => {
                        if let Err(e) = send_keys(&sock, keys) {
                            output.push_str(&format!("xtask: monitor: {e}\n"));
                            break;
                        }
                    }
                }
            }
            if typed && seen < suite.expect.len() && line.contains(suite.expect[seen]) {
                seen += 1;
                if seen == suite.expect.len() {
                    break;
                }
            }
        }
        let _ = child.kill();
        let ok = child.wait().is_ok();
        drop(rx);
        let _ = reader.join();
        Ok((output, ok))
    }

    /// `sendkey` each key on the monitor at `sock`, answering each prompt.
    fn send_keys(sock: &std::path::Path, keys: &[&str]) -> std::io::Result<()> {
        let mut s = UnixStream::connect(sock)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let prompt = |s: &mut UnixStream| -> std::io::Result<()> {
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"(qemu) ") {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                got.extend_from_slice(&buf[..n]);
            }
            Ok(())
        };
        prompt(&mut s)?;
        for key in keys {
            s.write_all(format!("sendkey {key}\n").as_bytes())?;
            prompt(&mut s)?;
            // One key at a time: the guest sees press and release before the next.
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(output: &str, outcome: Outcome) -> Captured {
        Captured {
            outcome,
            output: output.into(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn libtest_lines_are_counted() {
        let out = "running 3 tests\ntest a::b ... ok\ntest c ... FAILED\ntest d ... ignored\n\
                   test result: FAILED. 1 passed; 1 failed;";
        let cases = parse_libtest(out);
        assert_eq!(cases.len(), 2);
        assert!(cases[0].passed && !cases[1].passed);
    }

    #[test]
    fn ktest_all_pass() {
        let out = "[0.1] [ktest] start a\n[ktest] pass a\n[ktest] start b\n[ktest] pass b\n\
                   [ktest] done passed=2 failed=0\n";
        let cases = judge_ktest("k", &captured(out, Outcome::Success));
        assert_eq!(cases.len(), 3);
        assert!(cases.iter().all(|c| c.passed), "{cases:?}");
    }

    #[test]
    fn ktest_hang_counts_the_open_test_and_the_suite_as_failed() {
        let out = "[ktest] start a\n[ktest] pass a\n[ktest] start b\n";
        let cases = judge_ktest("k", &captured(out, Outcome::Timeout));
        let failed: Vec<_> = cases
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["k::b", "k::<suite completed>"]);
    }

    #[test]
    fn ktest_failure_with_reason_and_mismatched_exit() {
        let out = "[ktest] start a\n[ktest] fail a: x != y\n[ktest] done passed=0 failed=1\n";
        let cases = judge_ktest("k", &captured(out, Outcome::Failure));
        assert_eq!(cases[0].detail, "x != y");
        assert!(
            cases[1].passed,
            "suite completed with the failure exit: {cases:?}"
        );
        let cases = judge_ktest("k", &captured(out, Outcome::Success));
        assert!(
            !cases[1].passed,
            "a failed test with a success exit must be flagged"
        );
    }

    #[test]
    fn user_judge_needs_both_streams_and_the_exit() {
        let good = "[ktest] start a\n[ktest] pass a\n[ktest] done passed=1 failed=0\n\
                    [selftest] [utest] start b\n[utest] pass b\n[utest] done passed=1 failed=0\n";
        let cases = judge_user("u", &captured(good, Outcome::Success));
        assert!(cases.iter().all(|c| c.passed), "{cases:?}");
        assert_eq!(cases.len(), 6);
        let no_udone = "[ktest] start a\n[ktest] pass a\n[ktest] done passed=1 failed=0\n\
                        [utest] start b\n";
        let cases = judge_user("u", &captured(no_udone, Outcome::Timeout));
        let failed: Vec<_> = cases
            .iter()
            .filter(|c| !c.passed)
            .map(|c| &c.name)
            .collect();
        assert!(failed.contains(&&"u::u::b".to_string()), "{failed:?}");
        assert!(failed.contains(&&"u::<utest_completed>".to_string()));
        let failing = "[ktest] start a\n[ktest] pass a\n[ktest] done passed=1 failed=0\n\
                       [utest] start b\n[utest] fail b: no\n[utest] done passed=0 failed=1\n";
        let cases = judge_user("u", &captured(failing, Outcome::Failure));
        assert_eq!(cases.iter().filter(|c| !c.passed).count(), 1, "{cases:?}");
        let cases = judge_user("u", &captured(failing, Outcome::Success));
        assert_eq!(cases.iter().filter(|c| !c.passed).count(), 2, "{cases:?}");
    }

    #[test]
    fn ktest_with_no_tests_fails() {
        let cases = judge_ktest(
            "k",
            &captured("[ktest] done passed=0 failed=0\n", Outcome::Success),
        );
        assert!(!cases.last().unwrap().passed);
    }

    #[test]
    fn ktest_count_mismatch_fails() {
        let out = "[ktest] start a\n[ktest] pass a\n[ktest] done passed=2 failed=0\n";
        let cases = judge_ktest("k", &captured(out, Outcome::Success));
        assert!(!cases.last().unwrap().passed);
    }

    #[test]
    fn panic_judge_needs_symbolized_frames() {
        let good = "KERNEL PANIC at kernel/src/main.rs:3: panic-test\n  #0 0xffffffff80001000 \
                    [hsync_kernel::kmain main.rs:3]\n";
        assert!(
            judge_panic("p", &captured(good, Outcome::Failure))
                .iter()
                .all(|c| c.passed)
        );
        let bare = "KERNEL PANIC at kernel/src/main.rs:3: panic-test\n  #0 0xffffffff80001000\n";
        assert!(
            !judge_panic("p", &captured(bare, Outcome::Failure))
                .iter()
                .all(|c| c.passed)
        );
    }
}
