//! Notifications: 64 signal bits, OR-ed in by `signal` (never blocking), taken and cleared by
//! `wait`/`poll`. A waiter woken by a signal receives the bits directly, so none is lost and
//! none is seen twice.

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use hsync_abi::ObjectKind;
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
}
