//! Threads and the scheduler: preemptive, priority-based round robin (32 levels), per-CPU run
//! queues, blocking and waking for IPC and notifications, sleeps with deadlines, an idle thread
//! per CPU with `hlt`.
//!
//! Called by arch: [`on_timer_tick`], [`on_user_fault`]; by the syscall layer and IPC: [`block`],
//! [`switch_to_blocked`], [`wake_if`], [`kill_thread`], [`exit_current`].
//!
//! Concurrency: kernel code runs with interrupts off (syscalls enter with IF clear, interrupt
//! gates clear it), except the idle thread's `hlt`, and under the big kernel lock (docs/smp.md):
//! one CPU at a time runs kernel code, so the inner locks below are never contended. A CPU's
//! state is behind its own lock, taken for short sections and never across a context switch
//! or a remote call. Every thread has a home CPU ([`Thread::home`]): it is queued and run only
//! there; a wake-up from another CPU queues it at home and sends that CPU a reschedule IPI when
//! it must preempt or is idle.
//!
//! Killing: a thread that may hold references on its kernel stack (blocked or preempted inside
//! the kernel) is never discarded in place. [`kill_thread`] marks it killed and makes it ready at
//! the highest priority; it unwinds its own kernel path (the blocking call returns an error) and
//! ends in [`exit_current`] at the next kernel exit point, so every reference it held is
//! released exactly once.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use hsync_abi::{Error, ExitStatus, FaultKind, FaultRecord};
use hsync_kcore::sched::RunQueue;
use spin::Mutex;

use crate::arch::{self, UserFault};
use crate::object::Thread;
use crate::object::thread::{Block, Resume, State, Wake};

/// Timer tick period.
pub const TICK_NS: u64 = 2_000_000;
/// Ticks per time slice (10 ms).
const SLICE_TICKS: u32 = 5;
/// Priority of the boot thread (root's supervisor and the ktest runner).
pub const BOOT_PRIORITY: u8 = 16;
/// Priority killed threads run at, so they unwind and free their resources promptly.
const KILL_PRIORITY: u8 = 31;

/// Timer ticks seen so far.
static TICKS: AtomicU64 = AtomicU64::new(0);

/// One CPU's scheduling state.
struct Cpu {
    current: Option<Arc<Thread>>,
    idle: Option<Arc<Thread>>,
    run: RunQueue<Arc<Thread>>,
    /// Threads with a deadline (sleep, timed wait), unordered.
    sleepers: Vec<(u64, Arc<Thread>)>,
    /// The thread switched away from, dropped by the next thread after the switch.
    prev: Option<Arc<Thread>>,
    ticks_left: u32,
    need_resched: bool,
    /// IPC fast-path handoffs ([`fast_handoff`] that switched).
    fast_handoffs: u64,
    /// Threads parked at their syscall that the general switch resumed.
    parked_resumes: u64,
    /// General switches to another thread.
    switches: u64,
    /// Nanoseconds spent in the idle thread (up to `idle_since` when it runs now).
    idle_ns: u64,
    /// When the idle thread last started running (valid while it runs).
    idle_since: u64,
}

/// Scheduler event counters, summed over CPUs (`system_info` page `SYSINFO_COUNTERS`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// IPC fast-path handoffs.
    pub fast_handoffs: u64,
    /// Threads parked by the fast path that the general switch resumed (woken by a slow-path
    /// message, a kill or a dead peer).
    pub parked_resumes: u64,
}

/// The scheduler's event counters.
pub fn counters() -> Counters {
    online().fold(Counters::default(), |acc, c| {
        let c = c.lock();
        Counters {
            fast_handoffs: acc.fast_handoffs + c.fast_handoffs,
            parked_resumes: acc.parked_resumes + c.parked_resumes,
        }
    })
}

impl Cpu {
    const fn new() -> Cpu {
        Cpu {
            current: None,
            idle: None,
            run: RunQueue::new(),
            sleepers: Vec::new(),
            prev: None,
            ticks_left: SLICE_TICKS,
            need_resched: false,
            fast_handoffs: 0,
            parked_resumes: 0,
            switches: 0,
            idle_ns: 0,
            idle_since: 0,
        }
    }

    fn push(&mut self, prio: u8, t: Arc<Thread>) {
        if let Err((e, t)) = self.run.push(prio, t) {
            log::error!(target: "sched", "run queue push failed ({e:?}); thread {} stalls", t.id);
        }
    }
}

/// Number of CPUs the scheduler has state for.
const MAX_CPUS: usize = arch::MAX_CPUS;

static CPUS: [Mutex<Cpu>; MAX_CPUS] = [const { Mutex::new(Cpu::new()) }; MAX_CPUS];

fn cpu(id: usize) -> &'static Mutex<Cpu> {
    CPUS.get(id).unwrap_or(&CPUS[0])
}

fn this_cpu() -> &'static Mutex<Cpu> {
    cpu(arch::cpu_id() as usize)
}

/// The CPUs with scheduler state in use.
fn online() -> impl Iterator<Item = &'static Mutex<Cpu>> {
    CPUS.iter().take(arch::cpus_online() as usize)
}

/// Queues `t` (ready) at `prio` on its home CPU; kicks that CPU if it must reschedule.
fn enqueue(t: Arc<Thread>, prio: u8) {
    let home = t.home();
    let kick = {
        let mut c = cpu(home).lock();
        c.push(prio, t);
        note_wake(&mut c, prio)
    };
    if kick {
        arch::kick_cpu(home);
    }
}

/// Removes `t` from every CPU's sleepers list.
fn forget_sleeper(t: &Arc<Thread>) {
    for c in online() {
        c.lock().sleepers.retain(|(_, s)| !Arc::ptr_eq(s, t));
    }
}

/// Timer ticks seen so far.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Makes the running boot context a thread, creates the idle thread and starts the tick.
pub fn init() {
    let (Ok(boot), Ok(idle)) = (
        Thread::new_boot(BOOT_PRIORITY),
        Thread::new_kernel(0, Box::new(|| idle_loop())),
    ) else {
        panic!("out of memory creating the boot and idle threads");
    };
    idle.inner.lock().state = State::Ready;
    {
        let mut cpu = this_cpu().lock();
        publish_current(&boot);
        cpu.current = Some(boot);
        cpu.idle = Some(idle);
        let _ = cpu.run.reserve(4);
    }
    arch::timer_start(TICK_NS);
    log::info!(target: "sched", "scheduler up: tick {} us, slice {} ms, {} CPUs", TICK_NS / 1000, TICK_NS * SLICE_TICKS as u64 / 1_000_000, arch::cpus_online());
    arch::release_aps(ap_main);
}

/// An AP joins the scheduler: takes the big kernel lock, makes its running context its idle
/// thread and idles (it runs what wake-ups queue on it; its tick runs while it has work).
fn ap_main() -> ! {
    arch::bkl_acquire_boot();
    let Ok(idle) = Thread::new_boot(0) else {
        panic!("out of memory creating an AP's idle thread");
    };
    {
        let mut cpu = this_cpu().lock();
        publish_current(&idle);
        cpu.current = Some(idle.clone());
        cpu.idle = Some(idle);
        let _ = cpu.run.reserve(4);
    }
    // No tick while it idles with nothing to wake; the first switch to a thread starts it.
    idle_loop()
}

/// The idle thread's body: wait for interrupts without the big kernel lock; run whatever
/// became ready.
pub fn idle_loop() -> ! {
    loop {
        arch::idle_wait();
        preempt_point();
    }
}

/// Publishes `t` as this CPU's running thread in the per-CPU block, so that the hot paths
/// ([`current`], [`with_current`]) find it without taking the CPU lock.
fn publish_current(t: &Arc<Thread>) {
    arch::cpu_local().set_current(Arc::as_ptr(t) as usize);
}

/// Runs `f` on the running thread without taking the CPU lock or a reference.
///
/// `f` may block the thread (the IPC fast path switches away inside it): a thread that is not
/// running is kept alive by whatever holds its reference (a run queue, a wait structure, a
/// reply right), and `f` continues only when it runs again.
pub fn with_current<R>(f: impl FnOnce(&Thread) -> R) -> R {
    let ptr = arch::cpu_local().current() as *const Thread;
    if ptr.is_null() {
        panic!("sched::current before sched::init");
    }
    // SAFETY: the slot holds `Arc::as_ptr` of `cpu.current` (set by `publish_current` whenever
    // `cpu.current` changes), and `cpu.current` holds a strong reference for as long as the
    // thread runs. We are that thread, on this CPU, with interrupts off: it cannot stop being
    // current (and be freed) before `f` returns, because freeing happens only after a switch
    // away from it; if `f` switches away, the reference moved to the wait structure keeps the
    // thread alive until it is current again and `f` resumes.
    f(unsafe { &*ptr })
}

/// For the double-fault handler: when `rsp` lies in (or just above) the guard page under the
/// running thread's kernel stack, or under `boot_guard` (the boot stack's guard page), panics
/// with "kernel stack overflow in thread T (process P)". Takes no lock.
pub fn panic_if_stack_overflow(rsp: u64, boot_guard: u64) {
    const PAGE: u64 = 4096;
    let near = |guard: u64| guard != 0 && (guard..guard + PAGE + 512).contains(&rsp);
    let ptr = arch::cpu_local().current() as *const Thread;
    // SAFETY: as in `with_current` (the running thread outlives this call, which diverges or
    // returns without switching); null before `init`.
    let Some(t) = (unsafe { ptr.as_ref() }) else {
        if near(boot_guard) {
            panic!(
                "kernel stack overflow in thread 0 (process 0 kernel, the boot stack before the scheduler): double fault (#DF), rsp {rsp:#018x}, guard page {boot_guard:#018x}"
            );
        }
        return;
    };
    let guard = match t.stack_guard() {
        0 => boot_guard,
        g => g,
    };
    if near(guard) {
        let (pid, name) = t
            .process
            .as_ref()
            .map_or((0, "kernel"), |p| (p.id, p.name.as_str()));
        panic!(
            "kernel stack overflow in thread {} (process {pid} {name}): double fault (#DF), rsp {rsp:#018x}, guard page {guard:#018x}",
            t.id
        );
    }
}

/// The running thread.
pub fn current() -> Arc<Thread> {
    let ptr = arch::cpu_local().current() as *const Thread;
    if ptr.is_null() {
        panic!("sched::current before sched::init");
    }
    // SAFETY: as in `with_current`, `ptr` came from `Arc::as_ptr` of the `Arc` in
    // `cpu.current`, which keeps the count ≥ 1 while we run; taking one more reference and
    // turning it into an `Arc` is exactly `Arc::clone` of that `Arc`.
    unsafe {
        Arc::increment_strong_count(ptr);
        Arc::from_raw(ptr)
    }
}

/// Makes a created thread ready. Errors: `InvalidState` if it was started before.
pub fn start(t: &Arc<Thread>) -> Result<(), Error> {
    {
        let mut inner = t.inner.lock();
        if !matches!(inner.state, State::Created) {
            return Err(Error::InvalidState);
        }
        inner.state = State::Ready;
    }
    let home = t.home();
    let kick = {
        let mut cpu = cpu(home).lock();
        let want = cpu.run.len() + 1;
        if cpu.run.reserve_at(t.priority, want).is_err() {
            drop(cpu);
            t.inner.lock().state = State::Created;
            return Err(Error::OutOfMemory);
        }
        cpu.push(t.priority, t.clone());
        note_wake(&mut cpu, t.priority)
    };
    if kick {
        arch::kick_cpu(home);
    }
    Ok(())
}

/// Marks `cpu` for rescheduling when a thread of `prio` outranks what it runs or it idles.
/// Returns whether it did.
fn note_wake(cpu: &mut Cpu, prio: u8) -> bool {
    let cur = cpu.current.as_ref().map_or(0, |c| c.priority);
    if prio > cur
        || cpu
            .current
            .as_ref()
            .zip(cpu.idle.as_ref())
            .is_some_and(|(c, i)| Arc::ptr_eq(c, i))
    {
        cpu.need_resched = true;
        return true;
    }
    false
}

/// Wakes `t` with `wake` if it is blocked on something `pred` accepts. Returns whether it did.
pub fn wake_if(t: &Arc<Thread>, pred: impl FnOnce(&Block) -> bool, wake: Wake) -> bool {
    let had_deadline = {
        let mut inner = t.inner.lock();
        match &inner.state {
            State::Blocked(b) if pred(b) => {}
            _ => return false,
        }
        inner.state = State::Ready;
        inner.wake = wake;
        inner.deadline.take().is_some()
    };
    if had_deadline {
        forget_sleeper(t);
    }
    enqueue(t.clone(), t.priority);
    true
}

/// Blocks the current thread on `block` (the caller has already queued it wherever `block`
/// says) and runs something else. Returns what woke it. A killed thread does not block: it
/// gets `PeerDied` at once and unwinds.
pub fn block(block: Block) -> Wake {
    if !set_blocked(block) {
        return Wake::Err(Error::PeerDied);
    }
    switch(false, None);
    take_wake()
}

/// Like [`block`], but switches straight to `next` (the IPC fast path: no run-queue pass).
/// `next` must be a thread the caller just took out of a wait structure, with its wake result
/// already set; it becomes the running thread.
pub fn switch_to_blocked(block: Block, next: Arc<Thread>) -> Wake {
    if next.home() != arch::cpu_id() as usize {
        // Its home is another CPU: wake it there, block here.
        make_ready(next);
        return self::block(block);
    }
    if !set_blocked(block) {
        // Killed meanwhile: hand `next` to the run queue instead.
        make_ready(next);
        return Wake::Err(Error::PeerDied);
    }
    switch(false, Some(next));
    take_wake()
}

/// What an IPC fast path decided under the CPU lock (see [`fast_handoff`]).
pub struct Handoff<D> {
    /// The thread to run next: taken out of the wait structure it was in, its state already
    /// `Running`.
    pub next: Arc<Thread>,
    /// Whether its results were written into its parked frame (it was parked with
    /// `Resume::Call`/`Resume::Recv`); otherwise its wake result is set and it resumes from its
    /// saved kernel context.
    pub via_frame: bool,
    /// Dropped after the CPU lock is released (an old `Block`, which holds an endpoint).
    pub leftover: D,
}

/// The IPC fast path's switch (`crate::ipc::fast_call`, `crate::ipc::fast_reply_recv`).
///
/// Under the CPU lock, and only when no reschedule is pending, `f` gets the running thread's
/// own reference (moved out of the CPU) and the highest ready priority. It either gives the
/// reference back (`Err`: nothing changed, the general path takes the call) or parks it where
/// the thread now waits (a reply right, an endpoint queue) and names the thread to run. The
/// CPU then belongs to that thread — no run-queue pass, no allocation, no reference count
/// change, the slice goes on — and the caller must leave the kernel the way the result says,
/// abandoning the current kernel stack (which must hold nothing live: the running thread was
/// parked at its system call, `Resume::Call`/`Resume::Recv`, and resumes through its frame).
///
/// Lock order: CPU, then handle table, endpoint, threads (as everywhere).
#[inline(always)]
pub fn fast_handoff<D>(
    f: impl FnOnce(Arc<Thread>, Option<u8>) -> Result<Handoff<D>, Arc<Thread>>,
) -> Option<arch::SyscallExit> {
    let mut cpu = this_cpu().lock();
    if cpu.need_resched {
        return None;
    }
    let ready = cpu.run.highest();
    let me = cpu.current.take()?;
    let h = match f(me, ready) {
        Ok(h) => h,
        Err(me) => {
            cpu.current = Some(me);
            return None;
        }
    };
    let next = h.next;
    crate::hw::switch_io(&next);
    arch::fpu_switch_to(Arc::as_ptr(&next) as usize);
    publish_current(&next);
    next.note_cpu();
    let kstack = next.kstack_top();
    let cr3 = next.cr3();
    let exit = if h.via_frame {
        arch::SyscallExit::Frame(next.parked_frame())
    } else {
        arch::SyscallExit::Context(next.saved_rsp())
    };
    // `current` was taken above: no old value to drop.
    core::mem::forget(cpu.current.replace(next));
    cpu.fast_handoffs += 1;
    let load = arch::loaded_cr3() != cr3;
    drop(cpu);
    drop(h.leftover);
    arch::set_kernel_stack(kstack);
    if load {
        // SAFETY: as in `switch`: every process PML4 maps the kernel half.
        unsafe { arch::switch_address_space(cr3) };
    }
    Some(exit)
}

/// Puts a thread that was taken out of a wait structure (its wake result set) on the run queue.
pub fn make_ready(t: Arc<Thread>) {
    t.inner.lock().state = State::Ready;
    let prio = t.priority;
    enqueue(t, prio);
}

fn set_blocked(block: Block) -> bool {
    with_current(|cur| {
        let mut inner = cur.inner.lock();
        if inner.killed {
            return false;
        }
        inner.state = State::Blocked(block);
        inner.wake = Wake::None;
        true
    })
}

/// Takes the running thread's wake result (what ended its last block).
pub fn take_wake() -> Wake {
    with_current(|c| core::mem::take(&mut c.inner.lock().wake))
}

/// Gives the CPU to the next ready thread of at least the same priority, if any.
pub fn yield_now() {
    switch(true, None);
}

/// Blocks the current thread until the clock reaches `deadline` (ns since boot).
pub fn sleep_until(deadline: u64) -> Result<(), Error> {
    if deadline <= arch::uptime_ns() {
        return Ok(());
    }
    add_sleeper(deadline)?;
    match block(Block::Sleep) {
        Wake::Err(e) => Err(e),
        _ => Ok(()),
    }
}

/// Puts the current thread on the sleepers list with `deadline` (before it blocks).
pub fn add_sleeper(deadline: u64) -> Result<(), Error> {
    let mut cpu = this_cpu().lock();
    let Some(cur) = cpu.current.clone() else {
        return Err(Error::InvalidState);
    };
    cpu.sleepers
        .try_reserve(1)
        .map_err(|_| Error::OutOfMemory)?;
    cur.inner.lock().deadline = Some(deadline);
    cpu.sleepers.push((deadline, cur));
    Ok(())
}

/// Ends the current thread. Never returns; the next thread frees it.
pub fn exit_current() -> ! {
    {
        let cpu = this_cpu().lock();
        if let Some(cur) = cpu.current.as_ref() {
            cur.inner.lock().state = State::Dead;
            arch::fpu_release(Arc::as_ptr(cur) as usize);
        }
    }
    switch(false, None);
    unreachable!("a dead thread was scheduled again")
}

/// If the current thread was killed, ends it (called at every kernel exit point).
pub fn exit_if_killed() {
    if with_current(|c| c.inner.lock().killed) {
        exit_current();
    }
}

/// The end of every system call: ends a killed thread, and reschedules if a wake-up made a
/// higher-priority thread ready (then checks for a kill again, which may have come meanwhile).
pub fn syscall_exit() {
    exit_if_killed();
    if preempt_point() {
        exit_if_killed();
    }
}

/// Reschedules if a wake-up made a higher-priority thread ready (end of a syscall). Returns
/// whether it switched away (and back).
pub fn preempt_point() -> bool {
    let need = core::mem::take(&mut this_cpu().lock().need_resched);
    if need {
        switch(true, None);
    }
    need
}

/// Kills a thread: it will not run user code again. See the module documentation.
pub fn kill_thread(t: &Arc<Thread>) {
    let (old, pending, had_deadline) = {
        let mut inner = t.inner.lock();
        if inner.killed || matches!(inner.state, State::Dead) {
            return;
        }
        inner.killed = true;
        inner.send = None;
        let old = match inner.state {
            State::Created => core::mem::replace(&mut inner.state, State::Dead),
            State::Blocked(_) => {
                inner.wake = Wake::Err(Error::PeerDied);
                core::mem::replace(&mut inner.state, State::Ready)
            }
            _ => State::Running, // ready or running: it exits at its next kernel exit point
        };
        (old, inner.pending.take(), inner.deadline.take().is_some())
    };
    if had_deadline {
        forget_sleeper(t);
    }
    let home = t.home();
    if let State::Blocked(b) = old {
        match &b {
            Block::Send(ep) | Block::Recv(ep) => ep.remove(t),
            Block::Notification(n) => n.remove(t),
            Block::ProcessWait(p) => p.waiters.lock().retain(|w| !Arc::ptr_eq(w, t)),
            Block::Reply | Block::Sleep | Block::Kernel => {}
        }
        let mut cpu = cpu(home).lock();
        cpu.push(KILL_PRIORITY, t.clone());
        cpu.need_resched = true;
        drop(cpu);
        arch::kick_cpu(home);
        drop(b);
    } else {
        // Ready: bump it so it unwinds promptly. (Running on another CPU: it exits at its next
        // kernel entry; the kick makes that soon.)
        let mut cpu = cpu(home).lock();
        if let Some(t) = cpu.run.remove(t.priority, |x| Arc::ptr_eq(x, t)) {
            cpu.push(KILL_PRIORITY, t);
        }
        cpu.need_resched = true;
        drop(cpu);
        arch::kick_cpu(home);
    }
    drop(pending);
}

/// Moves `t`'s home to CPU `cpu` (`thread_set_cpu`). A ready thread moves to that CPU's queue
/// now; a running one (here or elsewhere) at its next switch (its CPU is asked to reschedule);
/// a blocked one is woken there. Errors: `InvalidArgument` for a CPU that is not online.
pub fn set_cpu(t: &Arc<Thread>, to: usize) -> Result<(), Error> {
    if to >= arch::cpus_online() as usize {
        return Err(Error::InvalidArgument);
    }
    let from = t.home();
    if from == to {
        return Ok(());
    }
    t.set_home(to);
    let queued = {
        let mut c = cpu(from).lock();
        let running = c.current.as_ref().is_some_and(|c| Arc::ptr_eq(c, t));
        if running {
            c.need_resched = true;
        }
        let queued = [t.priority, KILL_PRIORITY]
            .into_iter()
            .find_map(|p| c.run.remove(p, |x| Arc::ptr_eq(x, t)).map(|x| (p, x)));
        (running, queued)
    };
    match queued {
        (_, Some((prio, t))) => enqueue(t, prio),
        (true, None) => arch::kick_cpu(from),
        (false, None) => {}
    }
    Ok(())
}

/// CPU `i`'s line for `system_info` (`SYSINFO_CPU + i`), `None` when it is not online.
pub fn cpu_info(i: usize) -> Option<[u64; 6]> {
    if i >= arch::cpus_online() as usize {
        return None;
    }
    let now = arch::uptime_ns();
    let c = cpu(i).lock();
    let idle_now = c
        .current
        .as_ref()
        .zip(c.idle.as_ref())
        .is_some_and(|(a, b)| Arc::ptr_eq(a, b));
    let idle = c.idle_ns
        + if idle_now {
            now.saturating_sub(c.idle_since)
        } else {
            0
        };
    Some([
        u64::from(arch::apic_id(i)),
        u64::from(!idle_now),
        c.switches,
        now.saturating_sub(idle),
        arch::tsc_offset(i) as u64,
        now,
    ])
}

/// Before a process's page tables are freed: every CPU that has them loaded loads the
/// kernel's (this one directly, the others by a remote call that completes before return).
pub fn leave_address_space(cr3: u64) {
    if arch::loaded_cr3() == cr3 {
        let root = crate::mm::vmm::root();
        // SAFETY: the kernel's own PML4 maps the kernel half.
        unsafe { arch::load_address_space(root) };
    }
    arch::forget_address_space(cr3);
    arch::leave_everywhere(cr3);
}

/// The core switch: optionally requeues the current thread, picks `direct` or the best ready
/// thread (or idle), and switches to it.
fn switch(requeue: bool, direct: Option<Arc<Thread>>) {
    let mut cpu = this_cpu().lock();
    let next = match direct {
        Some(n) => n,
        None => {
            let Some(cur) = cpu.current.as_ref() else {
                return;
            };
            let cur_is_idle = cpu.idle.as_ref().is_some_and(|i| Arc::ptr_eq(i, cur));
            let me = arch::cpu_id() as usize;
            if requeue && !cur_is_idle && cur.home() != me {
                // Moved to another CPU while it ran here: queue it at home.
                let cur = cur.clone();
                cur.inner.lock().state = State::Ready;
                let prio = cur.priority;
                let home = cur.home();
                let kick = {
                    let mut h = self::cpu(home).lock();
                    h.push(prio, cur);
                    note_wake(&mut h, prio)
                };
                if kick {
                    arch::kick_cpu(home);
                }
            } else if requeue && !cur_is_idle {
                // Round robin: only a thread of at least our priority displaces us.
                match cpu.run.highest() {
                    Some(p) if p >= cur.priority => {}
                    _ => {
                        cpu.ticks_left = SLICE_TICKS;
                        return;
                    }
                }
                let cur = cur.clone();
                cur.inner.lock().state = State::Ready;
                cpu.push(cur.priority, cur);
            } else if requeue {
                cur.inner.lock().state = State::Ready;
            }
            match cpu.run.pop() {
                Some((_, t)) => t,
                None => match cpu.idle.clone() {
                    Some(i) => i,
                    None => return,
                },
            }
        }
    };
    if cpu.current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &next)) {
        next.inner.lock().state = State::Running;
        return;
    }
    let resume = {
        let mut inner = next.inner.lock();
        inner.state = State::Running;
        core::mem::take(&mut inner.resume)
    };
    let frame = next.parked_frame();
    let to = next.ctx_ptr();
    if resume != Resume::Kernel {
        cpu.parked_resumes += 1;
    }
    let me = arch::cpu_id() as usize;
    let to_idle = cpu.idle.as_ref().is_some_and(|i| Arc::ptr_eq(i, &next));
    debug_assert!(
        to_idle || next.home() == me,
        "thread {} (home cpu {}) resumed on cpu {me}",
        next.id,
        next.home()
    );
    let from_idle = cpu
        .current
        .as_ref()
        .zip(cpu.idle.as_ref())
        .is_some_and(|(c, i)| Arc::ptr_eq(c, i));
    if to_idle || from_idle {
        let now = arch::uptime_ns();
        if from_idle {
            cpu.idle_ns += now.saturating_sub(cpu.idle_since);
        }
        if to_idle {
            cpu.idle_since = now;
        }
        // An AP idles without a tick unless it has sleepers to wake (CPU 0 keeps the clock
        // and the notification timers): wake-ups reach it by IPI.
        if me != 0 && to_idle && cpu.sleepers.is_empty() {
            arch::timer_stop();
        } else if me != 0 && from_idle {
            arch::timer_start(TICK_NS);
        }
    }
    next.note_cpu();
    cpu.switches += 1;
    let kstack = next.kstack_top();
    let cr3 = next.cr3();
    cpu.ticks_left = SLICE_TICKS;
    cpu.need_resched = false;
    crate::hw::switch_io(&next);
    arch::fpu_switch_to(Arc::as_ptr(&next) as usize);
    publish_current(&next);
    // Move, not clone: the outgoing thread's reference goes to `prev`, dropped after the switch.
    let Some(cur) = cpu.current.replace(next) else {
        return;
    };
    let from = cur.ctx_ptr();
    cpu.prev = Some(cur);
    let load = arch::loaded_cr3() != cr3;
    drop(cpu);
    if kstack != 0 {
        arch::set_kernel_stack(kstack);
    }
    if load {
        // SAFETY: every process PML4 shares the kernel half (mm preallocates it); the kernel
        // root maps it by definition.
        unsafe { arch::load_address_space(cr3) };
    }
    match resume {
        // SAFETY: interrupts are off in the kernel; both contexts belong to threads kept alive
        // by `cpu.current` / `cpu.prev` until `finish_switch` runs on the other side; `to` was
        // made by `init_context` or saved by a previous switch, on a mapped kernel stack.
        Resume::Kernel => unsafe { arch::switch_context(from, to) },
        // SAFETY: as above for `from`; `next` was parked at its system call by the IPC fast
        // path, so its kernel stack holds only its syscall frame (`frame`), and its address
        // space and kernel stack were just made current. `resume_parked` finishes the switch,
        // writes its result and leaves through the frame.
        kind => unsafe {
            arch::switch_to_frame(from, frame, crate::ipc::resume_parked, kind as u64)
        },
    }
    finish_switch();
}

/// Drops the previous thread's reference (possibly freeing a dead thread and its stack) after
/// its context was saved, and runs the reaper (`object::reap`) over what that freed. Runs
/// first in every thread after a switch.
pub fn finish_switch() {
    let prev = this_cpu().lock().prev.take();
    if let Some(p) = &prev {
        p.check_stack_canary();
    }
    drop(prev);
    crate::object::reap::drain();
}

/// First code of a new user thread: enter user mode with the registers `thread_start` stored.
pub extern "C" fn user_thread_entry(_arg: u64) -> ! {
    finish_switch();
    let regs = {
        let t = current();
        let mut inner = t.inner.lock();
        inner.start.take().unwrap_or_default()
    };
    exit_if_killed();
    // SAFETY: the thread's process address space is loaded (switch) and its kernel stack is in
    // TSS.rsp0 (switch); `regs` lives on this stack frame, which never returns.
    unsafe { arch::return_to_user(&regs) }
}

/// First code of a new kernel thread: run its body, then exit.
pub extern "C" fn kernel_thread_entry(_arg: u64) -> ! {
    finish_switch();
    let body = current().inner.lock().body.take();
    if let Some(body) = body {
        (body.0)();
    }
    exit_current()
}

/// Called by the timer interrupt (from user mode or idle). Wakes due sleepers and preempts.
pub fn on_timer_tick() {
    let now = arch::uptime_ns();
    // Global time and the notification deadlines run on CPU 0's tick only.
    if arch::cpu_id() == 0 {
        TICKS.fetch_add(1, Ordering::Relaxed);
        crate::object::notification::fire_timers(now);
    }
    loop {
        let due = {
            let mut cpu = this_cpu().lock();
            let i = cpu.sleepers.iter().position(|(d, _)| *d <= now);
            i.map(|i| cpu.sleepers.swap_remove(i).1)
        };
        let Some(t) = due else { break };
        t.inner.lock().deadline = None;
        let sleeping = wake_if(&t, |b| matches!(b, Block::Sleep), Wake::Done);
        if !sleeping {
            let _ = wake_if(
                &t,
                |b| matches!(b, Block::ProcessWait(_)),
                Wake::Err(Error::TimedOut),
            );
        }
    }
    let preempt = {
        let mut cpu = this_cpu().lock();
        if cpu.current.is_none() {
            return;
        }
        cpu.ticks_left = cpu.ticks_left.saturating_sub(1);
        cpu.ticks_left == 0 || core::mem::take(&mut cpu.need_resched)
    };
    if preempt {
        switch(true, None);
        exit_if_killed();
    }
}

/// Called by the trap dispatcher for an exception in ring 3: kill the current process, keep
/// its fault record for its waiters, run something else. Never returns.
pub fn on_user_fault(fault: &UserFault) -> ! {
    {
        let t = current();
        let Some(p) = t.process.clone() else {
            panic!("user-mode fault in kernel thread {}: {fault:?}", t.id);
        };
        let r = &fault.regs;
        let guard = fault.vector == 14
            && p.aspace
                .lock()
                .as_ref()
                .is_some_and(|a| a.is_guard_page(fault.cr2));
        let kind = fault_kind(fault, guard);
        let record = FaultRecord {
            kind,
            error_code: fault.error_code,
            address: if fault.vector == 14 { fault.cr2 } else { 0 },
            thread_id: t.id,
            rip: r.rip,
            rsp: r.rsp,
            rbp: r.rbp,
            rflags: r.rflags,
            rax: r.rax,
            rdi: r.rdi,
            rsi: r.rsi,
            rdx: r.rdx,
        };
        log::warn!(
            target: "proc",
            "process {} ({}) thread {} faulted: {kind:?} at rip {:#x}, addr {:#x}, error {:#x}; killed",
            p.id, p.name, t.id, r.rip, record.address, fault.error_code
        );
        drop(t);
        p.end(ExitStatus::Faulted(kind), Some(record));
    }
    exit_current()
}

/// Called by the trap dispatcher for #NM from ring 3 (lazy FPU is on): gives the running
/// thread the FPU, with a fresh register area on its first use. Returns false when that area
/// cannot be allocated (the #NM then faults the process).
pub fn on_fpu_trap() -> bool {
    with_current(|t| {
        let mut area = t.fpu.lock();
        if area.is_none() {
            *area = new_fx_area();
        }
        let Some(a) = area.as_deref() else {
            return false;
        };
        // SAFETY: `t` is the running thread; its area lives in `t.fpu` until the thread is
        // dropped, and `exit_current` / `Thread::drop` release ownership before that.
        unsafe { arch::fpu_claim(core::ptr::from_ref(t) as usize, a) };
        true
    })
}

/// A fresh FPU area, or `None` when the heap is exhausted.
fn new_fx_area() -> Option<Box<arch::FxArea>> {
    crate::mm::heap::try_box(arch::FxArea::new())
}

/// Classifies a user exception; a not-present #PF in a stack guard page (`guard`), or within a
/// page of the stack pointer, is a stack overflow.
fn fault_kind(f: &UserFault, guard: bool) -> FaultKind {
    const PAGE: u64 = 4096;
    match f.vector {
        0 => FaultKind::DivideError,
        3 => FaultKind::Breakpoint,
        6 => FaultKind::InvalidOpcode,
        13 => FaultKind::GeneralProtection,
        14 => {
            // An instruction fetch from an unmapped page (a thread started at a bad entry) is a
            // page fault, even when its stack pointer happens to be near the address.
            if f.error_code & 16 != 0 || f.cr2 == f.regs.rip {
                return FaultKind::PageFault;
            }
            let in_guard = guard;
            let near_sp =
                f.cr2 < f.regs.rsp.saturating_add(PAGE) && f.cr2 >= f.regs.rsp.saturating_sub(PAGE);
            if f.error_code & 1 == 0 && (in_guard || near_sp) {
                FaultKind::StackOverflow
            } else {
                FaultKind::PageFault
            }
        }
        v => FaultKind::Other(v),
    }
}

/// Spawns and starts a kernel thread running `body` at `priority`.
pub fn spawn_kernel(
    priority: u8,
    body: impl FnOnce() + Send + 'static,
) -> Result<Arc<Thread>, Error> {
    let t = Thread::new_kernel(priority, Box::new(body))?;
    start(&t)?;
    Ok(t)
}
