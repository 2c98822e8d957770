//! utests for the IPC fast path (docs/ipc.md), read through the kernel's event counters
//! (`libhsync::sysinfo::kernel_counters`): register-only ping-pong between two processes goes
//! through the fast path and takes no #NM (the lazy FPU never runs for FPU-free code); a thread
//! the fast path parked at its syscall is resumed correctly by everything else — a message that
//! needs the slow path, a kill, a server that dies while its caller is parked.

use alloc::format;

use libhsync::sysinfo::{KernelCounters, kernel_counters};
use libhsync::{DEADLINE_NEVER, Error, ExitStatus, Msg, Rights};

use super::{Ctx, TestFn, TestResult, echo_server};
use crate::roles;

/// The suite's tests.
pub const TESTS: &[(&str, TestFn)] = &[
    ("ipc_fast_path_taken_no_fpu_trap", fast_path_taken),
    ("ipc_fast_path_parked_resumes", parked_resumes),
];

/// Round trips measured.
const ROUNDS: u64 = 2000;

fn counters() -> Result<KernelCounters, alloc::string::String> {
    kernel_counters().map_err(|e| format!("kernel_counters: {e:?}"))
}

/// `ROUNDS` register-only calls to an echo server in another process: (nearly) every call and
/// every `reply_recv` is a fast-path handoff, and neither side takes an #NM.
fn fast_path_taken(ctx: &mut Ctx) -> TestResult {
    let (child, ep) = echo_server(ctx)?;
    // Warm-up: the server's first receive is the general path's.
    ok!(ep.call(ok!(Msg::new(roles::LABEL_ECHO, &[0]))));
    let before = counters()?;
    for i in 0..ROUNDS {
        let r = ok!(ep.call(ok!(Msg::new(roles::LABEL_ECHO, &[i, !i]))));
        ensure!(
            r.regs[..2] == [i + 1, (!i).wrapping_add(1)],
            "round trip {i}: {:?}",
            r.regs
        );
    }
    let after = counters()?;
    let handoffs = after.fast_handoffs - before.fast_handoffs;
    // Two per round trip; a timer tick that made another thread ready may send a few through
    // the general path.
    ensure!(
        (2 * ROUNDS * 95 / 100..=2 * ROUNDS + 8).contains(&handoffs),
        "{handoffs} fast-path handoffs for {ROUNDS} round trips"
    );
    ensure!(
        after.fpu_traps == before.fpu_traps,
        "FPU-free IPC took {} #NM traps",
        after.fpu_traps - before.fpu_traps
    );
    super::stop(child)
}

/// A parked receiver resumed by a slow-path message (words in the IPC buffer, then a handle)
/// and by a kill; a parked caller resumed by its server's death.
fn parked_resumes(ctx: &mut Ctx) -> TestResult {
    let (child, ep) = echo_server(ctx)?;
    let badged = ok!(ep.badged(Rights::SEND, 0xb0d6e));
    for i in 0..4 {
        ok!(ep.call(ok!(Msg::new(roles::LABEL_ECHO, &[i]))));
    }
    // The server is parked in its `reply_recv`; a 6-word message needs the slow path, which
    // resumes it through its parked frame with words 4.. in its IPC buffer.
    let c0 = counters()?;
    let words = [1, 2, 3, 4, 5, 6];
    let msg = ok!(ctx
        .ipc
        .compose::<libhsync::kind::Any>(roles::LABEL_LONG, &words, &[]));
    let r = ok!(ep.call(msg));
    ensure!(r.info.words() == 6, "long reply words {}", r.info.words());
    for (i, &w) in words.iter().enumerate() {
        let got = ctx.ipc.received_word(&r, i);
        ensure!(got == w + 1, "long reply word {i}: {got}");
    }
    let c1 = counters()?;
    ensure!(
        c1.parked_resumes > c0.parked_resumes,
        "the slow-path message did not resume the parked server: {c0:?} -> {c1:?}"
    );
    // The badge reaches a receiver on both paths: fast (register-only) ...
    let b = ok!(badged.call(ok!(Msg::new(roles::LABEL_BADGE, &[]))));
    ensure!(
        b.word(0) == 0xb0d6e,
        "badge on the fast path: {:#x}",
        b.word(0)
    );
    // ... and a handle transfer (slow path) right after.
    let n = ok!(libhsync::Notification::create());
    let theirs = ok!(n.duplicate(Rights::SIGNAL | Rights::TRANSFER));
    let msg = ok!(ctx.ipc.compose(roles::LABEL_HANDLE, &[0x5], &[&theirs]));
    let r = ok!(ep.call(msg));
    ensure!(r.label() == roles::LABEL_HANDLE, "handle reply label");
    ensure!(
        ok!(n.wait()) == 0x5,
        "the transferred notification was not signalled"
    );
    ok!(ep.call(ok!(Msg::new(roles::LABEL_ECHO, &[9]))));
    // Killed while parked in `reply_recv`: it unwinds through its parked frame and ends.
    let c2 = counters()?;
    ok!(child.process.kill());
    let ended = ok!(child.process.wait(DEADLINE_NEVER));
    ensure!(
        ended.status == ExitStatus::Killed,
        "killed: {:?}",
        ended.status
    );
    let c3 = counters()?;
    ensure!(
        c3.parked_resumes > c2.parked_resumes,
        "the kill did not resume the parked server: {c2:?} -> {c3:?}"
    );
    expect_err!(
        ep.call(ok!(Msg::new(roles::LABEL_ECHO, &[1]))),
        Error::PeerDied
    );
    // A caller parked by the fast path, and its server exits without replying.
    let (child, ep) = echo_server(ctx)?;
    ok!(ep.call(ok!(Msg::new(roles::LABEL_ECHO, &[1]))));
    let c4 = counters()?;
    expect_err!(
        ep.call(ok!(Msg::new(roles::LABEL_DIE, &[]))),
        Error::PeerDied
    );
    let c5 = counters()?;
    ensure!(
        c5.parked_resumes > c4.parked_resumes && c5.fast_handoffs > c4.fast_handoffs,
        "the dying server's caller was not parked and resumed: {c4:?} -> {c5:?}"
    );
    ensure!(
        ok!(child.process.wait(DEADLINE_NEVER)).status == ExitStatus::Exited(7),
        "server exit status"
    );
    Ok(())
}
