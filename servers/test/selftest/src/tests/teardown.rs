//! Teardown that cannot overflow: long chains of objects, each holding the last
//! reference to the next, are destroyed by the kernel's reaper one object per step. Before the
//! reaper, 314 chained processes or 127 chained threads ran the kernel stack into its guard page
//! (#DF). Each test compares the live-object and free-frame counters with a baseline taken
//! after a warm-up round (the kernel heap keeps the size it grew to).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;

use libhsync::process::Spawn;
use libhsync::sysinfo::{SystemInfo, kernel_counters};
use libhsync::{
    DEADLINE_NEVER, Endpoint, IpcBuf, Notification, ObjectKind, Process, Rights, StartArgs, Thread,
};

use super::{Ctx, TestFn, TestResult};

/// The suite's tests.
pub const TESTS: &[(&str, TestFn)] = &[
    ("teardown_process_chain_10000", process_chain_10000),
    ("teardown_thread_chain_10000", thread_chain_10000),
    ("teardown_1000_senders_with_handles", senders_with_handles),
    ("teardown_kernel_stack_high_water", kernel_stack_high_water),
];

/// Links per chain.
const CHAIN: usize = 10_000;
/// Queued senders.
const SENDERS: u64 = 1_000;

/// The role that queues [`SENDERS`] callers (this image spawned again).
pub const ROLE: u64 = 0x7ea2;

/// An unstarted thread's entry and stack: checked for range only, never used.
const NOWHERE_ENTRY: u64 = 0x40_0000;
const NOWHERE_STACK: u64 = 0x10_0000_0000;

fn info() -> Result<SystemInfo, String> {
    libhsync::system_info().map_err(|e| format!("system_info: {e:?}"))
}

/// The counters the tests compare: processes, threads, objects, free frames.
fn same(before: &SystemInfo, after: &SystemInfo) -> TestResult {
    ensure!(
        (
            after.processes,
            after.threads,
            after.objects,
            after.free_frames
        ) == (
            before.processes,
            before.threads,
            before.objects,
            before.free_frames
        ),
        "counters not back at baseline: before {before:?}, after {after:?}"
    );
    Ok(())
}

/// `n` empty processes, each holding the only handle to the next; returns the head.
fn process_chain(n: usize, prio: u64) -> Result<Process, String> {
    let mut next: Option<Process> = None;
    for _ in 0..n {
        let p = ok!(Process::create_empty("chain", prio));
        if let Some(nx) = next.take() {
            ok!(p.grant(&nx, ObjectKind::Process.all_rights()));
            ok!(nx.close());
        }
        next = Some(p);
    }
    next.ok_or_else(|| String::from("empty chain"))
}

/// `n` empty processes, each holding the only handle to a not-started thread of the next (the
/// thread keeps its process alive); returns the head.
fn thread_chain(n: usize, prio: u64) -> Result<Process, String> {
    let mut next: Option<Thread> = None;
    let mut head = None;
    for _ in 0..n {
        let p = ok!(Process::create_empty("tchain", prio));
        if let Some(t) = next.take() {
            ok!(p.grant(&t, ObjectKind::Thread.all_rights()));
            ok!(t.close());
        }
        let t = ok!(Thread::create_in(&p, NOWHERE_ENTRY, NOWHERE_STACK, 0, prio));
        next = Some(t);
        if let Some(old) = head.replace(p) {
            ok!(Process::close(old));
        }
    }
    // The head's own thread goes; the head lives on through our handle.
    if let Some(t) = next {
        ok!(t.close());
    }
    head.ok_or_else(|| String::from("empty chain"))
}

fn process_chain_10000(ctx: &mut Ctx) -> TestResult {
    // Warm-up: the heap grows to the chain's size once.
    ok!(Process::close(process_chain(CHAIN, ctx.prio)?));
    let before = info()?;
    let head = process_chain(CHAIN, ctx.prio)?;
    let mid = info()?;
    ensure!(
        mid.processes >= before.processes + CHAIN as u64,
        "the chain is not alive: {mid:?}"
    );
    // Closing the head's handle drops all 10,000, one reaper step each.
    let reaped = ok!(kernel_counters()).reaped;
    ok!(Process::close(head));
    let now = ok!(kernel_counters()).reaped;
    ensure!(
        now >= reaped + CHAIN as u64,
        "the reaper finished {} objects, not {CHAIN}",
        now - reaped
    );
    same(&before, &info()?)
}

fn thread_chain_10000(ctx: &mut Ctx) -> TestResult {
    ok!(Process::close(thread_chain(CHAIN, ctx.prio)?));
    let before = info()?;
    let head = thread_chain(CHAIN, ctx.prio)?;
    let mid = info()?;
    ensure!(
        mid.threads >= before.threads + CHAIN as u64 - 1,
        "the chain's threads are not alive: {mid:?}"
    );
    // Killing the head releases its table: the chain unwinds behind it.
    ok!(head.kill());
    ok!(head.wait(DEADLINE_NEVER));
    ok!(Process::close(head));
    same(&before, &info()?)
}

/// The child: handle 0 = endpoint (SEND), 1 = a process (the chain head, with TRANSFER and
/// DUPLICATE), 2 = a notification to signal once every sender thread is started; word 1 = the
/// number of senders. Each sender calls with a message carrying a duplicate of the process
/// handle, and blocks (nobody receives).
pub fn role(mut args: StartArgs) -> i32 {
    let (Some(ep), Some(p), Some(n)) = (
        args.take_handle::<libhsync::kind::Endpoint>(0),
        args.take_handle::<libhsync::kind::Process>(1),
        args.take_handle::<libhsync::kind::Notification>(2),
    ) else {
        return 3;
    };
    // One endpoint and one process handle, shared by every sender (never closed: they block
    // until the child is killed).
    let shared = Arc::new((ep, p));
    let count = args.word(1).unwrap_or(0);
    let prio = args.word(2).unwrap_or(0);
    for _ in 0..count {
        if libhsync::process::spawn_thread_with(sender, Arc::clone(&shared), prio).is_err() {
            return 4;
        }
    }
    let _ = n.signal(1);
    // Nobody signals this one: wait to be killed.
    if let Ok(never) = Notification::create() {
        let _ = never.wait();
    }
    5
}

fn sender(shared: Arc<(Endpoint, Process)>, mut ipc: IpcBuf) {
    let (ep, p) = &*shared;
    if let Ok(mine) = p.duplicate(Rights::TRANSFER | Rights::WAIT)
        && let Ok(msg) = ipc.compose(1, &[1], &[&mine])
    {
        let _ = ep.call(msg);
        let _ = mine.into_raw(); // keep it in the table until the process dies
    }
}

fn senders_with_handles(ctx: &mut Ctx) -> TestResult {
    let round = |ctx: &mut Ctx| -> TestResult {
        let ep = ok!(Endpoint::create());
        let head = process_chain(CHAIN, ctx.prio)?;
        let n = ok!(Notification::create());
        let child = ok!(ok!(ok!(ok!(Spawn::new(&ctx.image, "senders")
            .priority(ctx.prio)
            .word(ROLE)
            .word(SENDERS)
            .word(ctx.prio)
            .handle(&ep, Rights::SEND))
        .handle(&head, Rights::TRANSFER | Rights::DUPLICATE | Rights::WAIT))
        .handle(&n, Rights::SIGNAL))
        .start());
        ok!(Process::close(head));
        ensure!(ok!(n.wait()) == 1, "the sender child did not start");
        // Same priority: sleeping lets every sender run until it blocks in the endpoint.
        ok!(libhsync::sleep_until(libhsync::clock() + 200_000_000));
        let queued = info()?;
        ensure!(
            queued.threads >= SENDERS,
            "{SENDERS} senders are not alive: {queued:?}"
        );
        // One message shows what the others carry: a process handle.
        let got = ok!(ep.try_recv());
        ensure!(
            got.msg.info.handles() == 1,
            "a queued message carried {} handles",
            got.msg.info.handles()
        );
        let h = ctx.ipc.take_handle(0);
        ensure!(
            ok!(h.inspect()).kind == ObjectKind::Process,
            "the handle is not a process"
        );
        ok!(h.close());
        ok!(libhsync::ipc::reply(ok!(libhsync::Msg::new(0, &[]))));
        // Killing the child releases 1,000 queued senders and every handle to the chain.
        ok!(child.process.kill());
        ok!(child.process.wait(DEADLINE_NEVER));
        drop(child);
        ok!(ep.close());
        Ok(())
    };
    round(ctx)?;
    let before = info()?;
    round(ctx)?;
    same(&before, &info()?)
}

/// The kernel's measured stack depth after the chains (debug builds paint each kernel stack
/// and measure it when the thread dies): far below the stack size.
fn kernel_stack_high_water(_: &mut Ctx) -> TestResult {
    let c = ok!(kernel_counters());
    let (used, size) = (c.kstack_high_water, c.kstack_size);
    ensure!(size > 0, "the kernel reports no stack size");
    ensure!(
        used < size / 2,
        "a kernel stack reached {used} of {size} bytes"
    );
    libhsync::println!("[figure] teardown: deepest kernel stack {used} of {size} bytes");
    Ok(())
}
