//! utests for SMP (docs/smp.md): `thread_set_cpu` and its misuse, the CPU pages of
//! `system_info`, IPC and notifications between threads on different CPUs, FPU/SSE state across
//! migrations, the monotonic clock read alternately on two CPUs.
//!
//! With one CPU online the cross-CPU tests run with both sides on CPU 0 (the same code paths
//! minus the IPIs); each says in its output how many CPUs it used.

use alloc::format;
use core::sync::atomic::{AtomicU64, Ordering};

use libhsync::sysinfo::{self, yield_now};
use libhsync::{Error, Handle, IpcBuf, Msg, Notification, Rights, println, sse};

use super::{Ctx, TestFn, TestResult, echo_server};
use crate::roles;

/// The suite's tests.
pub const TESTS: &[(&str, TestFn)] = &[
    ("smp_cpu_info_and_set_cpu_misuse", cpu_info_and_misuse),
    ("smp_ipc_cross_cpu", ipc_cross_cpu),
    (
        "smp_notification_ping_pong_cross_cpu",
        notification_ping_pong,
    ),
    ("smp_fpu_survives_migration", fpu_survives_migration),
    ("smp_clock_monotonic_across_cpus", clock_monotonic),
];

fn cpus() -> Result<u64, alloc::string::String> {
    Ok(ok!(sysinfo::cpus()).0)
}

/// The CPU a second party should run on: 1 when there is one, else 0.
fn other_cpu() -> Result<u64, alloc::string::String> {
    Ok(if cpus()? > 1 { 1 } else { 0 })
}

fn cpu_info_and_misuse(_ctx: &mut Ctx) -> TestResult {
    let (n, me) = ok!(sysinfo::cpus());
    ensure!(n >= 1 && me < n, "cpus {n}, mine {me}");
    for i in 0..n {
        let c = ok!(sysinfo::cpu_info(i));
        ensure!(
            c.busy_ns <= c.uptime_ns,
            "cpu {i}: busy {} > uptime {}",
            c.busy_ns,
            c.uptime_ns
        );
    }
    expect_err!(sysinfo::cpu_info(n), Error::InvalidArgument);
    let t = ok!(libhsync::process::spawn_thread(|_, _| {}, 0, 1));
    expect_err!(t.set_cpu(n), Error::InvalidArgument);
    expect_err!(t.set_cpu(u64::MAX), Error::InvalidArgument);
    let notif = ok!(Notification::create());
    expect_err!(
        super::raw(
            hsync_abi::Sysnum::ThreadSetCpu,
            [notif.raw().raw(), 0, 0, 0, 0, 0]
        ),
        Error::WrongKind
    );
    ok!(t.set_cpu(n - 1));
    println!("smp: {n} CPUs online");
    Ok(())
}

/// Calls from this thread to an echo server whose thread lives on another CPU: every reply is
/// the function of the request the server computes.
fn ipc_cross_cpu(ctx: &mut Ctx) -> TestResult {
    const ROUNDS: u64 = 2000;
    let (child, ep) = echo_server(ctx)?;
    ok!(child.thread.set_cpu(other_cpu()?));
    let t0 = sysinfo::clock();
    for i in 0..ROUNDS {
        let r = ok!(ep.call(ok!(Msg::new(roles::LABEL_ECHO, &[i, !i, i * 3]))));
        ensure!(
            r.regs[..3] == [i + 1, (!i).wrapping_add(1), i * 3 + 1],
            "round trip {i}: {:?}",
            r.regs
        );
    }
    let ns = (sysinfo::clock() - t0) / ROUNDS;
    println!(
        "smp: {ROUNDS} calls to a server on CPU {}, {ns} ns per call",
        other_cpu()?
    );
    super::stop(child)
}

/// Ping-pong partner: waits on `ping` (bit 1), signals `pong` (bit 1), `ROUNDS` times.
fn ponger(_arg: u64, _ipc: IpcBuf) {
    let (ping, pong) = take_pair();
    for _ in 0..PING_ROUNDS {
        if ping.wait().is_err() {
            break;
        }
        PONGS.fetch_add(1, Ordering::SeqCst);
        let _ = pong.signal(1);
    }
}

const PING_ROUNDS: u64 = 2000;

/// The two handles a partner thread starts with (a handle is a full 64-bit word, so two do not
/// fit in the one start argument).
static PAIR: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

fn give_pair(ping: &Notification, pong: &Notification) -> Result<(), alloc::string::String> {
    let p = ok!(ping.duplicate(Rights::WAIT)).into_raw().raw();
    let q = ok!(pong.duplicate(Rights::SIGNAL)).into_raw().raw();
    PAIR[0].store(p, Ordering::SeqCst);
    PAIR[1].store(q, Ordering::SeqCst);
    Ok(())
}

fn take_pair() -> (Notification, Notification) {
    let h = |i: usize| hsync_abi::Handle::from_raw(PAIR[i].load(Ordering::SeqCst));
    (Handle::from_raw(h(0)), Handle::from_raw(h(1)))
}
static PONGS: AtomicU64 = AtomicU64::new(0);

/// Signal/wait pairs between two CPUs: every signal is answered (a lost wake-up hangs the
/// test, which the suite's timeout reports as a failure), and the partner counted each one.
fn notification_ping_pong(ctx: &mut Ctx) -> TestResult {
    PONGS.store(0, Ordering::SeqCst);
    let ping = ok!(Notification::create());
    let pong = ok!(Notification::create());
    give_pair(&ping, &pong)?;
    let t = ok!(libhsync::process::spawn_thread(ponger, 0, ctx.prio));
    ok!(t.set_cpu(other_cpu()?));
    let t0 = sysinfo::clock();
    for round in 0..PING_ROUNDS {
        ok!(ping.signal(1));
        let bits = ok!(pong.wait());
        ensure!(bits == 1, "round {round}: bits {bits:#x}");
    }
    let pongs = PONGS.load(Ordering::SeqCst);
    ensure!(
        pongs == PING_ROUNDS,
        "{pongs} pongs for {PING_ROUNDS} pings"
    );
    let ns = (sysinfo::clock() - t0) / PING_ROUNDS;
    println!(
        "smp: {PING_ROUNDS} ping-pong pairs across CPUs 0 and {}, {ns} ns per pair",
        other_cpu()?
    );
    Ok(())
}

static MIGRATE_FAILED_AT: AtomicU64 = AtomicU64::new(0);
static MIGRATE_DONE: AtomicU64 = AtomicU64::new(0);
const MIGRATE_ROUNDS: u64 = 500;

fn sse_worker(arg: u64, _ipc: IpcBuf) {
    let done: Notification = Handle::from_raw(hsync_abi::Handle::from_raw(arg));
    sse::load(0x5a);
    for round in 0..MIGRATE_ROUNDS {
        yield_now();
        if !sse::check(0x5a) {
            MIGRATE_FAILED_AT.store(round + 1, Ordering::SeqCst);
            break;
        }
        MIGRATE_DONE.store(round + 1, Ordering::SeqCst);
    }
    let _ = done.signal(1);
}

/// A thread keeps distinct values in its xmm registers and MXCSR while this thread moves it
/// from CPU to CPU (and uses SSE itself on CPU 0): the values survive every move.
fn fpu_survives_migration(ctx: &mut Ctx) -> TestResult {
    MIGRATE_FAILED_AT.store(0, Ordering::SeqCst);
    MIGRATE_DONE.store(0, Ordering::SeqCst);
    let n = cpus()?;
    let done = ok!(Notification::create());
    let d = ok!(done.duplicate(Rights::SIGNAL)).into_raw().raw();
    sse::load(0x33);
    let t = ok!(libhsync::process::spawn_thread(sse_worker, d, ctx.prio));
    let mut moves = 0u64;
    let mut last = u64::MAX;
    while MIGRATE_DONE.load(Ordering::SeqCst) < MIGRATE_ROUNDS
        && MIGRATE_FAILED_AT.load(Ordering::SeqCst) == 0
    {
        let at = MIGRATE_DONE.load(Ordering::SeqCst);
        if at != last {
            last = at;
            ok!(t.set_cpu(moves % n));
            moves += 1;
        }
        yield_now();
    }
    ok!(done.wait());
    let at = MIGRATE_FAILED_AT.load(Ordering::SeqCst);
    ensure!(
        at == 0,
        "the worker lost its xmm/MXCSR state at round {}",
        at - 1
    );
    ensure!(sse::check(0x33), "the mover lost its xmm/MXCSR state");
    println!("smp: SSE state survived {moves} moves over {n} CPUs");
    Ok(())
}

static CLOCK_LAST: AtomicU64 = AtomicU64::new(0);
static CLOCK_BACKWARDS: AtomicU64 = AtomicU64::new(0);
const CLOCK_ROUNDS: u64 = 5000;

fn clock_reader(_arg: u64, _ipc: IpcBuf) {
    let (ping, pong) = take_pair();
    for _ in 0..CLOCK_ROUNDS {
        if ping.wait().is_err() {
            break;
        }
        let now = sysinfo::clock();
        if now < CLOCK_LAST.swap(now, Ordering::SeqCst) {
            CLOCK_BACKWARDS.fetch_add(1, Ordering::SeqCst);
        }
        let _ = pong.signal(1);
    }
}

/// Two threads on two CPUs read the monotonic clock in turn (each read happens after the other
/// side's): no read is smaller than the one before it.
fn clock_monotonic(ctx: &mut Ctx) -> TestResult {
    CLOCK_LAST.store(0, Ordering::SeqCst);
    CLOCK_BACKWARDS.store(0, Ordering::SeqCst);
    let ping = ok!(Notification::create());
    let pong = ok!(Notification::create());
    give_pair(&ping, &pong)?;
    let t = ok!(libhsync::process::spawn_thread(clock_reader, 0, ctx.prio));
    ok!(t.set_cpu(other_cpu()?));
    for _ in 0..CLOCK_ROUNDS {
        let now = sysinfo::clock();
        if now < CLOCK_LAST.swap(now, Ordering::SeqCst) {
            CLOCK_BACKWARDS.fetch_add(1, Ordering::SeqCst);
        }
        ok!(ping.signal(1));
        ok!(pong.wait());
    }
    let back = CLOCK_BACKWARDS.load(Ordering::SeqCst);
    ensure!(back == 0, "the clock went backwards {back} times");
    Ok(())
}
