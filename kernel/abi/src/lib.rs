//! The HSYNC-OS system-call ABI: the one contract between the kernel and user space.
//!
//! Both sides depend on this crate — the kernel's dispatcher decodes raw registers with it, and
//! `libhsync` encodes them with it — so a number, a bit or a struct offset can only change in one
//! place. It defines:
//!
//! * [`Sysnum`]: every system call, and the register convention ([`regs`]);
//! * [`Error`]: the status codes a call returns, each classed as recoverable or misuse;
//! * [`Handle`], [`Rights`], [`ObjectKind`]: how a process names kernel objects;
//! * [`MsgInfo`], [`IpcBuffer`]: the IPC message layout (register fast path + per-thread buffer);
//! * [`MapFlags`]: page permissions for mapping a Frame;
//! * [`ROOT_HW_AUTHORITY`], [`DeviceCache`]: hardware capabilities (ports, IRQs, MMIO);
//! * [`FaultRecord`], [`ExitStatus`]: what a supervisor learns when a process ends.
//!
//! The crate is plain data and pure functions: no `unsafe`, no allocation, no policy. Everything
//! that decodes a value from the other side of the boundary is a checked `TryFrom`/`from_raw`,
//! never a cast, so a hostile register value becomes an [`Error`], not undefined behaviour.
//!
//! The prose reference is `docs/syscalls.md`, `docs/ipc.md` and `docs/capabilities.md`; a test
//! fails when a system call or error code is missing there.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[macro_use]
mod macros;

mod error;
mod fault;
mod handle;
mod hw;
mod ipc;
mod map;
pub mod regs;
pub mod startup;
mod sysnum;

pub use error::{Error, ErrorClass, UnknownError};
pub use fault::{ExitStatus, FaultKind, FaultRecord};
pub use handle::{Handle, HandleRecord, ObjectKind, Rights};
pub use hw::{
    DeviceCache, FramebufferInfo, IO_PORTS, ISA_IRQS, MAX_GSIS, POWER_OFF, POWER_REBOOT,
    ROOT_HW_AUTHORITY,
};
pub use ipc::{IpcBuffer, MAX_MSG_HANDLES, MAX_MSG_WORDS, MsgInfo, REG_MSG_WORDS};
pub use map::{
    DEADLINE_NEVER, DEADLINE_NOW, DEBUG_LOG_MAX, MapFlags, PAGE_SIZE, PRIORITY_LEVELS,
    PROCESS_NAME_MAX,
};
pub use sysnum::Sysnum;

/// `system_info` page: memory and object counts.
pub const SYSINFO_MEMORY: u64 = 0;
/// `system_info` page: kernel event counters (lazy-FPU traps, IPC fast-path handoffs, parked
/// threads resumed by the general scheduler).
pub const SYSINFO_COUNTERS: u64 = 1;
/// `system_info` page: the kernel heap (bytes mapped, bytes allocated) and the frames held in
/// reserve for its growth.
pub const SYSINFO_HEAP: u64 = 2;
/// `system_info` page: `(cpus online, the calling thread's CPU, 0, 0, 0, 0)`.
pub const SYSINFO_CPUS: u64 = 3;
/// `system_info` page `SYSINFO_CPU + i`: CPU `i`'s `(apic id, running (1) or idle (0),
/// threads switched to, busy ns, TSC offset from CPU 0 in cycles (two's complement), ns since
/// boot)`.
pub const SYSINFO_CPU: u64 = 0x100;

/// Version of this ABI. Bumped on every incompatible change (a renumbered call, a moved field, a
/// changed register). Additions that old binaries cannot observe (a new call number, a new
/// error code) bump it too while the system is young: every binary is rebuilt with the kernel.
pub const ABI_VERSION: u32 = 2;

#[cfg(test)]
mod tests;
