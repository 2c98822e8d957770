//! utest for lazy FPU/SSE switching: threads that each keep distinct values in `xmm0..15` and
//! MXCSR (`libhsync::sse`) see them intact across many yields and blocking switches.

use alloc::format;
use core::sync::atomic::{AtomicU64, Ordering};

use libhsync::sse;
use libhsync::sysinfo::yield_now;
use libhsync::{Handle, IpcBuf, Notification, Rights};

use super::{Ctx, TestFn, TestResult};

/// The suite's tests.
pub const TESTS: &[(&str, TestFn)] = &[("fpu_sse_survives_switches", sse_survives_switches)];

/// Yields per thread.
const ROUNDS: u64 = 2000;
/// The seed of each worker, also its notification bit.
const SEEDS: [u64; 2] = [0x1, 0x2];
/// Per worker: 0 = passed, else the failing round + 1.
static FAILED_AT: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

fn worker(arg: u64, _ipc: IpcBuf) {
    let seed = arg & 0xff;
    let n: Notification = Handle::from_raw(hsync_abi::Handle::from_raw(arg >> 8));
    let slot = &FAILED_AT[(seed - 1) as usize];
    sse::load(seed);
    for round in 0..ROUNDS {
        yield_now();
        if !sse::check(seed) {
            slot.store(round + 1, Ordering::SeqCst);
            break;
        }
    }
    let _ = n.signal(seed);
}

fn sse_survives_switches(ctx: &mut Ctx) -> TestResult {
    let n = ok!(Notification::create());
    // The main thread uses SSE too, and blocks while the workers run.
    sse::load(0x3);
    for (i, &seed) in SEEDS.iter().enumerate() {
        FAILED_AT[i].store(0, Ordering::SeqCst);
        let h = ok!(n.duplicate(Rights::SIGNAL)).into_raw().raw();
        ok!(libhsync::process::spawn_thread(
            worker,
            (h << 8) | seed,
            ctx.prio
        ));
    }
    let mut seen = 0;
    while seen != 0x3 {
        seen |= ok!(n.wait());
    }
    for (i, slot) in FAILED_AT.iter().enumerate() {
        let at = slot.load(Ordering::SeqCst);
        ensure!(
            at == 0,
            "thread with seed {} lost its xmm/MXCSR state at round {}",
            SEEDS[i],
            at - 1
        );
    }
    ensure!(
        sse::check(0x3),
        "the main thread lost its xmm/MXCSR state while blocked"
    );
    Ok(())
}
