//! Where things are when a process starts: the contract between the kernel, root and libhsync.
//!
//! A thread starts at its entry point with `rdi` = `arg0`, `rsi` = `arg1` (from `thread_start`),
//! `rdx` = its IPC buffer address and `rsp` = its stack top minus 8, all other registers 0
//! (see `docs/syscalls.md`, `thread_start`).

/// Lowest mappable user address: page 0 is never mapped, so null dereferences fault.
pub const USER_MIN: u64 = 0x1000;
/// One past the highest user address (the canonical lower half of the address space).
pub const USER_END: u64 = 0x0000_8000_0000_0000;
/// Link address of user executables (libhsync's linker script puts the first segment here).
pub const USER_IMAGE_BASE: u64 = 0x40_0000;
/// Top of the main thread's stack, mapped by `process_create` for ELF images.
pub const MAIN_STACK_TOP: u64 = 0x0000_7fff_ff00_0000;
/// Pages of that stack; the page below it is left unmapped as a guard.
pub const MAIN_STACK_PAGES: u64 = 32;
/// The main thread's IPC buffer, mapped read-write by `process_create` for ELF images.
pub const MAIN_IPC_BUFFER: u64 = 0x0000_7fff_ff10_0000;
/// Where the kernel maps the initfs image (read-only) into root before it starts.
pub const ROOT_INITFS_ADDR: u64 = 0x0000_7000_0000_0000;

/// Root's start arguments: `arg0` is a handle to root's own Process, `arg1` a handle to the
/// initfs Frame (`READ | MAP | DUPLICATE | TRANSFER`). The image is also mapped read-only at
/// [`ROOT_INITFS_ADDR`]; its length is in the initfs header.
pub mod root_args {
    /// Index of the own-Process argument.
    pub const PROCESS: usize = 0;
    /// Index of the initfs-Frame argument.
    pub const INITFS: usize = 1;
}
