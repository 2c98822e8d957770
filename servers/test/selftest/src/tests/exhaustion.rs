//! Memory exhaustion: a process that takes every frame it can leaves
//! the kernel its heap reserve, so further system calls end in `OutOfMemory`, never in a kernel
//! panic; a huge image is parsed in place, so a failed `process_create` leaves no memory behind.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use libhsync::sysinfo::{HeapInfo, SystemInfo, heap_info};
use libhsync::{Endpoint, Error, Frame, Notification, PAGE_SIZE, Process, Rights};

use super::{Ctx, TestFn, TestResult};

/// The suite's tests.
pub const TESTS: &[(&str, TestFn)] = &[
    (
        "exhaustion_every_frame_then_syscalls",
        every_frame_then_syscalls,
    ),
    ("exhaustion_huge_zero_image_is_bad_elf", huge_zero_image),
];

fn counters() -> Result<(SystemInfo, HeapInfo), String> {
    Ok((ok!(libhsync::system_info()), ok!(heap_info())))
}

/// Frames that are free or back the kernel heap: the heap keeps what it grew to (below its
/// highest allocation), so leak checks count both.
fn free_or_heap(s: &SystemInfo, h: &HeapInfo) -> u64 {
    s.free_frames + h.mapped_bytes / PAGE_SIZE
}

/// One round: 1,000 handles, every frame taken, then 3,000 rounds of allocating calls.
/// Returns how many calls failed with `OutOfMemory` and how many succeeded.
fn eat_and_call(ctx: &Ctx) -> Result<(u64, u64), String> {
    let mut eps: Vec<Endpoint> = Vec::with_capacity(1000);
    for _ in 0..1000 {
        eps.push(ok!(Endpoint::create()));
    }
    // Everything allocated below fits in these: no user-heap growth once frames are gone.
    let mut frames: Vec<Frame> = Vec::with_capacity(64);
    let mut made: Vec<Notification> = Vec::with_capacity(64);
    let (s, h) = counters()?;
    let mut pages = s.free_frames.saturating_sub(h.reserve_frames);
    while pages > 0 && frames.len() < frames.capacity() {
        match Frame::create(pages * PAGE_SIZE) {
            Ok(f) => frames.push(f),
            Err(Error::OutOfMemory) => pages /= 2,
            Err(e) => return Err(format!("frame_create({pages} pages): {e:?}")),
        }
    }
    let (mut oom, mut ok) = (0u64, 0u64);
    let mut tally = |r: Result<(), Error>| -> TestResult {
        match r {
            Ok(()) => ok += 1,
            Err(Error::OutOfMemory) | Err(Error::HandleTableFull) => oom += 1,
            Err(e) => return Err(format!("unexpected {e:?}")),
        }
        Ok(())
    };
    for i in 0..3000u64 {
        tally(Frame::create(PAGE_SIZE).map(drop))?;
        tally(Process::create_empty("oom", ctx.prio).map(drop))?;
        tally(eps[0].duplicate(Rights::SEND).map(drop))?;
        let n = Notification::create();
        let r = n.as_ref().map(|_| ()).map_err(|e| *e);
        if let Ok(n) = n
            && made.len() < made.capacity()
        {
            made.push(n);
        }
        tally(r)?;
        if i % 16 == 0 {
            made.clear();
        }
    }
    drop(made);
    drop(frames);
    drop(eps);
    Ok((oom, ok))
}

fn every_frame_then_syscalls(ctx: &mut Ctx) -> TestResult {
    eat_and_call(ctx)?; // warm-up: the kernel heap reaches its working size
    let (s0, h0) = counters()?;
    let (oom, ok) = eat_and_call(ctx)?;
    let (s1, h1) = counters()?;
    ensure!(oom > 0, "memory was never exhausted ({ok} calls succeeded)");
    ensure!(
        ok > 0,
        "no allocating call succeeded with the frames gone (the reserve serves small objects)"
    );
    ensure!(
        (s1.processes, s1.threads, s1.objects) == (s0.processes, s0.threads, s0.objects),
        "objects leaked: before {s0:?}, after {s1:?}"
    );
    ensure!(
        free_or_heap(&s1, &h1) == free_or_heap(&s0, &h0),
        "frames leaked: before {s0:?} {h0:?}, after {s1:?} {h1:?}"
    );
    libhsync::println!("[figure] exhaustion: {oom} calls refused with OutOfMemory, {ok} served");
    Ok(())
}

/// 100 MiB of zeros is not an ELF image: `BadElf`, and nothing of it stays in the kernel.
fn huge_zero_image(ctx: &mut Ctx) -> TestResult {
    const PAGES: u64 = 100 * 256;
    let attempt = || -> TestResult {
        let f = ok!(Frame::create(PAGES * PAGE_SIZE));
        expect_err!(Process::create(&f, "zeros", ctx.prio), Error::BadElf);
        ok!(f.close());
        Ok(())
    };
    let (s0, h0) = counters()?;
    attempt()?;
    let (s1, h1) = counters()?;
    // The image window's page tables stay (one frame per 2 MiB at most): 51 frames, not the
    // 25,600 a heap copy of the image would keep.
    ensure!(
        s1.free_frames + PAGES / 512 + 2 >= s0.free_frames,
        "{} frames gone: before {s0:?} {h0:?}, after {s1:?} {h1:?}",
        s0.free_frames - s1.free_frames
    );
    ensure!(
        h1.mapped_bytes <= h0.mapped_bytes + 256 * 1024,
        "the kernel heap grew by {} bytes",
        h1.mapped_bytes - h0.mapped_bytes
    );
    attempt()?;
    let (s2, _) = counters()?;
    ensure!(
        (s2.free_frames, s2.objects) == (s1.free_frames, s1.objects),
        "a second attempt leaked: {s1:?} then {s2:?}"
    );
    Ok(())
}
