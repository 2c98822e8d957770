//! Kernel objects: what a handle names.
//!
//! Every object is reference-counted (`Arc`): each handle holds one reference, and so does every
//! kernel-internal use (a thread queued on an endpoint, a mapping's `Memory`, a running thread's
//! process). An object dies with its last reference. [`KObject`] is the table entry type of
//! every process's `HandleTable`; it is a cheap enum of `Arc`s, so cloning it (duplicate, grant,
//! transfer) is one reference-count increment.
//!
//! Live objects are counted per kind ([`live`]) for `system_info` and the leak tests: each object
//! embeds a [`Live`] token that increments its kind's counter when made and decrements it when
//! dropped.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use hsync_abi::ObjectKind;
use hsync_kcore::cap::Object;

use crate::mm::memory::Memory;

pub mod endpoint;
pub mod hw;
pub mod notification;
pub mod process;
pub mod reap;
pub mod thread;

pub use endpoint::{Endpoint, ReplyCap, ReplyObject};
pub use hw::{HwAuthority, IoPortRange, IrqLine};
pub use notification::Notification;
pub use process::Process;
pub use thread::Thread;

/// A reference to a kernel object, as stored in handle tables.
#[derive(Clone, Debug)]
pub enum KObject {
    /// A process.
    Process(Arc<Process>),
    /// A thread.
    Thread(Arc<Thread>),
    /// Physical memory.
    Frame(Arc<Frame>),
    /// An IPC endpoint.
    Endpoint(Arc<Endpoint>),
    /// A saved one-shot reply right.
    Reply(Arc<ReplyObject>),
    /// Signal bits.
    Notification(Arc<Notification>),
    /// An interrupt line.
    IrqLine(Arc<IrqLine>),
    /// A range of I/O ports.
    IoPortRange(Arc<IoPortRange>),
    /// The authority to create hardware capabilities.
    HwAuthority(
        #[allow(dead_code, reason = "a stateless token: holding it is the authority")]
        Arc<HwAuthority>,
    ),
}

impl Object for KObject {
    fn kind(&self) -> ObjectKind {
        match self {
            KObject::Process(_) => ObjectKind::Process,
            KObject::Thread(_) => ObjectKind::Thread,
            KObject::Frame(_) => ObjectKind::Frame,
            KObject::Endpoint(_) => ObjectKind::Endpoint,
            KObject::Reply(_) => ObjectKind::Reply,
            KObject::Notification(_) => ObjectKind::Notification,
            KObject::IrqLine(_) => ObjectKind::IrqLine,
            KObject::IoPortRange(_) => ObjectKind::IoPortRange,
            KObject::HwAuthority(_) => ObjectKind::HwAuthority,
        }
    }

    fn held(&self, rights: hsync_abi::Rights) {
        if let KObject::Endpoint(ep) = self
            && rights.contains(hsync_abi::Rights::RECV)
        {
            ep.recv_handle_added();
        }
    }

    fn released(&self, rights: hsync_abi::Rights) {
        match self {
            KObject::Endpoint(ep) if rights.contains(hsync_abi::Rights::RECV) => {
                ep.recv_handle_removed();
            }
            // A process may now be held only by itself (`Process::collect_if_orphaned`).
            KObject::Process(p) => reap::recheck(p),
            KObject::Thread(t) => {
                if let Some(p) = &t.process {
                    reap::recheck(p);
                }
            }
            _ => {}
        }
    }
}

/// A Frame object: a handle-able reference to [`Memory`].
#[derive(Debug)]
pub struct Frame {
    /// The memory (kept alive also by every mapping of it).
    pub mem: Arc<Memory>,
    _live: Live,
}

impl Frame {
    /// Wraps memory as a Frame object.
    pub fn new(mem: Arc<Memory>) -> Frame {
        Frame {
            mem,
            _live: Live::new(ObjectKind::Frame),
        }
    }
}

/// Number of object kinds counted (indexed by `ObjectKind as usize`, 0 unused).
const KINDS: usize = 10;

static LIVE: [AtomicU64; KINDS] = [const { AtomicU64::new(0) }; KINDS];

/// A token embedded in each object: counts it live from creation to drop.
#[derive(Debug)]
pub struct Live(ObjectKind);

impl Live {
    /// Counts one more live object of `kind`.
    pub fn new(kind: ObjectKind) -> Live {
        if let Some(c) = LIVE.get(kind as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        Live(kind)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(c) = LIVE.get(self.0 as usize) {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Live objects of `kind`.
pub fn live(kind: ObjectKind) -> u64 {
    LIVE.get(kind as usize)
        .map_or(0, |c| c.load(Ordering::Relaxed))
}

/// Live objects of every kind.
pub fn live_total() -> u64 {
    LIVE.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

mod tests;

/// In-kernel tests of objects and the scheduler.
pub const TESTS: &[crate::ktest::KTest] = tests::TESTS;
