//! `libhsync`: the user-space side of HSYNC-OS.
//!
//! This crate will hold the only syscall stubs in the system, safe typed wrappers around them
//! (`Handle<T>`, endpoints, notifications, process and thread builders), the IPC server framework
//! and the runtime every server links (`_start`, heap, panic reporting, `log` backend).
//!
//! Status: skeleton. The kernel's syscall ABI arrives with the kernel-core milestone; until then
//! this crate deliberately exposes nothing rather than pretend. It refuses to contain policy:
//! what a server may do is decided by the capabilities root grants, never by this library.
#![no_std]
#![forbid(missing_docs)]

/// Version of the user-space ABI this library speaks (bumped with every incompatible change).
pub const ABI_VERSION: u32 = 0;
