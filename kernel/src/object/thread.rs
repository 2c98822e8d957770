//! Threads: a kernel stack and saved kernel context, the state the scheduler and IPC need, and
//! (for user threads) the process they belong to.
//!
//! A thread is always in exactly one place that holds a reference to it: the CPU (running), a
//! run queue (ready), or the one wait structure its [`Block`] names (an endpoint queue, a
//! notification, a process's waiters, the sleepers list, or the reply right of a server). Killing
//! a thread removes it from that place, so no queue ever keeps a dead thread.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hsync_abi::{Error, ObjectKind};
use spin::Mutex;

use super::endpoint::ReplyCap;
use super::{Endpoint, Live, Notification, Process};
use crate::arch::{FxArea, KernelContext, UserRegs};
use crate::mm;

/// Pages of a thread's kernel stack (debug builds are stack-hungry; IPC copies use the stack).
const KSTACK_PAGES: usize = 8;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A message as it travels between two threads' kernel state: the register part only (words
/// 4.. and handles are copied between the IPC buffers at the rendezvous).
#[derive(Clone, Copy, Debug, Default)]
pub struct Msg {
    /// The sender's endpoint badge (0 for replies).
    pub badge: u64,
    /// The message info, already checked.
    pub info: u64,
    /// Words 0..3.
    pub w: [u64; 4],
}

/// A message waiting in a blocked sender.
#[derive(Clone, Copy, Debug)]
pub struct SendMsg {
    /// The message.
    pub msg: Msg,
    /// Whether the sender waits for a reply (`ipc_call`).
    pub call: bool,
}

/// What a blocked thread waits for.
#[derive(Debug)]
pub enum Block {
    /// Queued as a sender on an endpoint.
    Send(Arc<Endpoint>),
    /// Queued as a receiver on an endpoint.
    Recv(Arc<Endpoint>),
    /// Waiting for the reply to a call (a server's reply right points at it).
    Reply,
    /// Waiting on a notification.
    Notification(Arc<Notification>),
    /// Sleeping until its deadline.
    Sleep,
    /// Waiting for a process to end (maybe with a deadline).
    ProcessWait(Arc<Process>),
    /// A kernel thread waiting for something kernel-internal (tests).
    Kernel,
}

/// Scheduling state.
#[derive(Debug, Default)]
pub enum State {
    /// Made, never started.
    #[default]
    Created,
    /// In a run queue.
    Ready,
    /// On a CPU.
    Running,
    /// Waiting (see [`Block`]).
    Blocked(Block),
    /// Ended; never runs again.
    Dead,
}

/// What woke a blocked thread up: the result of its blocking call.
#[derive(Debug, Default)]
pub enum Wake {
    /// Not woken by anything yet.
    #[default]
    None,
    /// Success without data (a send was taken, a sleep ended, a process ended).
    Done,
    /// A message (received, or the reply to a call).
    Msg(Msg),
    /// Notification bits.
    Bits(u64),
    /// The call failed.
    Err(Error),
}

/// How a blocked thread starts again (see `docs/ipc.md`, the fast path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Resume {
    /// From its saved kernel context (it blocked somewhere inside the kernel).
    #[default]
    Kernel,
    /// Parked by the IPC fast path at its `ipc_call`: nothing of it is on its kernel stack but
    /// its syscall frame; it resumes by leaving through that frame with the call's result.
    Call,
    /// Parked likewise at its `ipc_reply_recv`, waiting to receive.
    Recv,
}

/// A thread's mutable state, behind its lock.
#[derive(Debug, Default)]
pub struct ThreadInner {
    /// Scheduling state.
    pub state: State,
    /// Result for a blocked call, set by whoever wakes it.
    pub wake: Wake,
    /// The message of a blocked sender.
    pub send: Option<SendMsg>,
    /// The pending caller: the implicit reply right from the last `ipc_call` received.
    pub pending: Option<ReplyCap>,
    /// First user registers (set by `thread_start`).
    pub start: Option<UserRegs>,
    /// Sleep / wait deadline (ns), when on the sleepers list.
    pub deadline: Option<u64>,
    /// Killed: it must not return to user mode; it exits at its next kernel exit point.
    pub killed: bool,
    /// The body of a kernel thread, taken when it starts.
    pub body: Option<KernelBody>,
    /// How it resumes while blocked (`Kernel` whenever it is not blocked).
    pub resume: Resume,
}

/// The body of a kernel thread.
pub struct KernelBody(pub Box<dyn FnOnce() + Send>);

impl core::fmt::Debug for KernelBody {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("<kernel thread body>")
    }
}

/// A thread.
#[derive(Debug)]
pub struct Thread {
    /// Kernel-assigned id (logs, fault records).
    pub id: u64,
    /// The owning process; `None` for kernel threads.
    pub process: Option<Arc<Process>>,
    /// Priority, `0..PRIORITY_LEVELS`.
    pub priority: u8,
    /// User address of the IPC buffer (0 = none).
    pub ipc_buffer: u64,
    /// Kernel stack (`None` for the boot thread, which runs on the boot stack).
    stack: Option<mm::OwnedKernelStack>,
    /// Saved kernel context (its stack pointer) while not running. Written only by the context
    /// switch of this thread's own CPU, so no lock: the switch stores through `ctx_ptr`.
    ctx: AtomicU64,
    /// Mutable state.
    pub inner: Mutex<ThreadInner>,
    /// Saved FPU/SSE registers, made at its first #NM (lazy FPU, `arch` `fpu.rs`).
    pub fpu: Mutex<Option<Box<FxArea>>>,
    /// Its reaper node: its process and state are dropped by the reaper (`reap`).
    reap: super::reap::Slot,
    /// Home CPU: the only CPU whose run queue holds it and that runs it (docs/smp.md). Starts
    /// as the creating CPU; `thread_set_cpu` moves it.
    home: AtomicU32,
    _live: Live,
}

impl Drop for Thread {
    fn drop(&mut self) {
        // Normally done at exit (`sched::exit_current`); never leave a freed area as the owner's.
        crate::arch::fpu_release(core::ptr::from_mut(self) as usize);
        if let Some(stack) = &self.stack {
            stack_check::measure(&stack.stack());
        }
        // Its process, the endpoint it was blocked on, its pending reply right: any may be the
        // last reference to another thread or process, so the reaper drops them.
        let remains = super::reap::Remains::Thread {
            process: self.process.take(),
            inner: Mutex::new(core::mem::take(self.inner.get_mut())),
        };
        self.reap.defer(remains);
    }
}

impl Thread {
    fn make(
        process: Option<Arc<Process>>,
        priority: u8,
        ipc_buffer: u64,
        entry: Option<extern "C" fn(u64) -> !>,
    ) -> Result<Arc<Thread>, Error> {
        let reap = super::reap::Slot::new()?;
        let (stack, ctx) = match entry {
            Some(entry) => {
                let stack = mm::new_kernel_stack(KSTACK_PAGES).map_err(|_| Error::OutOfMemory)?;
                stack_check::paint(&stack.stack());
                let ctx = crate::arch::init_context(stack.stack().top, entry, 0);
                (Some(stack), ctx)
            }
            None => (None, KernelContext::default()),
        };
        Ok(Arc::new(Thread {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            process,
            priority,
            ipc_buffer,
            stack,
            ctx: AtomicU64::new(ctx.into_rsp()),
            inner: Mutex::new(ThreadInner::default()),
            fpu: Mutex::new(None),
            reap,
            home: AtomicU32::new(crate::arch::cpu_id()),
            _live: Live::new(ObjectKind::Thread),
        }))
    }

    /// Records that the calling CPU runs it (its kernel stack's TLB shootdown targets).
    #[inline(always)]
    pub fn note_cpu(&self) {
        if let Some(s) = &self.stack {
            s.note_cpu();
        }
    }

    /// Its home CPU.
    #[inline(always)]
    pub fn home(&self) -> usize {
        self.home.load(Ordering::Relaxed) as usize
    }

    /// Moves its home to `cpu` (the scheduler's `set_cpu` does the queue work).
    pub fn set_home(&self, cpu: usize) {
        self.home.store(cpu as u32, Ordering::Relaxed);
    }

    /// A user thread of `process`, not started. It enters user mode at the registers that
    /// `thread_start` stores.
    pub fn new_user(
        process: &Arc<Process>,
        priority: u8,
        ipc_buffer: u64,
    ) -> Result<Arc<Thread>, Error> {
        Self::make(
            Some(process.clone()),
            priority,
            ipc_buffer,
            Some(crate::sched::user_thread_entry),
        )
    }

    /// A kernel thread running `body`, not started (`sched::start`).
    pub fn new_kernel(priority: u8, body: Box<dyn FnOnce() + Send>) -> Result<Arc<Thread>, Error> {
        let t = Self::make(None, priority, 0, Some(crate::sched::kernel_thread_entry))?;
        t.inner.lock().body = Some(KernelBody(body));
        Ok(t)
    }

    /// The thread that represents the boot context (already running on the boot stack).
    pub fn new_boot(priority: u8) -> Result<Arc<Thread>, Error> {
        let t = Self::make(None, priority, 0, None)?;
        t.inner.lock().state = State::Running;
        Ok(t)
    }

    /// Where its saved context lives. The pointer stays valid while the thread is alive.
    pub fn ctx_ptr(&self) -> *mut KernelContext {
        // `KernelContext` is `repr(C)` around one `u64` (checked in arch), so the atomic's
        // storage is a valid `KernelContext`.
        self.ctx.as_ptr().cast::<KernelContext>()
    }

    /// Top of its kernel stack (0 for the boot thread, which never enters user mode).
    #[inline]
    pub fn kstack_top(&self) -> u64 {
        self.stack.as_ref().map_or(0, |s| s.stack().top)
    }

    /// The unmapped guard page under its kernel stack (0 for the boot thread).
    #[inline]
    pub fn stack_guard(&self) -> u64 {
        self.stack.as_ref().map_or(0, |s| s.stack().guard)
    }

    /// Debug builds: panics with "kernel stack overflow" when the lowest word of its kernel
    /// stack (the canary) was overwritten. Called after each switch away from it.
    #[inline]
    pub fn check_stack_canary(&self) {
        if let Some(stack) = &self.stack
            && !stack_check::canary_intact(&stack.stack())
        {
            let pid = self.process.as_ref().map_or(0, |p| p.id);
            panic!(
                "kernel stack overflow in thread {} (process {pid}): the stack canary at {:#x} was overwritten",
                self.id,
                stack.stack().bottom
            );
        }
    }

    /// Its syscall frame (the saved user registers at the top of its kernel stack), the one a
    /// thread with [`Resume::Call`] or [`Resume::Recv`] leaves through. Null for the boot
    /// thread, which has no kernel stack of its own.
    #[inline]
    pub fn parked_frame(&self) -> *mut UserRegs {
        match self.kstack_top() {
            0 => core::ptr::null_mut(),
            top => crate::arch::parked_frame(top),
        }
    }

    /// Its saved kernel stack pointer (meaningful while it is not running).
    #[inline]
    pub fn saved_rsp(&self) -> u64 {
        self.ctx.load(Ordering::Relaxed)
    }

    /// Whether it has ended.
    pub fn is_dead(&self) -> bool {
        matches!(self.inner.lock().state, State::Dead)
    }

    /// Its address-space root (the kernel's for kernel threads or a torn-down process).
    #[inline]
    pub fn cr3(&self) -> u64 {
        self.process
            .as_ref()
            .map_or_else(crate::mm::vmm::root, |p| p.cr3())
    }
}

/// Debug-build kernel stack checks: every thread's kernel stack is painted with a pattern when
/// it is made; the lowest word is a canary checked after every switch away from the thread, and
/// when the thread dies the deepest unpainted word gives its high-water mark (the maximum over
/// all threads is reported by `system_info`). Release builds skip the painting (all no-ops).
pub mod stack_check {
    use core::sync::atomic::{AtomicU64, Ordering};

    use crate::mm::KernelStack;

    /// The paint.
    const PAINT: u64 = 0x57ac_cafe_57ac_cafe;

    /// The deepest use of any kernel stack measured so far, in bytes.
    static HIGH_WATER: AtomicU64 = AtomicU64::new(0);

    /// Bytes of a thread's kernel stack.
    pub const STACK_BYTES: u64 = super::KSTACK_PAGES as u64 * hsync_abi::PAGE_SIZE;

    /// The deepest kernel stack use measured (0 in release builds).
    pub fn high_water() -> u64 {
        HIGH_WATER.load(Ordering::Relaxed)
    }

    /// Paints a fresh stack (before its first context is built at the top).
    pub fn paint(s: &KernelStack) {
        if !cfg!(debug_assertions) {
            return;
        }
        let mut p = s.bottom;
        while p < s.top {
            // SAFETY: `bottom..top` is the freshly mapped, writable stack that nothing uses yet.
            unsafe { (p as *mut u64).write_volatile(PAINT) };
            p += 8;
        }
    }

    /// Whether the canary (the stack's lowest word) still holds the paint.
    pub fn canary_intact(s: &KernelStack) -> bool {
        if !cfg!(debug_assertions) {
            return true;
        }
        // SAFETY: `bottom` is the lowest mapped word of the stack, which lives as long as `s`.
        unsafe { (s.bottom as *const u64).read_volatile() == PAINT }
    }

    /// Records how deep a dead thread's stack was used.
    pub fn measure(s: &KernelStack) {
        if !cfg!(debug_assertions) {
            return;
        }
        let mut p = s.bottom;
        // SAFETY: as in `canary_intact`: every word in `bottom..top` is mapped while `s` lives.
        while p < s.top && unsafe { (p as *const u64).read_volatile() } == PAINT {
            p += 8;
        }
        HIGH_WATER.fetch_max(s.top - p, Ordering::Relaxed);
    }
}
