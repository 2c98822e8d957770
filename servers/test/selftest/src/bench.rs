//! Benchmarks (root of the BENCH image): each measures single operations with `rdtsc` after a
//! warm-up and prints one line
//! `[bench] name=N unit=ns median=.. p99=.. min=.. iterations=.. cycles_median=.. cycles_p99=.. cycles_min=..`;
//! `cargo xtask bench` parses them. The TSC rate comes from `clock_read` against `rdtsc` over
//! an interval. With the initfs `bench` file saying `icount` (QEMU `-icount shift=0`, where the
//! TSC counts guest instructions), only the IPC round trip runs, reported in instructions.

use alloc::vec::Vec;

use libhsync::process::{Image, spawn_thread};
use libhsync::{Endpoint, Handle, IpcBuf, Msg, Rights, StartArgs, println, rdtsc};

use crate::roles;

const WARMUP: usize = 10_000;
const ITERATIONS: usize = 100_000;

/// Runs the benchmarks; returns the exit code.
pub fn run(elf: &[u8], mode: &[u8], _args: StartArgs) -> i32 {
    let icount = mode.starts_with(b"icount");
    match bench_all(elf, icount) {
        Ok(()) => {
            println!("[bench] done");
            0
        }
        Err(e) => {
            println!("[bench] error: {e:?}");
            1
        }
    }
}

fn bench_all(elf: &[u8], icount: bool) -> Result<(), libhsync::Error> {
    let prio = (0..hsync_abi::PRIORITY_LEVELS)
        .rev()
        .find(|&p| libhsync::Process::create_empty("prio-probe", p).is_ok())
        .unwrap_or(0);
    let tsc_hz = if icount { 1_000_000_000 } else { tsc_rate() };
    println!("[bench] tsc_hz={tsc_hz}");
    let image = Image::from_bytes(elf)?;

    // IPC between two processes.
    let ep = Endpoint::create()?;
    let child = roles::spawn(
        &image,
        "bench-server",
        roles::BENCH_SERVER,
        &[],
        Some(&ep),
        prio,
    )?;
    let msg = Msg::new(1, &[0])?;
    let samples = measure(|| {
        let _ = ep.call(msg);
    });
    let name = if icount {
        "ipc.call_reply_recv.instructions"
    } else {
        "ipc.call_reply_recv"
    };
    report(
        name,
        if icount { "instructions" } else { "ns" },
        samples,
        tsc_hz,
    );
    let _ = ep.call(Msg::new(0, &[])?);
    let _ = child.process.wait(libhsync::DEADLINE_NEVER);
    if icount {
        return Ok(());
    }

    // The same between two threads of this process.
    let ep2 = Endpoint::create()?;
    let server = ep2.duplicate(Rights::RECV)?;
    fn serve(arg: u64, _ipc: IpcBuf) {
        let ep: Endpoint = Handle::from_raw(hsync_abi::Handle::from_raw(arg));
        roles::bench_server(&ep);
    }
    spawn_thread(serve, server.into_raw().raw(), prio)?;
    let samples = measure(|| {
        let _ = ep2.call(msg);
    });
    report("ipc.call_reply_recv.same_process", "ns", samples, tsc_hz);
    let _ = ep2.call(Msg::new(0, &[])?);

    // The null system call.
    let samples = measure(|| {
        let _ = libhsync::null();
    });
    report("syscall.null", "ns", samples, tsc_hz);

    // Yield ping-pong with a second thread of the same priority that yields in a loop: one
    // sample is this thread's yield, the partner's yield, and back.
    fn spinner(_: u64, _ipc: IpcBuf) {
        loop {
            libhsync::yield_now();
        }
    }
    spawn_thread(spinner, 0, prio)?;
    let samples = measure(libhsync::yield_now);
    report("sched.yield", "ns", samples, tsc_hz);
    Ok(())
}

/// TSC ticks per second, from `clock_read` over about 50 ms.
fn tsc_rate() -> u64 {
    let (c0, t0) = (libhsync::clock(), rdtsc());
    while libhsync::clock() < c0 + 50_000_000 {
        libhsync::yield_now();
    }
    let (c1, t1) = (libhsync::clock(), rdtsc());
    let ns = c1.saturating_sub(c0).max(1) as u128;
    (t1.saturating_sub(t0) as u128 * 1_000_000_000 / ns) as u64
}

/// Per-operation TSC deltas over [`ITERATIONS`], after [`WARMUP`] unmeasured runs.
fn measure(mut op: impl FnMut()) -> Vec<u64> {
    for _ in 0..WARMUP {
        op();
    }
    let mut samples = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let t0 = rdtsc();
        op();
        let t1 = rdtsc();
        samples.push(t1.wrapping_sub(t0));
    }
    samples
}

fn report(name: &str, unit: &str, mut cycles: Vec<u64>, tsc_hz: u64) {
    cycles.sort_unstable();
    let n = cycles.len();
    let at = |q: usize| {
        cycles
            .get((n * q / 100).min(n.saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let (median, p99, min) = (at(50), at(99), cycles.first().copied().unwrap_or(0));
    let to_unit = |c: u64| {
        if unit == "ns" {
            (c as u128 * 1_000_000_000 / tsc_hz.max(1) as u128) as u64
        } else {
            c
        }
    };
    println!(
        "[bench] name={name} unit={unit} median={} p99={} min={} iterations={n} cycles_median={median} cycles_p99={p99} cycles_min={min}",
        to_unit(median),
        to_unit(p99),
        to_unit(min),
    );
}
