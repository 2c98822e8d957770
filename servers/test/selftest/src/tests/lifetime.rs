//! Regression tests for issue 12's lifetime findings: a process destroyed without ever ending
//! (its last handle closed) releases its endpoint receive rights, so queued senders get
//! `PeerDied`; a thread started at an unmapped entry is a page fault, not a stack overflow.

use alloc::format;

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
];

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
