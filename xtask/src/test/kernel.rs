//! The kernel suites (`kernel`, `kernel-qemu64`, `kernel-4g`, `boot`, `idle`, `panic*`), and the
//! shim suites that judge the probe kernel's `[ktest]` stream: what each boot must print.

use super::{Case, check, no_panic};
use crate::qemu::{Captured, Outcome};

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
pub(super) fn parse_tagged(
    suite: &str,
    output: &str,
    tag: &str,
) -> (Vec<Case>, Option<(usize, usize)>) {
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
pub(super) fn stream_complete(
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
    judge_exception(
        suite,
        run,
        "kernel stack overflow",
        &["#DF", "kernel stack overflow in thread", "(process "],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test::captured;

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
