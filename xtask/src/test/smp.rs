//! QEMU suites for SMP (docs/smp.md): the user test image at `-smp 4` (every utest, the
//! `smp_*` ones spread over four CPUs), and a panic on an AP that must stop every CPU and give
//! exactly one report naming that CPU.

use super::kernel::judge_panic;
use super::user::judge_user;
use super::{Case, check};
use crate::qemu::{Captured, Machine};

/// CPUs of the `smp` suite.
pub const CPUS: u32 = 4;

/// The user suite's machine with four CPUs.
pub fn machine() -> Machine {
    Machine {
        smp: CPUS,
        memory_mib: 1024,
        ..Machine::default()
    }
}

/// A two-CPU machine (the AP-panic check needs one AP, whatever `--smp` says).
pub fn machine2() -> Machine {
    Machine {
        smp: 2,
        ..Machine::default()
    }
}

/// The user suite's verdicts, plus: all four CPUs came online.
pub fn judge_smp(suite: &str, run: &Captured) -> Vec<Case> {
    let mut cases = judge_user(suite, run);
    let want = format!("smp: {CPUS} CPUs online");
    cases.push(check(
        suite,
        "all_cpus_online",
        run.output.contains(&want),
        format!("no `{want}` line"),
    ));
    cases
}

/// `panic-test=ap`: the panic suite's verdicts (report, message, symbolized backtrace, the
/// failure exit), plus: exactly one report, and it comes from the AP (cpu 1).
pub fn judge_ap_panic(suite: &str, run: &Captured) -> Vec<Case> {
    let out = &run.output;
    let reports = out.matches("KERNEL PANIC").count();
    let mut cases = judge_panic(suite, run);
    cases.push(check(
        suite,
        "one_report",
        reports == 1,
        format!("{reports} `KERNEL PANIC` reports, want exactly 1"),
    ));
    cases.push(check(
        suite,
        "reported_by_the_ap",
        out.contains("KERNEL PANIC on cpu 1") && out.contains("deliberate panic on an AP"),
        "no report from cpu 1 with the panic-test message",
    ));
    cases
}
