//! utests for the driver building blocks: threads that own what they are given
//! (`process::spawn_thread_with`) and the server loop that multiplexes an endpoint with
//! notifications (`libhsync::serve`; its IRQ side is exercised by the serial and ps2 suites).

use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;

use libhsync::process::spawn_thread_with;
use libhsync::protocol::{Message, status};
use libhsync::server::EVENT_LABEL;
use libhsync::{Endpoint, Error, Msg, Notification, Rights};

use super::{Ctx, TestFn, TestResult};

/// The suite's tests.
pub const TESTS: &[(&str, TestFn)] = &[
    (
        "thread_with_owns_its_arguments",
        thread_with_owns_its_arguments,
    ),
    (
        "serve_multiplexes_notifications",
        serve_multiplexes_notifications,
    ),
];

/// A closure and a value are moved into the thread (no statics); a refused spawn drops both.
fn thread_with_owns_its_arguments(ctx: &mut Ctx) -> TestResult {
    let n = ok!(Notification::create());
    let theirs = ok!(n.duplicate(Rights::SIGNAL));
    let words: Vec<u64> = (1..=10).collect();
    let offset = 0x100u64;
    ok!(spawn_thread_with(
        move |words: Vec<u64>, _ipc| {
            let _ = theirs.signal(offset + words.iter().sum::<u64>());
        },
        words,
        ctx.prio
    ));
    let got = ok!(n.wait());
    ensure!(
        got == 0x100 + 55,
        "the thread signalled {got:#x}, not 0x137"
    );

    let kept = Arc::new(7u64);
    let moved = Arc::clone(&kept);
    // Priority 200 is over every process's limit: the kernel refuses the thread.
    expect_err!(
        spawn_thread_with(move |v: Arc<u64>, _ipc| drop(v), moved, 200),
        Error::InvalidArgument
    );
    ensure!(
        Arc::strong_count(&kept) == 1,
        "a refused spawn leaked its argument"
    );
    Ok(())
}

/// What the test server answers: the bits its notification handler has seen so far.
fn bits_seen(seen: &mut u64, _badge: u64, req: &mut Message) -> Message {
    if req.label() == EVENT_LABEL {
        // A client's message with an event's label goes here, not to the event's handler.
        return Message::new(status::UNKNOWN_OP);
    }
    let mut m = Message::new(status::OK);
    let _ = m.push_word(*seen);
    m
}

/// A serve loop in a thread of its own: notification bits reach its handler between client
/// requests, and a client cannot pass for the event.
fn serve_multiplexes_notifications(ctx: &mut Ctx) -> TestResult {
    let ep = ok!(Endpoint::create());
    let server = ok!(ep.duplicate(Rights::RECV | Rights::SEND | Rights::DUPLICATE));
    let n = ok!(Notification::create());
    let for_server = ok!(n.duplicate(Rights::WAIT));
    let prio = ctx.prio;
    ok!(spawn_thread_with(
        move |(ep, n): (Endpoint, Notification), mut ipc| {
            let mut seen = 0u64;
            let err = libhsync::serve(&ep)
                .on_notify(n, |seen: &mut u64, bits| *seen |= bits)
                .helper_priority(prio)
                .run(&mut ipc, &mut seen, bits_seen);
            log::error!("selftest: serve loop stopped: {err:?}");
        },
        (server, for_server),
        ctx.prio
    ));
    let ask = || ep.call(Msg::new(1, &[])?).map(|r| (r.label(), r.word(0)));
    let (label, seen) = ok!(ask());
    ensure!(
        label == status::OK && seen == 0,
        "before any signal: {label} {seen:#x}"
    );
    let forged = ok!(ep.call(ok!(Msg::new(EVENT_LABEL, &[0xff]))));
    ensure!(
        forged.label() == status::UNKNOWN_OP,
        "a client's event-labelled call was not sent to dispatch (label {})",
        forged.label()
    );
    ok!(n.signal(0b101));
    // The helper runs when this thread blocks; sleeping hands the CPU over until it delivered.
    let deadline = libhsync::clock() + 2_000_000_000;
    let mut seen = 0;
    while seen != 0b101 && libhsync::clock() < deadline {
        ok!(libhsync::sleep_until(libhsync::clock() + 5_000_000));
        seen = ok!(ask()).1;
    }
    ensure!(seen == 0b101, "the handler saw {seen:#x}, not 0b101");
    ok!(n.signal(0b1000));
    let deadline = libhsync::clock() + 2_000_000_000;
    while seen != 0b1101 && libhsync::clock() < deadline {
        ok!(libhsync::sleep_until(libhsync::clock() + 5_000_000));
        seen = ok!(ask()).1;
    }
    ensure!(
        seen == 0b1101,
        "after the second signal the handler saw {seen:#x}"
    );
    Ok(())
}
