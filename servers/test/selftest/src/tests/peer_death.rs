//! Peer death on the receive side: senders and callers queued on an endpoint wake with
//! `PeerDied` when the last handle that could receive on it goes away — closed by its holder,
//! or released because the holding process died — and later sends fail with it at once.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};

use libhsync::{Endpoint, Error, Handle, IpcBuf, Msg, Notification, Rights};

use super::{Ctx, TestResult};
use crate::roles;

/// Bits the blocked helper thread signals with its outcome.
pub(super) const GOT_PEER_DIED: u64 = 1;
const GOT_OTHER: u64 = 2;

/// The notification the next helper reports on (its raw handle), read by the helper as it
/// starts; [`start_blocked_sender`] waits for it, so helpers never share one.
static REPORT_TO: AtomicU64 = AtomicU64::new(0);
/// Set in the helper's argument: use `call` (else `send`).
const CALL: u64 = 1;

/// Helper thread: `arg` is a SEND endpoint handle shifted left by one, plus [`CALL`]; it calls
/// or sends once and signals the outcome.
fn blocked_sender(arg: u64, _ipc: IpcBuf) {
    let n: Notification = Handle::from_raw(hsync_abi::Handle::from_raw(
        REPORT_TO.swap(0, Ordering::Relaxed),
    ));
    let ep: Endpoint = Handle::from_raw(hsync_abi::Handle::from_raw(arg >> 1));
    let r = match Msg::new(1, &[1]) {
        Ok(m) if arg & CALL != 0 => ep.call(m).map(|_| ()),
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
    let e = ep.into_raw().raw();
    ensure!(e >> 63 == 0, "handle value too wide");
    REPORT_TO.store(theirs.into_raw().raw(), Ordering::Relaxed);
    let arg = e << 1 | if call { CALL } else { 0 };
    ok!(libhsync::process::spawn_thread(
        blocked_sender,
        arg,
        ctx.prio
    ));
    // Same priority, one CPU: sleeping lets the helper run until it blocks in the endpoint.
    ok!(libhsync::sleep_until(libhsync::clock() + 20_000_000));
    ensure!(
        REPORT_TO.load(Ordering::Relaxed) == 0,
        "the helper did not start"
    );
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
