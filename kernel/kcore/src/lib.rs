//! Arch-free logic of the HSYNC-OS kernel.
//!
//! Everything here is plain `no_std` Rust with no `asm!`, no MSRs and no global state, so that
//! `cargo test` runs it on the host. The kernel crate wraps these types with the hardware.
//! This crate refuses to touch hardware or allocate behind the caller's back.
#![no_std]

pub mod cap;
pub mod elf;
pub mod frame;
pub mod mem;
pub mod sched;
pub mod user;
