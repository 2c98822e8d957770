//! The `syscall` register convention, as named constants for documentation and for the
//! kernel's entry shell and libhsync's stubs.
//!
//! * In: number in `rax`; arguments 0..6 in `rdi, rsi, rdx, r10, r8, r9` (`r10` replaces `rcx`,
//!   which the `syscall` instruction overwrites with the return address).
//! * Out: status in `rax` (0 = success, otherwise an [`Error`](crate::Error) code); results
//!   0..6 in the same six registers as the arguments.
//! * Clobbered: `rcx` (return rip) and `r11` (return rflags), by the instruction itself. Every
//!   other register, including the vector registers, is preserved.
//!
//! Registers a call does not define as results are returned as 0, so user space never sees a
//! stale kernel value.

/// Number of argument registers (and of result registers besides the status).
pub const ARG_REGS: usize = 6;

/// Names of the argument/result registers in order, for docs and diagnostics.
pub const ARG_REG_NAMES: [&str; ARG_REGS] = ["rdi", "rsi", "rdx", "r10", "r8", "r9"];

/// The status value meaning success.
pub const STATUS_OK: u64 = 0;
