//! Notifications: 64 signal bits, OR-ed in by `signal` (never blocking), taken and cleared by
//! `wait`/`poll`. A waiter woken by a signal receives the bits directly, so none is lost and
//! none is seen twice.

use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use hsync_abi::{DEADLINE_NEVER, Error, ObjectKind};
use spin::Mutex;

use super::thread::{Block, Wake};
use super::{Live, Thread};

/// Bits and waiters.
#[derive(Debug, Default)]
pub struct NotificationState {
    /// Pending bits.
    pub bits: u64,
    /// Threads blocked in `wait`, FIFO.
    pub waiters: VecDeque<Arc<Thread>>,
}

/// A notification object.
#[derive(Debug)]
pub struct Notification {
    /// Bits and waiters.
    pub state: Mutex<NotificationState>,
    _live: Live,
}

impl Notification {
    /// A notification with no bits set.
    pub fn new() -> Notification {
        Notification {
            state: Mutex::new(NotificationState::default()),
            _live: Live::new(ObjectKind::Notification),
        }
    }

    /// ORs `bits` in; hands all pending bits to the first waiter, if any.
    pub fn signal(&self, bits: u64) {
        let woken = {
            let mut s = self.state.lock();
            s.bits |= bits;
            match s.waiters.pop_front() {
                Some(t) => {
                    let b = core::mem::take(&mut s.bits);
                    Some((t, b))
                }
                None => None,
            }
        };
        if let Some((t, b)) = woken {
            crate::sched::wake_if(
                &t,
                |blk| matches!(blk, Block::Notification(_)),
                Wake::Bits(b),
            );
        }
    }

    /// Takes and clears the pending bits (0 if none).
    pub fn take(&self) -> u64 {
        core::mem::take(&mut self.state.lock().bits)
    }

    /// Removes a killed waiter.
    pub fn remove(&self, t: &Arc<Thread>) {
        self.state.lock().waiters.retain(|x| !Arc::ptr_eq(x, t));
    }

    /// Arms its one-shot timer: at `deadline` (ns, the monotonic clock) [`fire_timers`] signals
    /// `bits`. Replaces an armed timer; [`DEADLINE_NEVER`] disarms. Errors: `OutOfMemory`.
    pub fn set_timer(self: &Arc<Self>, bits: u64, deadline: u64) -> Result<(), Error> {
        let me = Arc::downgrade(self);
        let mut timers = TIMERS.lock();
        timers.retain(|t| !t.notification.ptr_eq(&me));
        if deadline == DEADLINE_NEVER {
            return Ok(());
        }
        timers.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
        timers.push(Timer {
            deadline,
            notification: me,
            bits,
        });
        Ok(())
    }
}

impl Drop for Notification {
    fn drop(&mut self) {
        // An armed timer goes with its notification (its `Weak` can no longer upgrade; this
        // also gives the allocation back now instead of at the deadline).
        let me: *const Notification = self;
        TIMERS
            .lock()
            .retain(|t| !core::ptr::eq(t.notification.as_ptr(), me));
    }
}

/// An armed notification timer.
#[derive(Debug)]
struct Timer {
    deadline: u64,
    notification: Weak<Notification>,
    bits: u64,
}

/// Every armed timer (one per notification at most), unordered.
static TIMERS: Mutex<Vec<Timer>> = Mutex::new(Vec::new());

/// Signals every timer due at `now` and disarms it. Called on each scheduler tick, with no
/// scheduler lock held (signalling wakes threads).
pub fn fire_timers(now: u64) {
    loop {
        let due = {
            let Some(mut timers) = TIMERS.try_lock() else {
                return;
            };
            match timers.iter().position(|t| t.deadline <= now) {
                Some(i) => timers.swap_remove(i),
                None => return,
            }
        };
        if let Some(n) = due.notification.upgrade() {
            n.signal(due.bits);
        }
    }
}
