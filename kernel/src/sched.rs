//! Threads and the scheduler: preemptive, priority-based round robin (32 levels), per-CPU run
//! queues (one CPU for now), blocking and waking for IPC/notifications, sleeps with deadlines,
//! idle with `hlt`.
//!
//! OWNER: kcore2 (kernel-core wave). Called by arch: `on_timer_tick`, `on_user_fault`.

use crate::arch::UserFault;

use core::sync::atomic::{AtomicU64, Ordering};

/// Timer ticks seen so far (placeholder bookkeeping until the scheduler lands).
static TICKS: AtomicU64 = AtomicU64::new(0);

/// Timer ticks seen so far.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Called by the timer interrupt (from user mode or idle). May switch threads.
/// (Contract placeholder: counts ticks; kcore2 adds preemption.)
pub fn on_timer_tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Called by the trap dispatcher for an exception in ring 3: kill the current process, deliver
/// its fault record, run something else. Never returns.
/// (Contract placeholder: kcore2 replaces the panic with killing the process.)
pub fn on_user_fault(fault: &UserFault) -> ! {
    panic!("user fault with no process model yet: {fault:?}")
}
