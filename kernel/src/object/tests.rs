//! In-kernel tests of objects, handle tables and the scheduler (kernel threads only; the user
//! test programs cover the syscalls end to end).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hsync_abi::{Error, ExitStatus, ObjectKind, Rights};
use spin::Mutex;

use super::thread::{Block, Wake};
use super::{Endpoint, KObject, Notification, Process, live, live_total};
use crate::ensure;
use crate::ktest::{KTest, TestResult};
use crate::sched;

/// The tests.
pub const TESTS: &[KTest] = &[
    KTest {
        name: "object::live_counters_follow_references",
        run: live_counters_follow_references,
    },
    KTest {
        name: "object::process_table_and_end_release_everything",
        run: process_table_and_end_release_everything,
    },
    KTest {
        name: "sched::two_kernel_threads_round_robin",
        run: two_kernel_threads_round_robin,
    },
    KTest {
        name: "sched::block_and_wake",
        run: block_and_wake,
    },
    KTest {
        name: "sched::sleep_until_deadline",
        run: sleep_until_deadline,
    },
    KTest {
        name: "sched::notification_wakes_waiter",
        run: notification_wakes_waiter,
    },
    KTest {
        name: "sched::thread_churn_returns_frames",
        run: thread_churn_returns_frames,
    },
];

/// Yields until `done` or about a second of yields/sleeps has passed.
fn wait_for(done: impl Fn() -> bool) -> bool {
    let deadline = crate::arch::uptime_ns() + 2_000_000_000;
    while !done() {
        if crate::arch::uptime_ns() > deadline {
            return false;
        }
        sched::yield_now();
        let _ = sched::sleep_until(crate::arch::uptime_ns() + 1_000_000);
    }
    true
}

fn live_counters_follow_references() -> TestResult {
    let (ep0, n0, all0) = (
        live(ObjectKind::Endpoint),
        live(ObjectKind::Notification),
        live_total(),
    );
    let ep = Arc::new(Endpoint::new());
    let n = Arc::new(Notification::new());
    let copy = KObject::Endpoint(ep.clone());
    ensure!(
        live(ObjectKind::Endpoint) == ep0 + 1,
        "endpoint not counted"
    );
    ensure!(
        live(ObjectKind::Notification) == n0 + 1,
        "notification not counted"
    );
    drop(ep);
    ensure!(
        live(ObjectKind::Endpoint) == ep0 + 1,
        "endpoint died with a reference left"
    );
    drop(copy);
    drop(n);
    ensure!(
        live(ObjectKind::Endpoint) == ep0,
        "endpoint outlived its last reference"
    );
    ensure!(live_total() == all0, "total {} != {all0}", live_total());
    Ok(())
}

fn process_table_and_end_release_everything() -> TestResult {
    let (p0, all0) = (live(ObjectKind::Process), live_total());
    let free0 = crate::mm::pmm::stats().free;
    {
        let p = Process::new("ktest", 5).map_err(|e| alloc::format!("{e:?}"))?;
        let mut table = p.handles.lock();
        let ep = KObject::Endpoint(Arc::new(Endpoint::new()));
        let h = table
            .insert(ep, ObjectKind::Endpoint.all_rights())
            .map_err(|e| alloc::format!("{e:?}"))?;
        let d = table
            .duplicate(h, Rights::SEND, 7)
            .map_err(|e| alloc::format!("{e:?}"))?;
        ensure!(
            table.inspect(d).ok() == Some((ObjectKind::Endpoint, Rights::SEND, 7)),
            "badge/rights"
        );
        ensure!(
            matches!(
                table.get_kind(d, ObjectKind::Process, Rights::empty()),
                Err(Error::WrongKind)
            ),
            "kind check"
        );
        // A self-reference: only `end` (drain) breaks it.
        table
            .insert(KObject::Process(p.clone()), Rights::WAIT)
            .map_err(|e| alloc::format!("{e:?}"))?;
        drop(table);
        ensure!(live(ObjectKind::Process) == p0 + 1, "process not counted");
        p.end(ExitStatus::Exited(3), None);
        ensure!(p.handles.lock().is_empty(), "table not drained");
        ensure!(p.aspace.lock().is_none(), "address space kept");
        ensure!(
            p.ending().map(|e| e.status) == Some(ExitStatus::Exited(3)),
            "status"
        );
        p.end(ExitStatus::Killed, None);
        ensure!(
            p.ending().map(|e| e.status) == Some(ExitStatus::Exited(3)),
            "second end changed the status"
        );
    }
    ensure!(live(ObjectKind::Process) == p0, "process leaked");
    ensure!(
        live_total() == all0,
        "objects leaked: {} != {all0}",
        live_total()
    );
    let free1 = crate::mm::pmm::stats().free;
    ensure!(free1 == free0, "frames leaked: free {free0} -> {free1}");
    Ok(())
}

fn two_kernel_threads_round_robin() -> TestResult {
    static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    static DONE: AtomicU32 = AtomicU32::new(0);
    LOG.lock().clear();
    DONE.store(0, Ordering::SeqCst);
    let body = |tag: u8| {
        move || {
            for _ in 0..4 {
                LOG.lock().push(tag);
                sched::yield_now();
            }
            DONE.fetch_add(1, Ordering::SeqCst);
        }
    };
    // Above the boot thread, so they run as soon as it blocks and alternate among themselves.
    let prio = sched::BOOT_PRIORITY + 1;
    let a = sched::spawn_kernel(prio, body(b'a')).map_err(|e| alloc::format!("{e:?}"))?;
    let b = sched::spawn_kernel(prio, body(b'b')).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(
        wait_for(|| DONE.load(Ordering::SeqCst) == 2),
        "threads did not finish"
    );
    let log = LOG.lock().clone();
    ensure!(
        log == b"abababab",
        "schedule was {:?}",
        core::str::from_utf8(&log)
    );
    ensure!(wait_for(|| a.is_dead() && b.is_dead()), "threads not dead");
    Ok(())
}

fn block_and_wake() -> TestResult {
    static STAGE: AtomicU64 = AtomicU64::new(0);
    STAGE.store(0, Ordering::SeqCst);
    let t = sched::spawn_kernel(sched::BOOT_PRIORITY, || {
        STAGE.store(1, Ordering::SeqCst);
        if let Wake::Bits(b) = sched::block(Block::Kernel) {
            STAGE.store(b, Ordering::SeqCst);
        }
    })
    .map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(
        wait_for(|| STAGE.load(Ordering::SeqCst) == 1),
        "thread did not run"
    );
    ensure!(
        wait_for(|| matches!(t.inner.lock().state, super::thread::State::Blocked(_))),
        "not blocked"
    );
    ensure!(
        sched::wake_if(&t, |b| matches!(b, Block::Kernel), Wake::Bits(42)),
        "wake refused"
    );
    ensure!(
        !sched::wake_if(&t, |b| matches!(b, Block::Kernel), Wake::Bits(1)),
        "woke twice"
    );
    ensure!(
        wait_for(|| STAGE.load(Ordering::SeqCst) == 42),
        "wake result lost"
    );
    Ok(())
}

fn sleep_until_deadline() -> TestResult {
    let t0 = crate::arch::uptime_ns();
    let ticks0 = sched::ticks();
    sched::sleep_until(t0 + 20_000_000).map_err(|e| alloc::format!("{e:?}"))?;
    let t1 = crate::arch::uptime_ns();
    ensure!(t1 >= t0 + 20_000_000, "woke early: {} ns", t1 - t0);
    ensure!(sched::ticks() > ticks0, "no timer tick while sleeping");
    Ok(())
}

fn notification_wakes_waiter() -> TestResult {
    static GOT: AtomicU64 = AtomicU64::new(0);
    GOT.store(0, Ordering::SeqCst);
    let n = Arc::new(Notification::new());
    let n2 = n.clone();
    sched::spawn_kernel(sched::BOOT_PRIORITY, move || {
        let bits = {
            let mut s = n2.state.lock();
            let b = core::mem::take(&mut s.bits);
            if b == 0 {
                s.waiters.push_back(sched::current());
            }
            b
        };
        let bits = if bits != 0 {
            bits
        } else {
            match sched::block(Block::Notification(n2.clone())) {
                Wake::Bits(b) => b,
                _ => u64::MAX,
            }
        };
        GOT.store(bits, Ordering::SeqCst);
    })
    .map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(
        wait_for(|| !n.state.lock().waiters.is_empty()),
        "waiter never blocked"
    );
    n.signal(0b101);
    ensure!(
        wait_for(|| GOT.load(Ordering::SeqCst) != 0),
        "waiter not woken"
    );
    ensure!(
        GOT.load(Ordering::SeqCst) == 0b101,
        "bits {:#x}",
        GOT.load(Ordering::SeqCst)
    );
    ensure!(n.take() == 0, "bits not cleared");
    Ok(())
}

fn thread_churn_returns_frames() -> TestResult {
    static DONE: AtomicU32 = AtomicU32::new(0);
    let round = || -> Result<(), alloc::string::String> {
        DONE.store(0, Ordering::SeqCst);
        for _ in 0..20 {
            drop(
                sched::spawn_kernel(sched::BOOT_PRIORITY, || {
                    DONE.fetch_add(1, Ordering::SeqCst);
                })
                .map_err(|e| alloc::format!("{e:?}"))?,
            );
        }
        ensure!(
            wait_for(|| DONE.load(Ordering::SeqCst) == 20),
            "threads did not run"
        );
        // Let the last one be reaped.
        sched::yield_now();
        Ok(())
    };
    round()?;
    let (free0, threads0) = (crate::mm::pmm::stats().free, live(ObjectKind::Thread));
    round()?;
    let (free1, threads1) = (crate::mm::pmm::stats().free, live(ObjectKind::Thread));
    ensure!(
        threads1 == threads0,
        "threads leaked: {threads0} -> {threads1}"
    );
    ensure!(free1 == free0, "frames leaked: {free0} -> {free1}");
    Ok(())
}
