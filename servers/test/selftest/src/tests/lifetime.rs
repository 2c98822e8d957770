//! Object lifetimes: a process destroyed without ever ending
//! (its last handle closed) releases its endpoint receive rights, so queued senders get
//! `PeerDied`; a thread started at an unmapped entry is a page fault, not a stack overflow;
//! processes held only by their own handles are collected; a failed spawn leaves nothing.

use alloc::format;
use alloc::string::String;

use libhsync::{
    DEADLINE_NEVER, Endpoint, Error, ExitStatus, FaultKind, Msg, ObjectKind, Process, Rights,
    Thread,
};

use super::peer_death::{GOT_PEER_DIED, start_blocked_sender};
use super::{Ctx, TestFn, TestResult};

/// The suite's tests.
pub const TESTS: &[(&str, TestFn)] = &[
    (
        "lifetime_dropped_process_releases_recv",
        dropped_process_releases_recv,
    ),
    ("lifetime_unmapped_entry_is_page_fault", unmapped_entry),
    (
        "lifetime_self_held_processes_collected",
        self_held_collected,
    ),
    (
        "lifetime_spawn_failure_leaves_nothing",
        spawn_failure_leaves_nothing,
    ),
];

fn counts() -> Result<(u64, u64, u64), String> {
    let i = ok!(libhsync::system_info());
    Ok((i.processes, i.threads, i.objects))
}

/// 20 unstarted processes, each holding a handle to itself and to its own thread: once our
/// handles close, nothing outside references them, and the kernel ends them.
fn self_held_collected(ctx: &mut Ctx) -> TestResult {
    let before = counts()?;
    for _ in 0..20 {
        let p = ok!(Process::create_empty("self-held", ctx.prio));
        ok!(p.grant(&p, ObjectKind::Process.all_rights()));
        let t = ok!(Thread::create_in(&p, 0x40_0000, 0x10_0000, 0, ctx.prio));
        ok!(p.grant(&t, ObjectKind::Thread.all_rights()));
        ok!(t.close());
        ok!(p.close());
    }
    let after = counts()?;
    ensure!(
        after == before,
        "(processes, threads, objects) {before:?} before, {after:?} after"
    );
    Ok(())
}

/// A spawn that fails half-way (a handle it cannot grant) leaves no process behind.
fn spawn_failure_leaves_nothing(ctx: &mut Ctx) -> TestResult {
    let forged: Endpoint = libhsync::Handle::from_raw(super::FORGED);
    let before = counts()?;
    let r = libhsync::process::Spawn::new(&ctx.image, "half")
        .priority(ctx.prio)
        .handle(&forged, Rights::SEND)
        .and_then(|s| s.start());
    let _ = forged.into_raw();
    expect_err!(r.map(|_| ()), Error::InvalidHandle);
    let after = counts()?;
    ensure!(
        after == before,
        "(processes, threads, objects) {before:?} before, {after:?} after"
    );
    Ok(())
}

/// The only RECV handle sits in an unstarted, empty process; closing our handle to that
/// process destroys it, which must wake the queued caller with `PeerDied`.
fn dropped_process_releases_recv(ctx: &mut Ctx) -> TestResult {
    let ep = ok!(Endpoint::create());
    let holder = ok!(Process::create_empty("recv-holder", ctx.prio));
    ok!(holder.grant(&ep, ObjectKind::Endpoint.all_rights()));
    let sender = ok!(ep.duplicate(Rights::SEND | Rights::DUPLICATE));
    ok!(ep.close());
    let n = start_blocked_sender(ctx, ok!(sender.duplicate(Rights::SEND)), true)?;
    ok!(holder.close());
    ensure!(
        ok!(n.wait()) == GOT_PEER_DIED,
        "the queued caller did not get PeerDied"
    );
    expect_err!(sender.call(ok!(Msg::new(1, &[]))), Error::PeerDied);
    Ok(())
}

/// Entry and stack pointer in the same unmapped page: the fetch faults first.
fn unmapped_entry(ctx: &mut Ctx) -> TestResult {
    let p = ok!(Process::create_empty("bad-entry", ctx.prio));
    let t = ok!(Thread::create_in(&p, 0x40_0000, 0x40_1000, 0, ctx.prio));
    ok!(t.start(0, 0));
    let ended = ok!(p.wait(DEADLINE_NEVER));
    ensure!(
        ended.status == ExitStatus::Faulted(FaultKind::PageFault),
        "ended {:?}",
        ended.status
    );
    let rec = ended.fault.ok_or("no fault record")?;
    ensure!(
        rec.rip == 0x40_0000 && rec.address == 0x40_0000,
        "record {rec:?}"
    );
    Ok(())
}
