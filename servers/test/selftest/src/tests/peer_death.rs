//! Peer death on the receive side: senders and callers queued on an endpoint wake with
//! `PeerDied` when the last handle that could receive on it goes away — closed by its holder,
//! or released because the holding process died — and later sends fail with it at once.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use libhsync::{Endpoint, Error, Msg, Notification, Rights};

use super::{Ctx, TestResult};
use crate::roles;

/// Bits the blocked helper thread signals with its outcome.
pub(super) const GOT_PEER_DIED: u64 = 1;
const GOT_OTHER: u64 = 2;

/// Helper thread: calls (or sends, unless `call`) once on `ep` and signals the outcome on `n`.
fn blocked_sender(n: &Notification, ep: &Endpoint, call: bool) {
    let r = match Msg::new(1, &[1]) {
        Ok(m) if call => ep.call(m).map(|_| ()),
        Ok(m) => ep.send(m),
        Err(e) => Err(e),
    };
    let bits = match r {
        Err(Error::PeerDied) => GOT_PEER_DIED,
        _ => GOT_OTHER,
    };
    let _ = n.signal(bits);
}

fn still_waiting(n: &Notification) -> bool {
    matches!(n.poll(), Err(Error::WouldBlock))
}

/// Starts a helper that blocks sending on `ep` (a SEND handle it takes over); returns the
/// notification it reports on.
pub(super) fn start_blocked_sender(
    ctx: &Ctx,
    ep: Endpoint,
    call: bool,
) -> Result<Notification, String> {
    let n = ok!(Notification::create());
    let theirs = ok!(n.duplicate(Rights::SIGNAL));
    let started = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&started);
    ok!(libhsync::process::spawn_thread_with(
        move |(n, ep): (Notification, Endpoint), _ipc| {
            flag.store(true, Ordering::Relaxed);
            blocked_sender(&n, &ep, call);
        },
        (theirs, ep),
        ctx.prio
    ));
    // Same priority, one CPU: sleeping lets the helper run until it blocks in the endpoint.
    ok!(libhsync::sleep_until(libhsync::clock() + 20_000_000));
    ensure!(started.load(Ordering::Relaxed), "the helper did not start");
    ensure!(
        still_waiting(&n),
        "the helper returned before anything closed the endpoint"
    );
    Ok(n)
}

/// The last RECV handle is closed by its owner while a caller and a sender wait.
pub fn ipc_recv_close_wakes_senders(ctx: &mut Ctx) -> TestResult {
    let ep = ok!(Endpoint::create());
    let call_n = start_blocked_sender(ctx, ok!(ep.duplicate(Rights::SEND)), true)?;
    let send_n = start_blocked_sender(ctx, ok!(ep.duplicate(Rights::SEND)), false)?;
    let keep = ok!(ep.duplicate(Rights::SEND | Rights::RECV));
    let sender_only = ok!(ep.duplicate(Rights::SEND));
    ok!(ep.close());
    ensure!(
        still_waiting(&call_n) && still_waiting(&send_n),
        "woken while a RECV handle still existed"
    );
    // Giving up RECV in place (restrict) counts like closing.
    ok!(keep.restrict(Rights::SEND));
    ensure!(
        ok!(call_n.wait()) == GOT_PEER_DIED,
        "the queued caller did not get PeerDied"
    );
    ensure!(
        ok!(send_n.wait()) == GOT_PEER_DIED,
        "the queued sender did not get PeerDied"
    );
    expect_err!(sender_only.call(ok!(Msg::new(1, &[]))), Error::PeerDied);
    expect_err!(sender_only.send(ok!(Msg::new(1, &[]))), Error::PeerDied);
    Ok(())
}

/// The only RECV handle belongs to a process that is killed while a caller waits.
pub fn ipc_receiver_death_wakes_senders(ctx: &mut Ctx) -> TestResult {
    let ep = ok!(Endpoint::create());
    let child = ok!(roles::spawn(
        &ctx.image,
        "recv-holder",
        roles::SLEEP,
        &[],
        Some(&ep),
        ctx.prio
    ));
    let sender = ok!(ep.duplicate(Rights::SEND | Rights::DUPLICATE));
    ok!(ep.close());
    let n = start_blocked_sender(ctx, ok!(sender.duplicate(Rights::SEND)), true)?;
    ok!(child.process.kill());
    ok!(child.process.wait(libhsync::DEADLINE_NEVER));
    ensure!(
        ok!(n.wait()) == GOT_PEER_DIED,
        "the queued caller did not get PeerDied"
    );
    expect_err!(sender.call(ok!(Msg::new(1, &[]))), Error::PeerDied);
    Ok(())
}
