//! Processes: an address space, a handle table, threads, and how it ended.
//!
//! A process lives while anything references it: a handle, or one of its threads (a thread
//! holds its process; the process holds its threads only weakly, so an unstarted thread whose
//! last handle closes simply goes away). [`Process::end`] is the one teardown path for exit,
//! kill and fault: it stops every thread, releases every handle, frees the address space and
//! wakes the waiters. What remains (the `Process` object itself, with its exit status) lives
//! on until its last handle closes.

use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use hsync_abi::{Error, ExitStatus, FaultRecord, ObjectKind};
use hsync_kcore::cap::HandleTable;
use spin::Mutex;

use super::thread::{Block, Wake};
use super::{KObject, Live, Thread};
use crate::mm::aspace::AddressSpace;

/// Handle-table slots per process.
pub const MAX_HANDLES: u32 = 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How a process ended, and its fault record if it faulted.
#[derive(Clone, Copy, Debug)]
pub struct Ending {
    /// Exit code, killed or faulted.
    pub status: ExitStatus,
    /// The fault record, for faults.
    pub record: Option<FaultRecord>,
}

/// A process.
#[derive(Debug)]
pub struct Process {
    /// Kernel-assigned id.
    pub id: u64,
    /// Name for logs (at most `PROCESS_NAME_MAX` bytes).
    pub name: String,
    /// Highest priority its threads and children may have.
    pub max_priority: u8,
    /// Root of its page tables (kept after teardown only as a number; never loaded then).
    cr3: AtomicU64,
    /// Its address space; `None` once ended.
    pub aspace: Mutex<Option<AddressSpace>>,
    /// Its handle table.
    pub handles: Mutex<HandleTable<KObject>>,
    /// Its threads (weak: threads keep the process alive, not the reverse).
    pub threads: Mutex<Vec<Weak<Thread>>>,
    /// Set once, when it ends.
    pub ending: Mutex<Option<Ending>>,
    /// Started threads that have not exited (the process exits with 0 when it reaches 0).
    pub running_threads: core::sync::atomic::AtomicUsize,
    /// Threads blocked in `process_wait` on it.
    pub waiters: Mutex<Vec<Arc<Thread>>>,
    /// I/O ports it enabled (`ioport_enable`), installed in the TSS while it runs.
    pub io: crate::hw::IoPerm,
    /// Its reaper node: what it owns is destroyed by the reaper, not inside its `Drop`.
    reap: super::reap::Slot,
    _live: Live,
}

impl Process {
    /// A new process with an empty address space and handle table, and no threads.
    pub fn new(name: &str, max_priority: u8) -> Result<Arc<Process>, Error> {
        let reap = super::reap::Slot::new()?;
        let aspace = AddressSpace::new().map_err(|_| Error::OutOfMemory)?;
        Ok(Arc::new(Process {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: String::from(name),
            max_priority,
            cr3: AtomicU64::new(aspace.cr3()),
            aspace: Mutex::new(Some(aspace)),
            handles: Mutex::new(HandleTable::new(MAX_HANDLES)),
            threads: Mutex::new(Vec::new()),
            ending: Mutex::new(None),
            running_threads: core::sync::atomic::AtomicUsize::new(0),
            waiters: Mutex::new(Vec::new()),
            io: crate::hw::IoPerm::new(),
            reap,
            _live: Live::new(ObjectKind::Process),
        }))
    }

    /// Root of its page tables, or the kernel's once it has ended.
    #[inline]
    pub fn cr3(&self) -> u64 {
        match self.cr3.load(Ordering::Relaxed) {
            0 => crate::mm::vmm::root(),
            cr3 => cr3,
        }
    }

    /// How it ended, if it has.
    pub fn ending(&self) -> Option<Ending> {
        *self.ending.lock()
    }

    /// Adds a thread to it. Errors: `InvalidState` if it has ended.
    pub fn add_thread(&self, t: &Arc<Thread>) -> Result<(), Error> {
        if self.ending.lock().is_some() {
            return Err(Error::InvalidState);
        }
        let mut threads = self.threads.lock();
        threads.retain(|w| w.strong_count() > 0);
        threads.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
        threads.push(Arc::downgrade(t));
        Ok(())
    }

    /// Runs `f` on its address space. Errors: `InvalidState` once it has ended.
    pub fn with_aspace<R>(
        &self,
        f: impl FnOnce(&mut AddressSpace) -> Result<R, Error>,
    ) -> Result<R, Error> {
        match self.aspace.lock().as_mut() {
            Some(a) => f(a),
            None => Err(Error::InvalidState),
        }
    }

    /// Ends the process (exit, kill or fault): stops its threads, releases its handles, frees
    /// its address space and wakes its waiters. The first ending wins; later calls do nothing.
    /// If the calling thread belongs to this process it must not return to user mode
    /// afterwards (`sched::exit_current`).
    pub fn end(self: &Arc<Self>, status: ExitStatus, record: Option<FaultRecord>) {
        {
            let mut ending = self.ending.lock();
            if ending.is_some() {
                return;
            }
            *ending = Some(Ending { status, record });
        }
        log::debug!(target: "proc", "process {} ({}) ended: {status:?}", self.id, self.name);
        let threads = core::mem::take(&mut *self.threads.lock());
        for t in threads.iter().filter_map(Weak::upgrade) {
            crate::sched::kill_thread(&t);
        }
        // Drop the objects outside the table lock: dropping may wake threads or end objects.
        let objects: Vec<KObject> = {
            let mut table = self.handles.lock();
            let mut v = Vec::new();
            let _ = v.try_reserve(table.len());
            v.extend(table.drain());
            v
        };
        drop(objects);
        let aspace = self.aspace.lock().take();
        if aspace.is_some() {
            let cr3 = self.cr3.swap(0, Ordering::Relaxed);
            crate::sched::leave_address_space(cr3);
        }
        drop(aspace);
        let waiters = core::mem::take(&mut *self.waiters.lock());
        for w in &waiters {
            crate::sched::wake_if(
                w,
                |b| matches!(b, Block::ProcessWait(p) if Arc::ptr_eq(p, self)),
                Wake::Done,
            );
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Never drop what it owns here: that may be the last reference to another process
        // (a chain of them would run the kernel stack over). The reaper does it (`reap`).
        let remains = super::reap::Remains::Process {
            handles: core::mem::replace(self.handles.get_mut(), HandleTable::new(0)),
            aspace: self.aspace.get_mut().take(),
            cr3: self.cr3.load(Ordering::Relaxed),
            waiters: core::mem::take(self.waiters.get_mut()),
            threads: core::mem::take(self.threads.get_mut()),
        };
        self.reap.defer(remains);
    }
}

impl Process {
    /// The lifetime rule for reference cycles (docs/capabilities.md): a process that has no
    /// running thread and that nothing outside itself references — only handles in its own
    /// table to itself or to its own threads, and those threads — is ended (as `Killed`), which
    /// releases its table and so the cycle. `self` is the caller's one extra reference.
    pub fn collect_if_orphaned(self: &Arc<Self>) {
        if self.ending().is_some() || self.running_threads.load(Ordering::Relaxed) > 0 {
            return;
        }
        let internal = {
            let table = self.handles.lock();
            let mut own = 0usize;
            for (_, e) in table.iter() {
                if let KObject::Process(q) = e.object()
                    && Arc::ptr_eq(q, self)
                {
                    own += 1;
                }
            }
            // Each live thread holds its process; it counts as internal when only entries of
            // this table hold the thread (plus the upgrade here).
            let threads = self.threads.lock();
            for t in threads.iter().filter_map(Weak::upgrade) {
                let entries = table
                    .iter()
                    .filter(|(_, e)| matches!(e.object(), KObject::Thread(x) if Arc::ptr_eq(x, &t)))
                    .count();
                if Arc::strong_count(&t) == entries + 1 && t.inner.lock().start.is_some() {
                    own += 1;
                }
            }
            own
        };
        if Arc::strong_count(self) == internal + 1 {
            log::debug!(target: "proc", "process {} ({}) is held only by itself: ended", self.id, self.name);
            self.end(ExitStatus::Killed, None);
        }
    }
}

/// Inserts an object into a table with the creator's rights.
pub fn insert(p: &Process, obj: KObject) -> Result<hsync_abi::Handle, Error> {
    use hsync_kcore::cap::Object;
    let rights = obj.kind().all_rights();
    let mut table = p.handles.lock();
    let r = table.insert(obj, rights);
    drop(table);
    r
}
