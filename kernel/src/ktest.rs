//! In-kernel test framework (booted with `test` on the command line by `cargo xtask test`).
//!
//! Wire format on serial, one line each, parsed by xtask:
//! `[ktest] start <name>`, `[ktest] pass <name>`, `[ktest] fail <name>: <reason>`,
//! and finally `[ktest] done passed=<N> failed=<M>`. Then the kernel exits QEMU:
//! success through isa-debug-exit 0x10 (falling back to ACPI power-off), failure through
//! isa-debug-exit 0x11. A test that panics ends the run with the panic report and 0x11; a test
//! that hangs is caught by xtask's timeout (the open `start` line names it).
//!
//! OWNER: kernel-arch helper (runner). Each module contributes `pub const TESTS: &[KTest]`.

use alloc::string::String;
use core::fmt::Write;

use crate::arch;

/// A test's outcome: `Err` carries a human-readable reason.
pub type TestResult = Result<(), String>;

/// One in-kernel test.
pub struct KTest {
    /// Unique name, `module::what` (e.g. `mm::pmm_alloc_free_baseline`).
    pub name: &'static str,
    /// The test body.
    pub run: fn() -> TestResult,
}

/// Fails the current test with a formatted reason unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(alloc::format!($($fmt)+));
        }
    };
}

/// Every suite, in run order.
const SUITES: &[&[KTest]] = &[
    arch::TESTS,
    crate::mm::TESTS,
    crate::initfs::TESTS,
    crate::object::TESTS,
];

/// One wire-format line, outside the logger so that `log=error` cannot hide it.
fn line(args: core::fmt::Arguments<'_>) {
    let mut out = arch::console();
    let _ = writeln!(out, "[ktest] {args}");
}

/// Runs every suite, reports on serial and exits QEMU. Never returns.
#[allow(dead_code, reason = "kept for boots that only run the ktests")]
pub fn run_all_and_exit() -> ! {
    if run_all() {
        arch::exit_success()
    } else {
        arch::exit_failure()
    }
}

/// Runs every suite and reports on serial. Returns whether all passed.
pub fn run_all() -> bool {
    let (mut passed, mut failed) = (0u32, 0u32);
    for test in SUITES.iter().flat_map(|s| s.iter()) {
        line(format_args!("start {}", test.name));
        match (test.run)() {
            Ok(()) => {
                passed += 1;
                line(format_args!("pass {}", test.name));
            }
            Err(reason) => {
                failed += 1;
                // One line per verdict: fold any newline in the reason.
                let reason = reason.replace('\n', " / ");
                line(format_args!("fail {}: {reason}", test.name));
            }
        }
    }
    line(format_args!("done passed={passed} failed={failed}"));
    failed == 0
}

/// `test panic-test`: panics on purpose so xtask can check the report and the exit status.
/// `panic-test=fault` panics through a kernel page fault (exception report with registers),
/// `panic-test=overflow` through a stack overflow (guard page, double fault on its IST stack).
pub fn panic_test(kind: &str) -> ! {
    match kind {
        "fault" | "overflow" => arch::provoke_fault(kind),
        _ => panic!("panic-test: deliberate panic requested on the command line"),
    }
}
