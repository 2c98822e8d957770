//! Frame-pointer backtraces (the kernel is built with `-C force-frame-pointers=yes`).
//!
//! Each frame is `[rbp] = caller's rbp`, `[rbp + 8] = return address`. The walk stops at a null,
//! misaligned, non-kernel or non-increasing frame pointer, at a return address outside the
//! kernel's text, or after [`MAX_FRAMES`]; every read goes through [`super::probe`], so a corrupt
//! chain ends the backtrace instead of faulting inside a panic report.

use super::probe;

/// Upper bound on printed frames.
pub const MAX_FRAMES: usize = 32;

/// Lowest higher-half address; frame pointers below it are not kernel stacks.
const HIGHER_HALF: u64 = 0xffff_8000_0000_0000;

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
}

/// True when `addr` lies in the kernel's executable segment.
pub fn is_kernel_text(addr: u64) -> bool {
    let start = (&raw const __text_start) as u64;
    let end = (&raw const __text_end) as u64;
    (start..end).contains(&addr)
}

/// Calls `f` with each return address found by walking the chain starting at `rbp`.
pub fn walk(mut rbp: u64, mut f: impl FnMut(u64)) {
    for _ in 0..MAX_FRAMES {
        if rbp < HIGHER_HALF || !rbp.is_multiple_of(8) {
            return;
        }
        let (Ok(next), Ok(ret)) = (probe::read_u64(rbp), probe::read_u64(rbp + 8)) else {
            return;
        };
        if !is_kernel_text(ret) {
            return;
        }
        f(ret);
        // Callers' frames sit at higher addresses; anything else is a loop or garbage.
        if next <= rbp {
            return;
        }
        rbp = next;
    }
}

/// The current frame pointer.
#[inline(always)]
pub fn current_rbp() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags))
    };
    rbp
}
