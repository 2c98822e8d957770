//! Processes and threads: creating, starting, waiting, killing; the ELF-spawn helper
//! [`Spawn`]; threads of this process ([`spawn_thread`], [`spawn_thread_with`]).
//!
//! ```no_run
//! use libhsync::process::{Image, Spawn};
//! # fn f(elf: &[u8], ep: &libhsync::Endpoint) -> Result<(), libhsync::Error> {
//! let image = Image::from_bytes(elf)?;
//! let child = Spawn::new(&image, "worker").word(7).handle(ep, libhsync::Rights::SEND)?.start()?;
//! let status = child.process.wait(libhsync::DEADLINE_NEVER)?;
//! # Ok(()) }
//! ```

use hsync_abi::{
    DEADLINE_NOW, Error, ExitStatus, FaultRecord, HandleRecord, MapFlags, PAGE_SIZE, Rights, Sysnum,
};

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::handle::{Frame, Handle, Process, Thread, kind::Kind};
use crate::ipc::IpcBuf;
use crate::memory::{CHILD_ARGS_ADDR, Mapping};
use crate::sys;

/// The start page's first word.
pub const CHILD_ARGS_MAGIC: u64 = u64::from_le_bytes(*b"HSYNCARG");
/// Most words a child receives through [`Spawn::word`].
pub const CHILD_MAX_WORDS: usize = 32;
/// Most handles a child receives through [`Spawn::handle`].
pub const CHILD_MAX_HANDLES: usize = 16;

/// How a process ended, plus the fault record when it faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    /// Exit code, kill or fault kind.
    pub status: ExitStatus,
    /// The record of the fault (`None` unless `status` is `Faulted`).
    pub fault: Option<FaultRecord>,
}

impl Process {
    /// Creates a process from an ELF image frame (not started; see [`Thread::start`]).
    /// Returns the process and its main thread.
    pub fn create(image: &Frame, name: &str, priority: u64) -> Result<(Process, Thread), Error> {
        Self::create_raw(image.raw(), name, priority)
    }

    /// Creates an empty process (no mappings, no threads).
    pub fn create_empty(name: &str, priority: u64) -> Result<Process, Error> {
        Self::create_raw(hsync_abi::Handle::NULL, name, priority).map(|(p, _)| p)
    }

    fn create_raw(
        image: hsync_abi::Handle,
        name: &str,
        priority: u64,
    ) -> Result<(Process, Thread), Error> {
        let out = sys::pure(
            Sysnum::ProcessCreate,
            [
                image.raw(),
                name.as_ptr() as u64,
                name.len() as u64,
                priority,
                0,
                0,
            ],
        )?;
        Ok((
            Handle::from_raw(hsync_abi::Handle::from_raw(out[0])),
            Handle::from_raw(hsync_abi::Handle::from_raw(out[1])),
        ))
    }

    /// Ends the process now (succeeds on an already-ended process).
    pub fn kill(&self) -> Result<(), Error> {
        sys::pure(Sysnum::ProcessKill, [self.raw().raw(), 0, 0, 0, 0, 0]).map(|_| ())
    }

    /// `handle_list`: the process's live handles (the first `min(out.len(), 32)`, in slot order,
    /// written to `out`) and how many it holds in all. Needs `MANAGE`.
    pub fn handles(&self, out: &mut [HandleRecord]) -> Result<usize, Error> {
        const CHUNK: usize = 32;
        let mut words = [0u64; CHUNK * HandleRecord::WORDS];
        let want = out.len().min(CHUNK);
        // SAFETY: the kernel writes at most `want` records (`want * SIZE` bytes) to `words`, a
        // local array no reference covers during the call.
        let res = unsafe {
            sys::call(
                Sysnum::HandleList,
                [
                    self.raw().raw(),
                    words.as_mut_ptr() as u64,
                    (want * HandleRecord::SIZE) as u64,
                    0,
                    0,
                    0,
                ],
            )
        }?;
        let count = usize::try_from(res[0]).unwrap_or(usize::MAX);
        for (i, slot) in out.iter_mut().take(want.min(count)).enumerate() {
            let mut w = [0u64; HandleRecord::WORDS];
            w.copy_from_slice(&words[i * HandleRecord::WORDS..(i + 1) * HandleRecord::WORDS]);
            *slot = HandleRecord::from_words(&w)?;
        }
        Ok(count)
    }

    /// Waits until the process ends or `deadline` (monotonic ns) passes; returns how it ended,
    /// with the fault record if it faulted.
    pub fn wait(&self, deadline: u64) -> Result<Ended, Error> {
        let mut words = [0u64; FaultRecord::WORDS];
        // SAFETY: the kernel writes at most `FaultRecord::WORDS` words to `words`, a local array
        // no reference covers during the call.
        let out = unsafe {
            sys::call(
                Sysnum::ProcessWait,
                [
                    self.raw().raw(),
                    words.as_mut_ptr() as u64,
                    deadline,
                    0,
                    0,
                    0,
                ],
            )
        }?;
        let status = ExitStatus::from_regs(out[0], out[1])?;
        let fault = match status {
            ExitStatus::Faulted(_) => Some(FaultRecord::from_words(&words)?),
            _ => None,
        };
        Ok(Ended { status, fault })
    }

    /// [`Process::wait`] that never blocks: [`Error::WouldBlock`] while it runs.
    pub fn poll(&self) -> Result<Ended, Error> {
        self.wait(DEADLINE_NOW)
    }

    /// Copies `h` into this process's table with `rights`; returns its value *there*.
    pub fn grant<K: Kind>(
        &self,
        h: &Handle<K>,
        rights: Rights,
    ) -> Result<hsync_abi::Handle, Error> {
        let out = sys::pure(
            Sysnum::HandleGrant,
            [self.raw().raw(), h.raw().raw(), rights.raw(), 0, 0, 0],
        )?;
        Ok(hsync_abi::Handle::from_raw(out[0]))
    }
}

/// Ends this process with `code`.
pub fn exit(code: u64) -> ! {
    let _ = sys::pure(Sysnum::ProcessExit, [code, 0, 0, 0, 0, 0]);
    // process_exit does not return; if a broken kernel made it, stop here for good.
    loop {
        core::hint::spin_loop();
    }
}

/// Ends the calling thread.
pub fn thread_exit() -> ! {
    let _ = sys::pure(Sysnum::ThreadExit, [0; 6]);
    exit(0xdead)
}

/// Ends the calling thread after the kernel unmapped `[va, va + len)` (its own stack).
fn thread_exit_unmapping(va: u64, len: u64) -> ! {
    let _ = sys::pure(Sysnum::ThreadExit, [va, len, 0, 0, 0, 0]);
    exit(0xdead)
}

impl Thread {
    /// Creates a (not yet running) thread in `process` (`thread_create`). Entry and stack must
    /// be valid in *that* process; see [`spawn_thread`] for threads of this one.
    pub fn create_in(
        process: &Process,
        entry: u64,
        stack_top: u64,
        ipc_buffer: u64,
        priority: u64,
    ) -> Result<Thread, Error> {
        if crate::rt::is_self(process) {
            return Err(Error::InvalidArgument);
        }
        let out = sys::pure(
            Sysnum::ThreadCreate,
            [
                process.raw().raw(),
                entry,
                stack_top,
                ipc_buffer,
                priority,
                0,
            ],
        )?;
        Ok(Handle::from_raw(hsync_abi::Handle::from_raw(out[0])))
    }

    /// Lets the thread run with `rdi = arg0`, `rsi = arg1` (`thread_start`).
    pub fn start(&self, arg0: u64, arg1: u64) -> Result<(), Error> {
        sys::pure(Sysnum::ThreadStart, [self.raw().raw(), arg0, arg1, 0, 0, 0]).map(|_| ())
    }

    /// Moves the thread to CPU `cpu` (`thread_set_cpu`; needs `MANAGE`): from its next switch
    /// on it runs only there. Errors: `InvalidArgument` for a CPU that is not online.
    pub fn set_cpu(&self, cpu: u64) -> Result<(), Error> {
        sys::pure(Sysnum::ThreadSetCpu, [self.raw().raw(), cpu, 0, 0, 0, 0]).map(|_| ())
    }
}

/// An ELF executable copied into a Frame, ready for any number of [`Spawn`]s.
#[derive(Debug)]
pub struct Image {
    frame: Frame,
}

impl Image {
    /// Copies `elf` into a fresh frame (through a temporary mapping).
    pub fn from_bytes(elf: &[u8]) -> Result<Image, Error> {
        let size = (elf.len() as u64).max(1).next_multiple_of(PAGE_SIZE);
        let frame = Frame::create(size)?;
        let mut map = Mapping::new_rw(&frame, size)?;
        map.as_mut_slice()[..elf.len()].copy_from_slice(elf);
        drop(map);
        Ok(Image { frame })
    }

    /// The frame holding the image.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }
}

/// Builder for a child process from an [`Image`]: name, priority, start words and handles.
///
/// The child starts with `arg0` = a handle to its own Process (`MAP | WAIT | MANAGE |
/// DUPLICATE | TRANSFER`... as granted) and `arg1` = [`CHILD_ARGS_ADDR`], where a read-only page
/// holds the words and granted handles ([`crate::StartArgs::word`], [`crate::StartArgs::handle`]).
pub struct Spawn<'a> {
    image: &'a Image,
    name: &'a str,
    priority: u64,
    words: [u64; CHILD_MAX_WORDS],
    nwords: usize,
    handles: [(hsync_abi::Handle, Rights); CHILD_MAX_HANDLES],
    nhandles: usize,
}

/// A started child.
#[derive(Debug)]
pub struct Child {
    /// The child process (all process rights).
    pub process: Process,
    /// Its main thread.
    pub thread: Thread,
}

impl<'a> Spawn<'a> {
    /// A child named `name` running `image` at priority 0.
    pub fn new(image: &'a Image, name: &'a str) -> Spawn<'a> {
        Spawn {
            image,
            name,
            priority: 0,
            words: [0; CHILD_MAX_WORDS],
            nwords: 0,
            handles: [(hsync_abi::Handle::NULL, Rights::empty()); CHILD_MAX_HANDLES],
            nhandles: 0,
        }
    }

    /// Sets the scheduling priority (at most the caller's own).
    pub fn priority(mut self, priority: u64) -> Self {
        self.priority = priority;
        self
    }

    /// Appends a start word (silently ignored past [`CHILD_MAX_WORDS`]).
    pub fn word(mut self, w: u64) -> Self {
        if let Some(slot) = self.words.get_mut(self.nwords) {
            *slot = w;
            self.nwords += 1;
        }
        self
    }

    /// Appends start words in order (as [`Spawn::word`] each).
    pub fn words(self, words: &[u64]) -> Self {
        words.iter().fold(self, |s, &w| s.word(w))
    }

    /// Appends a handle to grant with `rights` ([`Error::MessageTooLong`] past
    /// [`CHILD_MAX_HANDLES`]).
    pub fn handle<K: Kind>(mut self, h: &Handle<K>, rights: Rights) -> Result<Self, Error> {
        let slot = self
            .handles
            .get_mut(self.nhandles)
            .ok_or(Error::MessageTooLong)?;
        *slot = (h.raw(), rights);
        self.nhandles += 1;
        Ok(self)
    }

    /// Creates the child, grants its handles, maps its start page and starts it. On failure
    /// nothing of the child is left: it is killed, which releases every handle it was given.
    pub fn start(self) -> Result<Child, Error> {
        let (process, thread) = Process::create(&self.image.frame, self.name, self.priority)?;
        match self.set_up(&process, &thread) {
            Ok(()) => Ok(Child { process, thread }),
            Err(e) => {
                // The child holds a handle to itself: kill it rather than rely on the kernel
                // noticing the cycle when our handle closes.
                let _ = process.kill();
                Err(e)
            }
        }
    }

    fn set_up(&self, process: &Process, thread: &Thread) -> Result<(), Error> {
        let own = process.grant(
            process,
            Rights::MAP | Rights::WAIT | Rights::MANAGE | Rights::DUPLICATE | Rights::TRANSFER,
        )?;
        let page = Frame::create(PAGE_SIZE)?;
        {
            let mut map = Mapping::new_rw(&page, PAGE_SIZE)?;
            let bytes = map.as_mut_slice();
            let mut put = |i: usize, w: u64| {
                if let Some(dst) = bytes.get_mut(i * 8..i * 8 + 8) {
                    dst.copy_from_slice(&w.to_le_bytes());
                }
            };
            put(0, CHILD_ARGS_MAGIC);
            put(1, self.nwords as u64);
            put(2, self.nhandles as u64);
            for (i, &w) in self.words[..self.nwords].iter().enumerate() {
                put(3 + i, w);
            }
            for (i, &(h, rights)) in self.handles[..self.nhandles].iter().enumerate() {
                let granted = grant_raw(process, h, rights)?;
                put(3 + CHILD_MAX_WORDS + i, granted.raw());
            }
        }
        page.map_into(process, CHILD_ARGS_ADDR, MapFlags::READ, 0, PAGE_SIZE)?;
        drop(page);
        thread.start(own.raw(), CHILD_ARGS_ADDR)
    }
}

fn grant_raw(
    process: &Process,
    h: hsync_abi::Handle,
    rights: Rights,
) -> Result<hsync_abi::Handle, Error> {
    let out = sys::pure(
        Sysnum::HandleGrant,
        [process.raw().raw(), h.raw(), rights.raw(), 0, 0, 0],
    )?;
    Ok(hsync_abi::Handle::from_raw(out[0]))
}

/// Pages of a [`spawn_thread`] stack.
pub const THREAD_STACK_PAGES: u64 = 16;

/// Address ranges of exited [`spawn_thread`] stacks, for reuse (0 = empty slot). A thread puts
/// its range here just before `thread_exit` unmaps it; a new thread maps there only if the
/// mapping succeeds (`Exists` while the old thread is still on its way out).
static FREE_STACKS: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];

fn recycled_stack() -> Option<u64> {
    FREE_STACKS
        .iter()
        .map(|s| s.swap(0, Ordering::AcqRel))
        .find(|&b| b != 0)
}

fn recycle_stack(base: u64) {
    // Full: the range is simply not reused (only address space is lost, not memory).
    let _ = FREE_STACKS.iter().any(|s| {
        s.compare_exchange(0, base, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
}

/// Starts a thread of this process running `entry(arg, ipc_buffer)` on a fresh stack (with a
/// guard page below) and IPC buffer; when `entry` returns the thread exits.
///
/// When the thread exits the kernel unmaps its stack and buffer (their memory goes back), and
/// a later `spawn_thread` reuses the address range.
pub fn spawn_thread(entry: fn(u64, IpcBuf), arg: u64, priority: u64) -> Result<Thread, Error> {
    let me = crate::rt::own_process().ok_or(Error::InvalidHandle)?;
    let pages = THREAD_STACK_PAGES + 1; // + the IPC buffer page on top
    let frame = Frame::create(pages * PAGE_SIZE)?;
    let map = |base: u64| {
        sys::pure(
            Sysnum::FrameMap,
            [
                frame.raw().raw(),
                me.raw(),
                base,
                (MapFlags::READ | MapFlags::WRITE).raw(),
                0,
                pages * PAGE_SIZE,
            ],
        )
    };
    let base = match recycled_stack() {
        Some(b) if map(b).is_ok() => b,
        old => {
            if let Some(b) = old {
                recycle_stack(b); // still mapped: its thread has not left yet
            }
            let b = crate::memory::reserve(pages)?;
            map(b)?;
            b
        }
    };
    let stack_top = base + THREAD_STACK_PAGES * PAGE_SIZE;
    let ipc = stack_top; // the last page
    let out = sys::pure(
        Sysnum::ThreadCreate,
        [
            me.raw(),
            trampoline as *const () as u64,
            stack_top,
            ipc,
            priority,
            0,
        ],
    )?;
    let thread: Thread = Handle::from_raw(hsync_abi::Handle::from_raw(out[0]));
    thread.start(entry as *const () as u64, arg)?;
    Ok(thread)
}

/// Starts a thread of this process running `f(arg, ipc_buffer)`, with `f` and `arg` moved into
/// it: the way to hand a thread its handles without a `static`. Otherwise as [`spawn_thread`].
///
/// ```no_run
/// # fn f(irq: libhsync::hw::Irq) -> Result<(), libhsync::Error> {
/// libhsync::process::spawn_thread_with(
///     |irq: libhsync::hw::Irq, _ipc| while irq.wait().is_ok() { /* ... */ },
///     irq,
///     16,
/// )?;
/// # Ok(()) }
/// ```
pub fn spawn_thread_with<A, F>(f: F, arg: A, priority: u64) -> Result<Thread, Error>
where
    A: Send + 'static,
    F: FnOnce(A, IpcBuf) + Send + 'static,
{
    let boxed = Box::into_raw(Box::new((f, arg)));
    spawn_thread(run_boxed::<A, F>, boxed as u64, priority).inspect_err(|_| {
        // SAFETY: the thread was never started (spawn_thread failed), so `boxed`, from
        // `Box::into_raw` above, is still owned here alone.
        drop(unsafe { Box::from_raw(boxed) });
    })
}

/// The entry of a [`spawn_thread_with`] thread: takes back the box whose address is `arg`.
fn run_boxed<A, F: FnOnce(A, IpcBuf)>(arg: u64, ipc: IpcBuf) {
    // SAFETY: `spawn_thread_with` started this thread with `arg` = `Box::into_raw` of an
    // `(F, A)` and gave up ownership of it; this thread runs this entry once.
    let boxed = unsafe { Box::from_raw(arg as *mut (F, A)) };
    let (f, a) = *boxed;
    f(a, ipc);
}

extern "C" fn trampoline(entry: u64, arg: u64, ipc: u64) -> ! {
    // SAFETY: `spawn_thread` passed a `fn(u64, IpcBuf)` as `entry` (same size as u64 on
    // x86_64), and `ipc` is the buffer it mapped for this thread alone.
    let (f, buf) = unsafe {
        (
            core::mem::transmute::<usize, fn(u64, IpcBuf)>(entry as usize),
            IpcBuf::new(ipc),
        )
    };
    f(arg, buf);
    // The stack and IPC buffer: `ipc` is the top page, the stack the pages below it.
    let base = ipc - THREAD_STACK_PAGES * PAGE_SIZE;
    recycle_stack(base);
    thread_exit_unmapping(base, (THREAD_STACK_PAGES + 1) * PAGE_SIZE)
}
