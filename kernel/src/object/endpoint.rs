//! Endpoints (synchronous IPC rendezvous points) and reply rights.
//!
//! An endpoint holds no messages, only the threads waiting on it: senders (each with its
//! message in its own kernel state) or receivers, never both at once. The IPC operations live
//! in `crate::ipc`; this file is the state and the one-shot reply right.
//!
//! It also counts the handles that may receive on it (those with `RECV`), maintained by the
//! handle tables' `held`/`released` hooks. When the count drops to zero nobody can ever take a
//! message again: the queued senders wake with `PeerDied`, and later sends fail with it.

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use hsync_abi::{Error, ObjectKind};
use spin::Mutex;

use super::thread::{Block, State, Wake};
use super::{Live, Thread};

/// The threads waiting on an endpoint.
#[derive(Debug, Default)]
pub struct EndpointQueues {
    /// Blocked senders, FIFO.
    pub senders: VecDeque<Arc<Thread>>,
    /// Blocked receivers, FIFO.
    pub receivers: VecDeque<Arc<Thread>>,
    /// Handles (in any table) that carry `RECV` for this endpoint. Zero: sends fail with
    /// `PeerDied`.
    pub recv_handles: usize,
}

/// A synchronous IPC endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// Waiting threads.
    pub queues: Mutex<EndpointQueues>,
    _live: Live,
}

impl Endpoint {
    /// A new endpoint with nobody waiting.
    pub fn new() -> Endpoint {
        Endpoint {
            queues: Mutex::new(EndpointQueues::default()),
            _live: Live::new(ObjectKind::Endpoint),
        }
    }

    /// One more handle with `RECV` exists (handle-table hook).
    pub fn recv_handle_added(&self) {
        self.queues.lock().recv_handles += 1;
    }

    /// A handle with `RECV` is gone (handle-table hook). The last one wakes every queued sender
    /// with `PeerDied`: no message of theirs can be received any more.
    pub fn recv_handle_removed(&self) {
        let orphans = {
            let mut q = self.queues.lock();
            q.recv_handles = q.recv_handles.saturating_sub(1);
            if q.recv_handles > 0 {
                return;
            }
            core::mem::take(&mut q.senders)
        };
        wake_orphans(orphans);
    }

    /// Removes `t` from both queues (it was killed).
    pub fn remove(&self, t: &Arc<Thread>) {
        let mut q = self.queues.lock();
        q.senders.retain(|x| !Arc::ptr_eq(x, t));
        q.receivers.retain(|x| !Arc::ptr_eq(x, t));
    }
}

fn wake_orphans(orphans: VecDeque<Arc<Thread>>) {
    for t in orphans {
        t.inner.lock().send = None;
        crate::sched::wake_if(
            &t,
            |b| matches!(b, Block::Send(_)),
            Wake::Err(Error::PeerDied),
        );
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // Waiting threads hold a reference to the endpoint through their `Block`, so an
        // endpoint with waiters is never dropped; nothing to wake here.
        let q = self.queues.get_mut();
        debug_assert!(q.senders.is_empty() && q.receivers.is_empty());
    }
}

/// A one-shot right to answer one call: the caller, blocked in [`Block::Reply`].
///
/// Dropping an unused right (the server died, closed the Reply handle, or received another
/// call first) wakes the caller with `PeerDied`, so a caller never waits for an answer that
/// can no longer come.
#[derive(Debug)]
pub struct ReplyCap {
    caller: Option<Arc<Thread>>,
}

impl ReplyCap {
    /// The right to answer `caller`.
    pub fn new(caller: Arc<Thread>) -> ReplyCap {
        ReplyCap {
            caller: Some(caller),
        }
    }

    /// Uses the right: the caller, if it is still waiting for this reply (not killed).
    pub fn take(mut self) -> Option<Arc<Thread>> {
        let caller = self.caller.take()?;
        let waiting = matches!(caller.inner.lock().state, State::Blocked(Block::Reply));
        waiting.then_some(caller)
    }
}

impl ReplyCap {
    /// The caller this right answers (the IPC fast path checks its state before committing).
    pub fn caller(&self) -> Option<&Arc<Thread>> {
        self.caller.as_ref()
    }

    /// Consumes the right without waking the caller: the IPC fast path, which has already
    /// delivered the reply into the caller's state, switches to it.
    pub fn into_caller(mut self) -> Option<Arc<Thread>> {
        self.caller.take()
    }
}

impl Drop for ReplyCap {
    fn drop(&mut self) {
        if let Some(caller) = self.caller.take() {
            crate::sched::wake_if(
                &caller,
                |b| matches!(b, Block::Reply),
                Wake::Err(Error::PeerDied),
            );
        }
    }
}

/// A saved reply right as a handle-able object (`ipc_reply_save`).
#[derive(Debug)]
pub struct ReplyObject {
    /// The right; taken by the reply that consumes it.
    pub cap: Mutex<Option<ReplyCap>>,
    _live: Live,
}

impl ReplyObject {
    /// Wraps a reply right.
    pub fn new(cap: ReplyCap) -> ReplyObject {
        ReplyObject {
            cap: Mutex::new(Some(cap)),
            _live: Live::new(ObjectKind::Reply),
        }
    }
}
