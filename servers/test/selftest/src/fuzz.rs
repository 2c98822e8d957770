//! The in-guest system-call fuzzer (issue 12): the root of the FUZZ image (an initfs file
//! `fuzz` holds its configuration), and its worker processes.
//!
//! Each round the root spawns `workers` processes (this image again, role [`ROLE`]), each
//! running `threads` threads that issue `calls` system calls with random and mutated arguments:
//! live, stale and forged handles (and the handles the calls themselves return), kernel,
//! non-canonical and never-mapped pointers, ranges straddling unmapped pages, huge lengths,
//! single flag bits, random numbers; random words and handles in the IPC buffer; IPC between
//! the workers through a shared endpoint, so handles travel between them. Calls that could
//! break this process's own memory are refused by `libhsync::raw::syscall` before they reach
//! the kernel (they are counted apart). Blocking calls are mostly turned into their
//! non-blocking forms; the rest may block, and the root kills a worker that is not done when
//! the round's time is up. After each round the root checks that the kernel's counters
//! (processes, threads, objects, free frames plus heap frames) and its own handle count are
//! back at their baseline.
//!
//! Determinism: the seed fixes every thread's call sequence (each thread's generator is
//! seeded from the run seed, the round and its worker and thread number); how the threads
//! interleave follows the timer, so a replay repeats the calls, not necessarily their order.
//!
//! Output: `[fuzz] start ...`, one `[fuzz] round ...` line per round, `[fuzz] fail ...` for a
//! counter that did not come back, and `[figure] [fuzz] done seed=S rounds=R calls=N refused=M
//! ms=T failures=F`. A kernel panic ends the run with the kernel's report instead.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use hsync_abi::{DEADLINE_NOW, Sysnum, startup};
use libhsync::memory::{Mapping, PROBE_BASE};
use libhsync::process::{self, Image, Spawn};
use libhsync::raw::{self, BadPtr};
use libhsync::sysinfo::heap_info;
use libhsync::{Endpoint, Error, ExitStatus, Frame, IpcBuf, PAGE_SIZE, Rights, StartArgs};

/// The worker role (start word 0).
pub const ROLE: u64 = 0xf022;

/// Most threads per worker.
const MAX_THREADS: usize = 4;
/// Most workers per round.
const MAX_WORKERS: usize = 8;
/// Raw values each thread draws handle arguments from.
const POOL: usize = 24;
/// A round's time limit: a worker still running then is killed.
const ROUND_MS: u64 = 5_000;

/// A run's configuration (the initfs `fuzz` file: `key=value` words).
#[derive(Clone, Copy, Debug)]
struct Config {
    seed: u64,
    /// Rounds to run (when `seconds` is 0) .
    rounds: u64,
    /// Stop starting rounds after this many seconds (0: run `rounds`).
    seconds: u64,
    /// Stop starting rounds once this many calls were made (0: no limit).
    min_calls: u64,
    workers: u64,
    threads: u64,
    /// Calls per thread per round.
    calls: u64,
}

impl Config {
    fn parse(text: &[u8]) -> Config {
        let mut c = Config {
            seed: 1,
            rounds: 1,
            seconds: 0,
            min_calls: 0,
            workers: 3,
            threads: 2,
            calls: 20_000,
        };
        let text = core::str::from_utf8(text).unwrap_or("");
        for word in text.split_whitespace() {
            let Some((k, v)) = word.split_once('=') else {
                continue;
            };
            let v = v
                .strip_prefix("0x")
                .map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok());
            let Some(v) = v else { continue };
            match k {
                "seed" => c.seed = v,
                "rounds" => c.rounds = v,
                "seconds" => c.seconds = v,
                "min_calls" => c.min_calls = v,
                "workers" => c.workers = v.clamp(1, MAX_WORKERS as u64),
                "threads" => c.threads = v.clamp(1, MAX_THREADS as u64),
                "calls" => c.calls = v,
                _ => {}
            }
        }
        c
    }
}

/// xorshift64* with a splitmix64 start: small, fast, and the same on every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(splitmix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of one thread of one worker in one round.
fn thread_seed(seed: u64, round: u64, worker: u64, thread: u64) -> u64 {
    splitmix(seed ^ splitmix(round ^ splitmix(worker << 8 | thread)))
}

/// The counters a round must leave unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Snapshot {
    processes: u64,
    threads: u64,
    objects: u64,
    /// Free frames plus the frames backing the kernel heap and the kernel's page tables (both
    /// keep what they grew to).
    frames: u64,
    /// Handles in the root's own table.
    handles: usize,
}

fn snapshot() -> Result<Snapshot, Error> {
    let s = libhsync::system_info()?;
    let h = heap_info()?;
    let me = libhsync::rt::own_process().ok_or(Error::InvalidHandle)?;
    let handles = libhsync::Handle::<libhsync::kind::Process>::from_raw(me);
    let n = handles.handles(&mut []);
    let _ = handles.into_raw();
    Ok(Snapshot {
        processes: s.processes,
        threads: s.threads,
        objects: s.objects,
        frames: s.free_frames + h.mapped_bytes / PAGE_SIZE + h.kernel_table_frames,
        handles: n?,
    })
}

/// The root of the fuzz image; returns the exit code (0 iff no failure).
pub fn run(me: &[u8], conf: &[u8], prio: u64) -> i32 {
    let c = Config::parse(conf);
    match rounds(me, c, prio) {
        Ok(0) => 0,
        Ok(_) => 1,
        Err(why) => {
            libhsync::println!("[fuzz] fail seed={:#x} setup: {why}", c.seed);
            libhsync::println!(
                "[fuzz] done seed={:#x} rounds=0 calls=0 refused=0 ms=0 failures=1",
                c.seed
            );
            1
        }
    }
}

fn rounds(me: &[u8], c: Config, prio: u64) -> Result<u64, String> {
    let image = Image::from_bytes(me).map_err(|e| format!("image: {e:?}"))?;
    let counts = Frame::create(PAGE_SIZE).map_err(|e| format!("frame: {e:?}"))?;
    let view = Mapping::new_ro(&counts, PAGE_SIZE).map_err(|e| format!("map: {e:?}"))?;
    let ep = Endpoint::create().map_err(|e| format!("endpoint: {e:?}"))?;
    let worker_prio = prio.saturating_sub(1);
    libhsync::println!(
        "[fuzz] start seed={:#x} workers={} threads={} calls={} rounds={} seconds={} min_calls={}",
        c.seed,
        c.workers,
        c.threads,
        c.calls,
        c.rounds,
        c.seconds,
        c.min_calls
    );
    let t0 = libhsync::clock();
    let (mut total, mut refused_total, mut failures, mut round) = (0u64, 0u64, 0u64, 0u64);
    // A short unchecked first round brings this process's own heap and page tables (spawning
    // maps start pages) to their working size; every later round must leave no trace.
    let mut warm_up = true;
    loop {
        let elapsed_s = (libhsync::clock() - t0) / 1_000_000_000;
        let more = if c.seconds > 0 {
            elapsed_s < c.seconds
        } else {
            round < c.rounds
        };
        if !warm_up && ((!more && total >= c.min_calls) || round >= 10_000) {
            break;
        }
        let calls_now = if warm_up { c.calls.min(500) } else { c.calls };
        let base = snapshot().map_err(|e| format!("snapshot: {e:?}"))?;
        let r0 = libhsync::clock();
        let mut children = Vec::with_capacity(c.workers as usize);
        for w in 0..c.workers {
            let child = Spawn::new(&image, "fz-worker")
                .priority(worker_prio)
                .word(ROLE)
                .word(thread_seed(c.seed, round, w, 0))
                .word(calls_now)
                .word(c.threads)
                .word(w)
                .handle(&counts, Rights::READ | Rights::WRITE | Rights::MAP)
                .and_then(|s| {
                    s.handle(
                        &ep,
                        Rights::SEND | Rights::RECV | Rights::TRANSFER | Rights::DUPLICATE,
                    )
                })
                .and_then(|s| s.start())
                .map_err(|e| format!("spawn worker {w}: {e:?}"))?;
            children.push(child);
        }
        let (mut killed, mut faulted) = (0, 0);
        for child in &children {
            let deadline = r0 + ROUND_MS * 1_000_000;
            let ended = match child.process.wait(deadline) {
                Err(Error::TimedOut) => {
                    killed += 1;
                    let _ = child.process.kill();
                    child.process.wait(libhsync::DEADLINE_NEVER)
                }
                other => other,
            };
            if let Ok(e) = ended
                && matches!(e.status, ExitStatus::Faulted(_))
            {
                faulted += 1;
            }
        }
        drop(children);
        let words = view.as_slice();
        let word = |i: usize| {
            words
                .get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        let (mut calls, mut refused) = (0u64, 0u64);
        for i in 0..MAX_WORKERS * MAX_THREADS {
            calls += word(i);
            refused += word(MAX_WORKERS * MAX_THREADS + i);
        }
        if warm_up {
            warm_up = false;
            libhsync::println!("[fuzz] warm-up calls={calls} (not counted, not checked)");
            zero(&counts);
            continue;
        }
        total += calls;
        refused_total += refused;
        // Dead threads go at the next switches: give the counters a moment.
        let mut now = snapshot().map_err(|e| format!("snapshot: {e:?}"))?;
        for _ in 0..50 {
            if now == base {
                break;
            }
            let _ = libhsync::sleep_until(libhsync::clock() + 10_000_000);
            now = snapshot().map_err(|e| format!("snapshot: {e:?}"))?;
        }
        let ms = (libhsync::clock() - r0) / 1_000_000;
        if now != base {
            failures += 1;
            libhsync::println!(
                "[fuzz] fail seed={:#x} round={round}: counters not back at baseline: before {base:?}, after {now:?}",
                c.seed
            );
        }
        libhsync::println!(
            "[fuzz] round={round} seed={:#x} calls={calls} refused={refused} ms={ms} killed={killed} faulted={faulted} baseline={}",
            c.seed,
            if now == base { "ok" } else { "LEAK" }
        );
        // Clear the counters for the next round (the workers wrote them through their own
        // mappings; this view is read-only, so a fresh frame would do too: zero by rewriting).
        zero(&counts);
        round += 1;
    }
    let ms = (libhsync::clock() - t0) / 1_000_000;
    libhsync::println!(
        "[figure] [fuzz] done seed={:#x} rounds={round} calls={total} refused={refused_total} ms={ms} failures={failures}",
        c.seed
    );
    Ok(failures)
}

fn zero(counts: &Frame) {
    if let Ok(mut m) = Mapping::new_rw(counts, PAGE_SIZE) {
        m.as_mut_slice().fill(0);
    }
}

// ---------------------------------------------------------------------------------------------
// Workers

/// Calls made by each thread of this worker (published to the shared page by thread 0).
static CALLS: [AtomicU64; MAX_THREADS] = [const { AtomicU64::new(0) }; MAX_THREADS];
/// Calls `raw::syscall` refused (they would have broken this process's memory).
static REFUSED: [AtomicU64; MAX_THREADS] = [const { AtomicU64::new(0) }; MAX_THREADS];
/// The worker's start words: seed, calls, threads, index.
static START: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// The shared endpoint's and counter frame's raw handles.
static SHARED: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

/// A worker process: handle 0 = the counter frame, 1 = the shared endpoint; words: role,
/// seed, calls, threads, index.
pub fn worker(mut args: StartArgs) -> i32 {
    let (Some(frame), Some(ep)) = (
        args.take_handle::<libhsync::kind::Frame>(0),
        args.take_handle::<libhsync::kind::Endpoint>(1),
    ) else {
        return 3;
    };
    for (i, slot) in START.iter().enumerate() {
        slot.store(args.word(i + 1).unwrap_or(0), Ordering::Relaxed);
    }
    let Ok(mut page) = Mapping::new_rw(&frame, PAGE_SIZE) else {
        return 4;
    };
    SHARED[0].store(frame.into_raw().raw(), Ordering::Relaxed);
    SHARED[1].store(ep.into_raw().raw(), Ordering::Relaxed);
    let threads = START[2].load(Ordering::Relaxed) as usize;
    for t in 1..threads.min(MAX_THREADS) {
        let _ = process::spawn_thread(fuzz_thread, t as u64, 0);
    }
    let calls = START[1].load(Ordering::Relaxed);
    let mut rng = Rng::new(thread_seed(START[0].load(Ordering::Relaxed), 0, 0, 0));
    let mut pool = initial_pool();
    let mut i = 0;
    while i < calls {
        // Thread 0 publishes every thread's counts now and then (and at the end).
        let chunk = (calls - i).min(256);
        for _ in 0..chunk {
            step(&mut rng, &mut pool, &mut args.ipc, 0);
        }
        i += chunk;
        publish(&mut page);
    }
    // Wait (a little) for the other threads to finish, publishing as they go; a thread still
    // blocked then ends with the process.
    for _ in 0..40 {
        publish(&mut page);
        let done = (1..threads.min(MAX_THREADS)).all(|t| CALLS[t].load(Ordering::Relaxed) >= calls);
        if done {
            break;
        }
        let _ = libhsync::sleep_until(libhsync::clock() + 5_000_000);
    }
    publish(&mut page);
    0
}

fn publish(page: &mut Mapping) {
    let w = START[3].load(Ordering::Relaxed) as usize % MAX_WORKERS;
    let bytes = page.as_mut_slice();
    for t in 0..MAX_THREADS {
        for (base, src) in [(0, &CALLS), (MAX_WORKERS * MAX_THREADS, &REFUSED)] {
            let at = (base + w * MAX_THREADS + t) * 8;
            if let Some(dst) = bytes.get_mut(at..at + 8) {
                dst.copy_from_slice(&src[t].load(Ordering::Relaxed).to_le_bytes());
            }
        }
    }
}

fn fuzz_thread(t: u64, mut ipc: IpcBuf) {
    let t = t as usize % MAX_THREADS;
    let seed = START[0].load(Ordering::Relaxed);
    let mut rng = Rng::new(thread_seed(seed, 0, 0, t as u64));
    let mut pool = initial_pool();
    let calls = START[1].load(Ordering::Relaxed);
    for _ in 0..calls {
        step(&mut rng, &mut pool, &mut ipc, t);
    }
}

fn initial_pool() -> [u64; POOL] {
    let mut pool = [0u64; POOL];
    pool[0] = SHARED[0].load(Ordering::Relaxed);
    pool[1] = SHARED[1].load(Ordering::Relaxed);
    pool[2] = libhsync::rt::own_process().map_or(0, |h| h.raw());
    pool[3] = hsync_abi::Handle::new(0x00ab_cdef, 77).raw();
    pool[4] = u64::MAX;
    pool
}

/// The calls whose first result is a new handle (kept in the pool for later calls).
fn makes_handle(nr: Sysnum) -> bool {
    matches!(
        nr,
        Sysnum::EndpointCreate
            | Sysnum::NotificationCreate
            | Sysnum::FrameCreate
            | Sysnum::ProcessCreate
            | Sysnum::ThreadCreate
            | Sysnum::HandleDuplicate
            | Sysnum::HandleGrant
            | Sysnum::IpcReplySave
            | Sysnum::IoportCreate
            | Sysnum::IrqCreate
            | Sysnum::FrameCreatePhysical
    )
}

fn arg(rng: &mut Rng, pool: &[u64; POOL], ipc: &IpcBuf) -> u64 {
    const PAGE: u64 = PAGE_SIZE;
    match rng.below(16) {
        0..=4 => pool[rng.below(POOL as u64) as usize],
        5 => rng.next(),
        6 => rng.below(16),
        7 => [0, 1, u64::MAX, 1 << 63, PAGE, PAGE - 1, 16 * PAGE][rng.below(7) as usize],
        8 => BadPtr::ALL[rng.below(BadPtr::ALL.len() as u64) as usize].addr(),
        // Straddling: the last bytes of a page next to an unmapped one.
        9 => PROBE_BASE + rng.below(16) * PAGE + [0, PAGE - 8, PAGE - 1][rng.below(3) as usize],
        10 => 1u64 << rng.below(64),
        11 => rng.next() & 0xff,
        12 => ipc.addr() + rng.below(2 * PAGE),
        13 => startup::USER_END - rng.below(4) * PAGE - rng.below(16),
        14 => hsync_abi::Handle::new(rng.below(64) as u32, 1 + rng.below(3) as u32).raw(),
        _ => libhsync::clock().wrapping_add(rng.below(2_000_000)),
    }
}

fn step(rng: &mut Rng, pool: &mut [u64; POOL], ipc: &mut IpcBuf, t: usize) {
    let nr = if rng.one_in(8) {
        match rng.below(3) {
            0 => rng.below(80),
            1 => rng.next(),
            _ => 0,
        }
    } else {
        Sysnum::ALL[rng.below(Sysnum::ALL.len() as u64) as usize].raw()
    };
    let mut a = [0u64; 6];
    for x in &mut a {
        *x = arg(rng, pool, ipc);
    }
    let own = pool[2];
    // Thread 0 (which publishes the counts) never blocks; the others rarely do.
    let may_block = t != 0 && rng.one_in(500);
    let nr = match Sysnum::try_from(nr) {
        // Mostly the non-blocking forms: a blocked thread makes no more calls.
        Ok(Sysnum::IpcRecv) if !may_block => Sysnum::IpcTryRecv.raw(),
        Ok(Sysnum::IpcSend | Sysnum::IpcCall) if !may_block => Sysnum::IpcTrySend.raw(),
        Ok(Sysnum::IpcReplyRecv) if !may_block => Sysnum::IpcReply.raw(),
        Ok(Sysnum::NotificationWait) if !may_block => Sysnum::NotificationPoll.raw(),
        Ok(Sysnum::ProcessWait) => {
            if !may_block {
                a[2] = DEADLINE_NOW;
            }
            nr
        }
        Ok(Sysnum::SleepUntil) => {
            a[0] = libhsync::clock() + rng.below(500_000);
            nr
        }
        // Suicide (killing this process or powering off) stays rare.
        Ok(Sysnum::ProcessKill) if a[0] == own && !rng.one_in(5000) => {
            a[0] = pool[1];
            nr
        }
        Ok(Sysnum::SystemPower) => Sysnum::Null.raw(),
        // A log line that could be printed stays short (serial output is slow).
        Ok(Sysnum::DebugLog) => {
            if a[1] <= hsync_abi::DEBUG_LOG_MAX {
                a[1] &= 7;
            }
            nr
        }
        _ => nr,
    };
    // Random words and handles ride along in the IPC buffer.
    if rng.one_in(4) {
        for i in 0..4 {
            ipc.set_handle(
                i,
                hsync_abi::Handle::from_raw(pool[rng.below(POOL as u64) as usize]),
            );
        }
        for i in 0..8 {
            ipc.set_word(4 + i * 7, rng.next());
        }
    }
    match raw::syscall(nr, a) {
        Ok(r) => {
            if let (Ok(out), Ok(s)) = (r.result(), Sysnum::try_from(nr))
                && makes_handle(s)
            {
                let slot = 5 + rng.below(POOL as u64 - 5) as usize;
                pool[slot] = out[0];
            }
            // A handle received over IPC joins the pool too.
            if r.status == 0
                && matches!(
                    Sysnum::try_from(nr),
                    Ok(Sysnum::IpcTryRecv | Sysnum::IpcRecv)
                )
            {
                pool[5 + rng.below(POOL as u64 - 5) as usize] = ipc.handle(0).raw();
            }
        }
        Err(raw::Refused) => {
            REFUSED[t].fetch_add(1, Ordering::Relaxed);
        }
    }
    // Now and then a thread ends itself (never thread 0, which publishes the counts).
    if t != 0 && rng.one_in(200_000) {
        CALLS[t].fetch_add(1, Ordering::Relaxed);
        process::thread_exit();
    }
    CALLS[t].fetch_add(1, Ordering::Relaxed);
}
