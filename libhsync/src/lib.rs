//! `libhsync`: the user-space side of HSYNC-OS.
//!
//! The only crate with `syscall` stubs ([`sys`]); everything above them is typed:
//!
//! * [`Handle<K>`](Handle) with marker kinds ([`Process`], [`Thread`], [`Frame`], [`Endpoint`],
//!   [`Reply`], [`Notification`]), closed on drop, with explicit checked casts;
//! * IPC ([`ipc`]): [`Msg`] for the register fast path, [`IpcBuf`] for long messages and handle
//!   transfer, `Endpoint::{call, send, try_send, recv, try_recv, reply_recv}`, [`Reply`];
//! * memory ([`memory`]): frames, [`memory::Mapping`], this process's address layout;
//! * processes and threads ([`process`]): create, start, wait (with fault records), kill, the
//!   ELF-spawn helper [`process::Spawn`], threads of this process;
//! * the runtime ([`rt`]): `_start`, a `talc` heap grown from Frames, panic → debug log + exit,
//!   a `log` backend on the kernel debug log, [`println!`];
//! * hardware ([`hw`]): I/O ports, IRQ lines and device memory for drivers, from granted handles;
//! * the server loop ([`serve`]): an endpoint multiplexed with IRQs and notifications;
//! * [`raw`]: unvalidated calls for tests of the kernel's argument checks.
//! * [`sse`]: SSE register load/check helpers for tests of lazy FPU switching.
//!
//! A program is `#![no_std] #![no_main]`, `#![forbid(unsafe_code)]`, and looks like:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! #![forbid(unsafe_code)]
//! libhsync::entry!(main);
//! fn main(args: libhsync::StartArgs) -> i32 {
//!     libhsync::println!("hello from {}", "user space");
//!     0
//! }
//! ```
//!
//! It refuses to contain policy: what a process may do is decided by the handles it holds.
//! Misuse errors ([`Error::is_misuse`]) are returned, not hidden; servers usually `expect` them,
//! which turns a bug into a panic of the offending process only.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod fault;
pub mod handle;
pub mod hw;
pub mod ipc;
pub mod logsink;
pub mod memory;
pub mod process;
pub mod protocol;
pub mod raw;
pub mod rt;
pub mod server;
pub mod sse;
pub mod sys;
pub mod sysinfo;

pub use handle::{
    AnyHandle, Endpoint, Frame, Handle, Info, Notification, Process, Reply, Thread, kind,
};
pub use hsync_abi::{
    ABI_VERSION, DEADLINE_NEVER, DEADLINE_NOW, Error, ExitStatus, FaultKind, FaultRecord,
    FramebufferInfo, HandleRecord, MapFlags, MsgInfo, ObjectKind, PAGE_SIZE, POWER_OFF,
    POWER_REBOOT, Rights,
};
pub use ipc::{IpcBuf, Msg, Received};
pub use server::serve;
pub use sysinfo::{SystemInfo, clock, debug_log, null, rdtsc, sleep_until, system_info, yield_now};

use hsync_abi::startup::ROOT_INITFS_ADDR;
use process::{CHILD_ARGS_MAGIC, CHILD_MAX_HANDLES, CHILD_MAX_WORDS};

/// What a program's `main` receives: its start registers, its IPC buffer, and accessors for
/// the libhsync start conventions (child start page, root's initfs).
#[derive(Debug)]
pub struct StartArgs {
    /// `rdi` at start: the own-Process handle by convention (0 if the creator gave none).
    pub arg0: u64,
    /// `rsi` at start: root's initfs Frame, or `CHILD_ARGS_ADDR` for a spawned child.
    pub arg1: u64,
    /// The main thread's IPC buffer.
    pub ipc: IpcBuf,
    taken: u32,
}

impl StartArgs {
    /// Bundles the start registers (done by `_start`).
    pub fn new(arg0: u64, arg1: u64, ipc: IpcBuf) -> StartArgs {
        StartArgs {
            arg0,
            arg1,
            ipc,
            taken: 0,
        }
    }

    fn is_child(&self) -> bool {
        rt::child_word(self.arg1, 0) == Some(CHILD_ARGS_MAGIC)
    }

    /// Number of start words a spawning parent passed (0 when not spawned by `Spawn`).
    pub fn words(&self) -> usize {
        if !self.is_child() {
            return 0;
        }
        rt::child_word(self.arg1, 1).map_or(0, |n| (n as usize).min(CHILD_MAX_WORDS))
    }

    /// Start word `i`, if passed.
    pub fn word(&self, i: usize) -> Option<u64> {
        (i < self.words())
            .then(|| rt::child_word(self.arg1, 3 + i))
            .flatten()
    }

    /// Number of handles the parent granted through the start page.
    pub fn handles(&self) -> usize {
        if !self.is_child() {
            return 0;
        }
        rt::child_word(self.arg1, 2).map_or(0, |n| (n as usize).min(CHILD_MAX_HANDLES))
    }

    /// Takes granted handle `i` as kind `K` (each index once; `None` afterwards). The kind is
    /// the parent's promise; use `Handle::cast` to check it.
    pub fn take_handle<K: kind::Kind>(&mut self, i: usize) -> Option<Handle<K>> {
        if i >= self.handles() || self.taken & (1 << i) != 0 {
            return None;
        }
        self.taken |= 1 << i;
        let raw = rt::child_word(self.arg1, 3 + CHILD_MAX_WORDS + i)?;
        Some(Handle::from_raw(hsync_abi::Handle::from_raw(raw)))
    }

    /// Root only: the initfs image the kernel mapped read-only at `ROOT_INITFS_ADDR`, when
    /// `arg1` names a readable Frame (the kernel's root convention).
    pub fn initfs(&self) -> Option<&'static [u8]> {
        let info = handle::inspect_raw(hsync_abi::Handle::from_raw(self.arg1)).ok()?;
        if info.kind != ObjectKind::Frame || !info.rights.contains(Rights::READ) {
            return None;
        }
        // SAFETY: the kernel maps the initfs read-only at ROOT_INITFS_ADDR before root starts
        // and never changes it; the header (32 bytes) is inside it.
        let header = unsafe {
            core::slice::from_raw_parts(ROOT_INITFS_ADDR as *const u8, hsync_initfs::HEADER_LEN)
        };
        let mut total = [0u8; 8];
        total.copy_from_slice(header.get(16..24)?);
        let total = u64::from_le_bytes(total) as usize;
        // SAFETY: as above; the kernel maps the whole image, whose length the header states.
        Some(unsafe { core::slice::from_raw_parts(ROOT_INITFS_ADDR as *const u8, total) })
    }
}

/// Declares the program's `main(args: StartArgs) -> i32`; its return value is the exit code.
///
/// ```ignore
/// libhsync::entry!(main);
/// fn main(_args: libhsync::StartArgs) -> i32 { 0 }
/// ```
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        fn __hsync_main(args: $crate::StartArgs) -> i32 {
            let main: fn($crate::StartArgs) -> i32 = $main;
            main(args)
        }
    };
}

/// Prints one line to the kernel debug log (at most 1024 bytes; longer lines are cut).
///
/// ```no_run
/// libhsync::println!("{} + {} = {}", 1, 2, 1 + 2);
/// ```
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::rt::print_line(format_args!($($arg)*))
    };
}
