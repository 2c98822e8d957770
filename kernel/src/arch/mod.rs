//! The architecture facade: the only place with `asm!`, MSRs, port I/O and descriptor tables.
//!
//! OWNER: kernel-arch helper, except `x86_64/paging.rs` (kernel-mm helper).

mod x86_64;
pub use self::x86_64::*;
