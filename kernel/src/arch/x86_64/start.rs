//! The kernel's first instruction and the switch onto a guarded stack.

use core::arch::{asm, global_asm};

use spin::Once;

use crate::boot::BootInfo;

// Limine enters here on its own stack with a 0 return address pushed and RBP = 0. We clear RBP
// anyway (it terminates every backtrace) and align the stack before the first call.
global_asm!(
    r#"
    .section .text._start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    xor ebp, ebp
    and rsp, -16
    call {entry}
    ud2
    .size _start, . - _start
    "#,
    entry = sym kernel_entry,
);

extern "C" fn kernel_entry() -> ! {
    crate::kmain()
}

/// Where `switch_stack` continues; set once, read on the new stack.
static CONTINUATION: Once<(&'static BootInfo, Continuation)> = Once::new();

/// The rest of boot, run on the new stack.
pub type Continuation = fn(&'static BootInfo) -> !;

/// Moves the CPU onto the stack whose top is `top` and calls `next(info)` there. The old stack
/// is abandoned (never returned to), so the loader's memory under it can be reclaimed.
///
/// # Safety
/// `top` must be the 16-byte aligned top of a mapped, writable kernel stack that nothing else
/// uses and that stays mapped forever.
pub unsafe fn switch_stack(top: u64, info: &'static BootInfo, next: Continuation) -> ! {
    CONTINUATION.call_once(|| (info, next));
    // SAFETY: per the contract the new stack is ours; RBP = 0 ends backtraces at the new base,
    // and `on_new_stack` never returns, so nothing ever pops past the top.
    unsafe {
        asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {cont}",
            "ud2",
            top = in(reg) top,
            cont = sym on_new_stack,
            options(noreturn),
        )
    }
}

extern "C" fn on_new_stack() -> ! {
    match CONTINUATION.get() {
        Some(&(info, next)) => next(info),
        None => unreachable!("switch_stack sets the continuation first"),
    }
}
