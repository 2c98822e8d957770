//! Threads and the scheduler: preemptive, priority-based round robin (32 levels), per-CPU run
//! queues (one CPU for now), blocking and waking for IPC/notifications, sleeps with deadlines,
//! idle with `hlt`.
//!
//! OWNER: kcore2 (kernel-core wave). Called by arch: `on_timer_tick`, `on_user_fault`.

use crate::arch::UserFault;

/// Called by the timer interrupt (from user mode or idle). May switch threads.
pub fn on_timer_tick() {
    todo!("kcore2")
}

/// Called by the trap dispatcher for an exception in ring 3: kill the current process, deliver
/// its fault record, run something else. Never returns.
pub fn on_user_fault(_fault: &UserFault) -> ! {
    todo!("kcore2")
}
