//! Reads that may fault: a page fault inside [`read_u64`] returns an error instead of panicking.
//!
//! Used by the in-kernel tests (to check that guard pages really are unmapped) and by the
//! backtrace walker (a corrupt frame pointer must not turn a panic report into a double panic).
//! The mechanism is deliberately tiny: one recovery address per CPU, armed by the probing
//! instruction's own asm block and consumed by the #PF handler. User copies will need a real
//! exception table; this is not it.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::control::Cr2;

use super::trap::TrapFrame;

/// Where the #PF handler resumes, or 0 when no probe is armed. (Boot CPU only for now.)
static RECOVERY_RIP: AtomicU64 = AtomicU64::new(0);
static FAULT_ADDR: AtomicU64 = AtomicU64::new(0);
static FAULT_CODE: AtomicU64 = AtomicU64::new(0);

/// A page fault caught by a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaughtFault {
    /// CR2: the address that faulted.
    pub addr: u64,
    /// The #PF error code (bit 0 = protection violation, 1 = write, 2 = user, 4 = fetch).
    pub code: u64,
}

/// Reads the u64 at `addr`, or reports the page fault the read caused.
///
/// Only page faults are caught: a non-canonical address raises #GP and still panics, which is
/// why callers check canonicality first.
pub fn read_u64(addr: u64) -> Result<u64, CaughtFault> {
    let value: u64;
    let faulted: u64;
    // SAFETY: the asm arms the recovery address (label 2), performs one 8-byte load and
    // disarms. If the load faults, the #PF handler consumes the armed address and resumes at
    // label 2, which only sets `faulted`; all other registers are as the asm left them, and the
    // stack is untouched (`nostack`). A load has no side effects on RAM, and callers never probe
    // device memory. Interrupts cannot re-arm the slot in between: only this function arms it.
    unsafe {
        asm!(
            "lea {tmp}, [rip + 2f]",
            "mov qword ptr [{slot}], {tmp}",
            "xor {faulted:e}, {faulted:e}",
            "mov {value}, qword ptr [{addr}]",
            "jmp 3f",
            "2:",
            "mov {faulted:e}, 1",
            "3:",
            "mov qword ptr [{slot}], 0",
            slot = in(reg) RECOVERY_RIP.as_ptr(),
            addr = in(reg) addr,
            tmp = out(reg) _,
            value = inout(reg) 0u64 => value,
            faulted = out(reg) faulted,
            options(nostack),
        );
    }
    if faulted != 0 {
        Err(CaughtFault {
            addr: FAULT_ADDR.load(Ordering::Relaxed),
            code: FAULT_CODE.load(Ordering::Relaxed),
        })
    } else {
        Ok(value)
    }
}

/// Called by the #PF path: resumes an armed probe (true) or declines (false).
pub(super) fn recover(frame: &mut TrapFrame) -> bool {
    let resume = RECOVERY_RIP.swap(0, Ordering::AcqRel);
    if resume == 0 || frame.is_user() {
        return false;
    }
    FAULT_ADDR.store(Cr2::read_raw(), Ordering::Relaxed);
    FAULT_CODE.store(frame.error_code, Ordering::Relaxed);
    frame.rip = resume;
    true
}
