//! `cargo xtask test`: host unit tests, then in-QEMU suites, then one
//! `N passed, N failed, N skipped` line (a suite that cannot run here is skipped, never passed).
//!
//! Each QEMU suite is one boot. Kernel-side tests report over serial in the ktest wire format
//! (`[ktest] start|pass|fail|done ...`); boot suites check what a person would look for in the
//! log. A suite that hangs is stopped by its timeout and counted as failed, never waited on.
//!
//! This file is the runner (the suite table, the `Ctx` of lazily built images, the tally); each
//! suite's boot and judge live in one file under `test/`: `host`, `kernel` (and the shim suites'
//! `[ktest]` judge), `user`, `system` (`root`, `system`, `system-restart`), `drivers` (`serial`,
//! `ps2`), `vga`, `shell`, `lifecycle` (`lifecycle`, `new-server`), `iso`, `fuzz` (the in-guest system-call fuzzer).

use std::process::ExitCode;
use std::time::Duration;

use crate::Result;
use std::path::PathBuf;

use crate::artifacts::{self, Artifacts};
use crate::images::{self, IsoModule};
use crate::qemu::{self, Boot, Captured, Machine, Module};
use crate::symbolize::Symbolizer;
use crate::tools::step;

pub(crate) mod display;
mod drivers;
pub mod fuzz;
mod host;
mod iso;
mod kernel;
mod lifecycle;
mod limine;
pub(crate) mod shell;
mod smp;
mod system;
mod user;
pub(crate) mod vga;

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

/// The user suite: room for the teardown chains (10,000 threads with their kernel stacks).
fn user_machine() -> Machine {
    Machine {
        memory_mib: 1024,
        ..Machine::default()
    }
}

/// The fuzz image: two CPUs (the issue asks for -smp 2; the kernel uses the ones it runs).
pub fn fuzz_machine() -> Machine {
    Machine {
        smp: 2,
        memory_mib: 512,
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
        judge: kernel::judge_ktest,
    },
    Suite {
        name: "kernel-qemu64",
        timeout_secs: 120,
        machine: qemu64_machine,
        boot: |ctx| kernel_only("test")(ctx),
        judge: kernel::judge_ktest,
    },
    Suite {
        name: "kernel-4g",
        timeout_secs: 180,
        machine: big_machine,
        boot: |ctx| kernel_only("test")(ctx),
        judge: kernel::judge_ktest,
    },
    Suite {
        name: "boot",
        timeout_secs: 60,
        machine: default_machine,
        boot: |ctx| kernel_only("poweroff")(ctx),
        judge: kernel::judge_boot,
    },
    Suite {
        name: "idle",
        timeout_secs: 5,
        machine: default_machine,
        boot: |ctx| kernel_only("")(ctx),
        judge: kernel::judge_idle,
    },
    Suite {
        name: "panic",
        timeout_secs: 60,
        machine: default_machine,
        boot: |ctx| kernel_only("test panic-test")(ctx),
        judge: kernel::judge_panic,
    },
    Suite {
        name: "panic-pagefault",
        timeout_secs: 60,
        machine: default_machine,
        boot: |ctx| kernel_only("test panic-test=fault")(ctx),
        judge: kernel::judge_page_fault,
    },
    Suite {
        name: "panic-stack-overflow",
        timeout_secs: 60,
        machine: default_machine,
        boot: |ctx| kernel_only("test panic-test=overflow")(ctx),
        judge: kernel::judge_stack_overflow,
    },
    // User space: the ktests, then root = selftest from the test initfs (`[utest]` lines).
    Suite {
        name: "user",
        timeout_secs: 600,
        machine: user_machine,
        boot: |ctx| {
            Ok(qemu::boot_with_initfs(
                &ctx.system,
                &ctx.system.initfs_test,
                "test",
            ))
        },
        judge: user::judge_user,
    },
    // The in-guest system-call fuzzer, one short round at -smp 2 (test/fuzz.rs).
    Suite {
        name: "fuzz",
        timeout_secs: 120,
        machine: fuzz_machine,
        boot: |ctx| {
            let seed = fuzz::fresh_seed();
            let initfs = ctx
                .system
                .fuzz_initfs("initfs-fuzz-test.img", &fuzz::suite_config(seed))?;
            Ok(qemu::boot_with_initfs(
                &ctx.system,
                &initfs,
                "test no-ktest",
            ))
        },
        judge: fuzz::judge_fuzz,
    },
    // The user image at -smp 4, and a panic on an AP (test/smp.rs).
    Suite {
        name: "smp",
        timeout_secs: 900,
        machine: smp::machine,
        boot: |ctx| {
            Ok(qemu::boot_with_initfs(
                &ctx.system,
                &ctx.system.initfs_test,
                "test",
            ))
        },
        judge: smp::judge_smp,
    },
    Suite {
        name: "smp-ap-panic",
        timeout_secs: 60,
        machine: smp::machine2,
        boot: |ctx| kernel_only("test panic-test=ap")(ctx),
        judge: smp::judge_ap_panic,
    },
    // The normal image: the kernel starts servers/root, which greets and waits.
    Suite {
        name: "root",
        timeout_secs: 15,
        machine: default_machine,
        boot: |ctx| system("")(ctx),
        judge: system::judge_root,
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
        judge: kernel::judge_ktest,
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
        judge: kernel::judge_ktest,
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
        judge: kernel::judge_ktest,
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
        judge: kernel::judge_ktest,
    },
];

/// Runs everything; the exit status is non-zero when anything failed.
pub fn run(filter: Option<&str>, release: bool, limine: Option<PathBuf>) -> Result<ExitCode> {
    let wanted = |name: &str| filter.is_none_or(|f| name.contains(f));
    let mut cases = Vec::new();
    let mut skipped: Vec<String> = Vec::new();

    // Protocol crates (`servers/*-api`) hold host-testable encodings: test them too.
    let apis: Vec<String> = artifacts::server_packages()
        .into_iter()
        .filter(|p| p.ends_with("-api"))
        .collect();
    let host: Vec<&str> = host::HOST_CRATES
        .iter()
        .copied()
        .chain(apis.iter().map(String::as_str))
        .filter(|c| wanted(c))
        .collect();
    if !host.is_empty() {
        cases.extend(host::host_tests(&host)?);
    }

    let suites: Vec<&Suite> = SUITES.iter().filter(|s| wanted(s.name)).collect();
    let want_vga = wanted(vga::SUITE);
    let want_drivers = drivers::wanted(&wanted);
    let want_shell = wanted(shell::SUITE);
    let want_iso = iso::wanted(&wanted);
    let want_lifecycle = wanted(lifecycle::SUITE);
    let want_limine = limine::wanted(&wanted);
    let want_display = display::wanted(&wanted);
    if !suites.is_empty()
        || want_vga
        || want_drivers
        || want_shell
        || want_iso
        || want_lifecycle
        || want_limine
        || want_display
    {
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
            // Measured figures a suite reports (never asserted on): shown even when it passes.
            for line in captured.output.lines().filter(|l| l.contains("[figure] ")) {
                eprintln!("    {}", line.trim());
            }
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
        if want_limine {
            let dir = images::limine_dir(limine.clone());
            let report = limine::run(&ctx.system, &symbolizer, &wanted, dir)?;
            cases.extend(report.cases);
            skipped.extend(report.skipped);
        }
        if want_display {
            let dir = images::limine_dir(limine);
            let report = display::run(&ctx.system, &symbolizer, &wanted, dir)?;
            cases.extend(report.cases);
            skipped.extend(report.skipped);
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
    for s in &skipped {
        eprintln!("SKIPPED {s}");
    }
    println!(
        "{} passed, {} failed, {} skipped",
        cases.len() - failed.len(),
        failed.len(),
        skipped.len()
    );
    Ok(if failed.is_empty() && !cases.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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

/// A finished run with this output and outcome, for the judges' unit tests.
#[cfg(test)]
fn captured(output: &str, outcome: qemu::Outcome) -> Captured {
    Captured {
        outcome,
        output: output.into(),
        elapsed: Duration::ZERO,
    }
}
