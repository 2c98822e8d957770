//! In-kernel test framework (booted with `test` on the command line by `cargo xtask test`).
//!
//! Wire format on serial, one line each, parsed by xtask:
//! `[ktest] start <name>`, `[ktest] pass <name>`, `[ktest] fail <name>: <reason>`,
//! and finally `[ktest] done passed=<N> failed=<M>`. Then the kernel exits QEMU:
//! success through ACPI power-off / isa-debug-exit 0x10, failure through isa-debug-exit 0x11.
//!
//! OWNER: kernel-arch helper (runner). Each module contributes `pub const TESTS: &[KTest]`.

use alloc::string::String;

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

/// Runs every suite, reports on serial and exits QEMU. Never returns.
pub fn run_all_and_exit() -> ! {
    todo!("kernel-arch helper: run crate::arch::TESTS, crate::mm::TESTS, ...")
}
