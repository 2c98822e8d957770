//! Panic handler: message, location, CPU, registers when from an exception, backtrace; then exit.
//!
//! Report format (one item per line; xtask symbolizes the backtrace frames and `rip=`):
//!
//! ```text
//! KERNEL PANIC on cpu 0
//! message: <the panic message>
//! location: <file>:<line>:<column>
//! registers:                                  (only when an exception caused the panic)
//!    rax=0x... rbx=0x... rcx=0x... rdx=0x...  (five lines of four)
//! backtrace:
//!   #0 0xffffffff8000abcd
//!   #1 ...
//! end of panic report
//! ```
//!
//! First every other CPU is stopped (an NMI; a CPU that panics while another one reports just
//! halts), so the report is the only one. Then QEMU's isa-debug-exit gets 0x11 (status 35) and
//! the CPU halts (real hardware).
//! A panic inside the panic handler prints one line and halts.

use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch;

/// The CPU that is reporting a panic (`u32::MAX`: none).
static PANIC_CPU: AtomicU32 = AtomicU32::new(u32::MAX);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let me = arch::cpu_id();
    match PANIC_CPU.compare_exchange(u32::MAX, me, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            arch::stop_other_cpus();
        }
        Err(cpu) if cpu == me => {
            let mut out = arch::panic_console();
            let _ = writeln!(out, "\nKERNEL PANIC (recursive): {}", info.message());
            drop(out);
            arch::exit_failure();
        }
        // Another CPU is reporting (its NMI may be on its way): stop here quietly.
        Err(_) => arch::halt_forever(),
    }
    let mut out = arch::panic_console();
    // Output errors cannot be reported anywhere; each line is best effort.
    let _ = writeln!(out, "\nKERNEL PANIC on cpu {}", arch::cpu_id());
    let _ = writeln!(out, "message: {}", info.message());
    match info.location() {
        Some(l) => {
            let _ = writeln!(out, "location: {}:{}:{}", l.file(), l.line(), l.column());
        }
        None => {
            let _ = writeln!(out, "location: unknown");
        }
    }
    // From an exception: its registers, and a backtrace of the interrupted code.
    // Otherwise: a backtrace from here (the first frames are the panic machinery).
    let (first, rbp) = match arch::take_panic_frame() {
        Some(frame) => {
            let _ = write!(out, "registers:\n{frame}");
            (Some(frame.rip), frame.rbp)
        }
        None => (None, arch::current_rbp()),
    };
    let _ = writeln!(out, "backtrace:");
    let mut n = 0;
    if let Some(rip) = first {
        let _ = writeln!(out, "  #{n} {rip:#018x}");
        n += 1;
    }
    arch::walk_frames(rbp, |ret| {
        // A return address points after the call; xtask symbolizes it as the call's line.
        let _ = writeln!(out, "  #{n} {ret:#018x}");
        n += 1;
    });
    let _ = writeln!(out, "end of panic report");
    drop(out);
    arch::exit_failure()
}
