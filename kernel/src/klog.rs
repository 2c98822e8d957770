//! The kernel's `log` backend: serial (COM1), `[seconds] LEVEL target: message`.
//!
//! OWNER: kernel-arch helper.

use crate::boot::BootInfo;

/// Prints the `HSYNC-OS <version>` banner and the boot summary.
pub fn banner(_info: &BootInfo) {
    todo!("kernel-arch helper")
}
