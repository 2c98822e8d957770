//! The big kernel lock: one fair ticket lock around all kernel state (docs/smp.md).
//!
//! Taken on every entry from outside the kernel (the syscall stub, a trap from ring 3 or from
//! the idle thread's `hlt` window) and released on the way out after the last stack switch: in
//! the syscall/iret exit stubs (assembly in `user.rs`), in the trap dispatcher, and by the
//! idle loop before `sti; hlt`. While a CPU waits for it, it keeps answering remote calls
//! (`smp::poll_call`), so a holder waiting for such a call never deadlocks with a spinner.
//!
//! Debug builds: a wait longer than 20 s panics naming the holder CPU and the [`Site`] it took
//! the lock at.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::time;

#[repr(C, align(64))]
pub(super) struct Ticket {
    next: AtomicU32,
    serving: AtomicU32,
}

/// The lock. The exit stubs in `user.rs` release it with two instructions (`HOLDER` := none,
/// `lock add` on `serving`, at offset 4).
pub(super) static LOCK: Ticket = Ticket {
    next: AtomicU32::new(0),
    serving: AtomicU32::new(0),
};

/// The CPU holding the lock (`u32::MAX`: none). Written only by the holder.
pub static HOLDER: AtomicU32 = AtomicU32::new(u32::MAX);
/// Where the holder took it ([`Site`] as a number), for the spin watchdog and gdb.
pub static HOLDER_SITE: AtomicU64 = AtomicU64::new(0);

/// Where the lock is taken.
#[derive(Clone, Copy, Debug)]
#[repr(u64)]
pub enum Site {
    /// The syscall entry stub.
    Syscall = 1,
    /// A trap from ring 3 or from the idle window.
    Trap = 2,
    /// The idle loop after `hlt`.
    Idle = 3,
    /// Boot (the boot CPU before the scheduler, an AP joining).
    Boot = 4,
}

/// Debug builds: the longest a CPU waits before the watchdog panics.
#[cfg(debug_assertions)]
const SPIN_LIMIT_NS: u64 = 20_000_000_000;

/// Takes the lock (FIFO among CPUs) at `site`. Interrupts must be off.
#[inline(never)]
pub extern "C" fn acquire(site: Site) {
    let ticket = LOCK.next.fetch_add(1, Ordering::Relaxed);
    #[cfg(debug_assertions)]
    let t0 = time::rdtsc();
    while LOCK.serving.load(Ordering::Acquire) != ticket {
        super::smp::poll_call();
        core::hint::spin_loop();
        #[cfg(debug_assertions)]
        watchdog(t0);
    }
    HOLDER.store(super::cpu::cpu_id(), Ordering::Relaxed);
    HOLDER_SITE.store(site as u64, Ordering::Relaxed);
}

#[cfg(debug_assertions)]
fn watchdog(t0: u64) {
    let Some(hz) = time::tsc_hz() else { return };
    let waited = time::rdtsc().wrapping_sub(t0);
    if u128::from(waited) * 1_000_000_000 > u128::from(hz) * u128::from(SPIN_LIMIT_NS) {
        panic!(
            "big kernel lock: waited {} ms; holder cpu {} (taken at site {})",
            SPIN_LIMIT_NS / 1_000_000,
            HOLDER.load(Ordering::Relaxed),
            HOLDER_SITE.load(Ordering::Relaxed)
        );
    }
}

/// Releases the lock (the holder only).
#[inline]
pub fn release() {
    debug_assert!(
        held(),
        "big kernel lock released by a CPU that does not hold it"
    );
    HOLDER.store(u32::MAX, Ordering::Relaxed);
    LOCK.serving.fetch_add(1, Ordering::Release);
}

/// True when this CPU holds the lock.
pub fn held() -> bool {
    HOLDER.load(Ordering::Relaxed) == super::cpu::cpu_id()
}
