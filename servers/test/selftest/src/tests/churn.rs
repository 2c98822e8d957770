//! Churn (issue 12): 10,000 spawn/kill cycles of a server process and 10,000 thread
//! create/exit cycles leave every counter at its baseline. The time of the first and the last
//! 1,000 cycles is printed (a figure, not an assertion: benchmarks are never timed tests).

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};

use libhsync::sysinfo::{SystemInfo, heap_info};
use libhsync::{DEADLINE_NEVER, ExitStatus, IpcBuf, PAGE_SIZE};

use super::{Ctx, TestFn, TestResult};
use crate::roles;

/// The suite's tests.
pub const TESTS: &[(&str, TestFn)] = &[
    ("churn_spawn_kill_10000", spawn_kill_10000),
    ("churn_thread_create_exit_10000", threads_10000),
];

const CYCLES: u64 = 10_000;
const WINDOW: u64 = 1_000;

fn snapshot() -> Result<(SystemInfo, u64), String> {
    let s = ok!(libhsync::system_info());
    let h = ok!(heap_info());
    Ok((
        s,
        s.free_frames + h.mapped_bytes / PAGE_SIZE + h.kernel_table_frames,
    ))
}

fn same(before: &(SystemInfo, u64), after: &(SystemInfo, u64)) -> TestResult {
    let (b, a) = (&before.0, &after.0);
    ensure!(
        (a.processes, a.threads, a.objects, after.1)
            == (b.processes, b.threads, b.objects, before.1),
        "counters not back at baseline: before {b:?} ({} frames), after {a:?} ({} frames)",
        before.1,
        after.1
    );
    Ok(())
}

/// Runs `one` `CYCLES` times after a warm-up; prints the first and last 1,000 cycles' time.
fn churn(what: &str, mut one: impl FnMut(u64) -> TestResult) -> TestResult {
    for i in 0..20 {
        one(i)?;
    }
    let before = snapshot()?;
    let (mut first, mut last) = (0, 0);
    let mut t = libhsync::clock();
    for i in 0..CYCLES {
        one(i)?;
        if i + 1 == WINDOW {
            first = libhsync::clock() - t;
        }
        if i + 1 == CYCLES - WINDOW {
            t = libhsync::clock();
        }
    }
    last = last.max(libhsync::clock() - t);
    // The last thread or child may still be on its way out: a moment for the reaper.
    let mut now = snapshot()?;
    for _ in 0..50 {
        if same(&before, &now).is_ok() {
            break;
        }
        ok!(libhsync::sleep_until(libhsync::clock() + 10_000_000));
        now = snapshot()?;
    }
    same(&before, &now)?;
    libhsync::println!(
        "[figure] churn: {what}: first {WINDOW} cycles {} us, last {WINDOW} cycles {} us ({} per mille)",
        first / 1000,
        last / 1000,
        last * 1000 / first.max(1)
    );
    Ok(())
}

fn spawn_kill_10000(ctx: &mut Ctx) -> TestResult {
    churn("spawn/kill", |i| {
        let child = ok!(roles::spawn(
            &ctx.image,
            "churn",
            roles::SLEEP,
            &[i],
            None,
            ctx.prio
        ));
        ok!(child.process.kill());
        let ended = ok!(child.process.wait(DEADLINE_NEVER));
        ensure!(ended.status == ExitStatus::Killed, "child {i}: {ended:?}");
        Ok(())
    })
}

static EXITED: AtomicU64 = AtomicU64::new(0);

fn short_thread(_: u64, _: IpcBuf) {
    EXITED.fetch_add(1, Ordering::Relaxed);
}

fn threads_10000(ctx: &mut Ctx) -> TestResult {
    churn("thread create/exit", |i| {
        let want = EXITED.load(Ordering::Relaxed) + 1;
        let t = ok!(libhsync::process::spawn_thread(short_thread, i, ctx.prio));
        drop(t);
        // Same priority: yielding lets it run to its exit.
        while EXITED.load(Ordering::Relaxed) < want {
            libhsync::sysinfo::yield_now();
        }
        Ok(())
    })
}
