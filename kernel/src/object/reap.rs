//! Deferred destruction: no object's destructor runs another object's destructor on the same
//! kernel stack.
//!
//! Processes and threads are the objects that own other objects (a handle table, a thread's
//! process, its blocked-on endpoint, its pending reply right). Dropping the last reference to
//! either does not drop what it owns: its `Drop` moves those parts into the [`Slot`] it
//! allocated when it was made and pushes the slot onto the reaper list. [`drain`] pops the list
//! one node at a time and drops that node's parts; a part that was the last reference to another
//! process or thread only pushes that one's node in turn. So the stack depth of any teardown is
//! a small constant (object → endpoint / reply / notification → thread, which defers), however
//! long the chain, and each step does bounded work (at most one handle table, one address space
//! and one thread's state).
//!
//! Pushing never allocates: the node was allocated (fallibly) with the object, so creating a
//! process or thread fails with `OutOfMemory` instead of its destruction failing later.
//!
//! [`drain`] runs at the end of every system call and after every context switch (the dropped
//! thread then is the one switched away from), so nothing waits on the list across a return to
//! user mode. With more than one CPU the list may become per CPU, or stay one list under the
//! big lock: [`push`] and [`drain`] are the only places that touch it.

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hsync_kcore::cap::HandleTable;
use spin::Mutex;

use super::thread::ThreadInner;
use super::{KObject, Process, Thread};
use crate::mm::aspace::AddressSpace;

/// What a dead process or thread still owned, dropped by the reaper.
#[derive(Debug, Default)]
pub enum Remains {
    /// Nothing (a slot not yet used).
    #[default]
    Empty,
    /// A process's parts.
    Process {
        /// Its handle table: drained (with the release hooks) by the reaper.
        handles: HandleTable<KObject>,
        /// Its address space, if it never ended.
        aspace: Option<AddressSpace>,
        /// The page-table root the address space had (0 once it left the CPU).
        cr3: u64,
        /// Threads that waited for it (none in practice: a waiter holds the process).
        waiters: Vec<Arc<Thread>>,
        /// Its thread list (weak).
        threads: Vec<Weak<Thread>>,
    },
    /// A thread's parts.
    Thread {
        /// Its process (maybe the last reference).
        process: Option<Arc<Process>>,
        /// Its state: what it was blocked on, its pending reply right, a kernel body (behind a
        /// lock only so that the node stays `Sync` like the thread it came from).
        inner: Mutex<ThreadInner>,
    },
}

/// One reaper-list node, allocated with its object.
#[derive(Debug)]
pub struct Node {
    next: Option<Box<Node>>,
    remains: Remains,
}

/// The node an object owns until it dies.
#[derive(Debug)]
pub struct Slot(Option<Box<Node>>);

impl Slot {
    /// A slot for a new process or thread. Errors: `OutOfMemory`.
    pub fn new() -> Result<Slot, hsync_abi::Error> {
        let node = crate::mm::heap::try_box(Node {
            next: None,
            remains: Remains::Empty,
        })
        .ok_or(hsync_abi::Error::OutOfMemory)?;
        Ok(Slot(Some(node)))
    }

    /// Hands `remains` to the reaper (called once, from the owner's `Drop`).
    pub fn defer(&mut self, remains: Remains) {
        match self.0.take() {
            Some(mut node) => {
                node.remains = remains;
                push(node);
            }
            // Unreachable (the slot is used once), but never lose the parts: drop them here.
            None => finish(remains),
        }
    }
}

/// The reaper list (LIFO).
static LIST: Mutex<Option<Box<Node>>> = Mutex::new(None);
/// Nodes the reaper has finished since boot.
static REAPED: AtomicU64 = AtomicU64::new(0);

/// Set when a node or a recheck is queued: lets [`drain`] return at once, without a lock,
/// after the many system calls that queue nothing.
static DIRTY: AtomicBool = AtomicBool::new(false);

fn push(mut node: Box<Node>) {
    DIRTY.store(true, Ordering::Release);
    let mut head = LIST.lock();
    node.next = head.take();
    *head = Some(node);
}

fn pop() -> Option<Box<Node>> {
    let mut head = LIST.lock();
    let mut node = head.take()?;
    *head = node.next.take();
    Some(node)
}

/// Processes that lost a handle (to themselves or to one of their threads) since the last
/// drain: each may now be held only by its own handles (see `Process::collect_if_orphaned`).
static RECHECK: Mutex<Vec<Weak<Process>>> = Mutex::new(Vec::new());

/// Notes that a handle naming `p` (or one of its threads) was released. Best effort under heap
/// exhaustion: a note that cannot be recorded is skipped (the cycle then lives until `p` is
/// killed or its last outside handle goes later).
pub fn recheck(p: &Arc<Process>) {
    // The released reference is the last one (it dies anyway), or the process has ended (its
    // table is empty): nothing to check. Duplicates are harmless (the check is idempotent).
    if Arc::strong_count(p) == 1 || p.ending().is_some() {
        return;
    }
    let mut list = RECHECK.lock();
    if list.try_reserve(1).is_ok() {
        list.push(Arc::downgrade(p));
        DIRTY.store(true, Ordering::Release);
    }
}

/// Destroys everything on the reaper list, one node per step, including what those steps add,
/// and ends every noted process that only its own handles keep alive (which frees more).
/// Call with no lock held (dropping handles wakes threads).
pub fn drain() {
    if !DIRTY.swap(false, Ordering::Acquire) {
        return;
    }
    loop {
        while let Some(mut node) = pop() {
            let remains = core::mem::take(&mut node.remains);
            drop(node);
            finish(remains);
            REAPED.fetch_add(1, Ordering::Relaxed);
            crate::mm::heap::trim_soon();
        }
        let Some(p) = RECHECK.lock().pop() else {
            return;
        };
        if let Some(p) = p.upgrade() {
            p.collect_if_orphaned();
        }
    }
}

/// Nodes finished since boot.
pub fn reaped() -> u64 {
    REAPED.load(Ordering::Relaxed)
}

/// One step: drops one dead object's parts. Whatever they were the last reference to goes onto
/// the list, not deeper into this stack.
fn finish(remains: Remains) {
    match remains {
        Remains::Empty => {}
        Remains::Process {
            mut handles,
            aspace,
            cr3,
            waiters,
            threads,
        } => {
            // `drain` runs the release hooks (an endpoint's receiver count), unlike a plain drop.
            for obj in handles.drain() {
                drop(obj);
            }
            if aspace.is_some() && cr3 != 0 {
                crate::sched::leave_address_space(cr3);
            }
            drop(aspace);
            drop(waiters);
            drop(threads);
        }
        Remains::Thread { process, inner } => {
            drop(inner);
            drop(process);
        }
    }
}
