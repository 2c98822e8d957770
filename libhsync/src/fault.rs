//! Deliberate CPU exceptions, for tests of fault isolation and supervisors.
//!
//! Each function raises one exception in the calling thread; the kernel kills the whole process
//! and reports a [`FaultRecord`](hsync_abi::FaultRecord) to whoever waits on it. They are safe:
//! they never return, so no Rust state is observed after the fault.

/// Writes to `addr` (pick an unmapped one): #PF, reported as `FaultKind::PageFault` with
/// `address == addr`.
pub fn page_fault(addr: u64) -> ! {
    // SAFETY: the write is meant to fault; if `addr` were mapped writable it would change one
    // word nobody references and the loop below stops the thread anyway.
    unsafe { (addr as *mut u64).write_volatile(0xdead) };
    loop {
        core::hint::spin_loop();
    }
}

/// Executes `ud2`: #UD, `FaultKind::InvalidOpcode`.
pub fn invalid_opcode() -> ! {
    // SAFETY: `ud2` raises #UD and touches nothing.
    unsafe { core::arch::asm!("ud2", options(noreturn)) }
}

/// Executes `hlt` in user mode: #GP, `FaultKind::GeneralProtection`.
pub fn general_protection() -> ! {
    // SAFETY: `hlt` at CPL 3 raises #GP and touches nothing.
    unsafe { core::arch::asm!("hlt", options(noreturn)) }
}

/// Divides by zero with `div`: #DE, `FaultKind::DivideError`.
pub fn divide_error() -> ! {
    // SAFETY: `div` by a zero register raises #DE; only rax/rdx/rcx are touched.
    unsafe {
        core::arch::asm!(
            "xor ecx, ecx",
            "xor edx, edx",
            "mov eax, 1",
            "div rcx",
            options(noreturn),
        )
    }
}

/// Executes `int3`: #BP, `FaultKind::Breakpoint`.
pub fn breakpoint() -> ! {
    // SAFETY: `int3` raises #BP and touches nothing; the loop catches a resumed thread.
    unsafe { core::arch::asm!("int3", options(nomem, nostack)) };
    loop {
        core::hint::spin_loop();
    }
}

/// Recurses until the stack's guard page is hit: `FaultKind::StackOverflow`.
pub fn stack_overflow() -> ! {
    #[inline(never)]
    #[allow(
        unconditional_recursion,
        reason = "the point: recurse until the guard page"
    )]
    fn deeper(n: u64) -> u64 {
        let pad = core::hint::black_box([n; 64]);
        core::hint::black_box(deeper(pad[1] + 1)) + pad[0]
    }
    let _ = deeper(0);
    loop {
        core::hint::spin_loop();
    }
}
