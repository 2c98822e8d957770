//! The physical memory manager: `hsync_kcore::frame::FrameAllocator` behind a lock, over the
//! boot memory map, with its bitmaps in RAM reached through the HHDM.
//!
//! Only `Usable` memory is managed at first; `BootloaderReclaimable` memory joins in
//! [`reclaim`], once nothing of the loader's is in use any more. The bitmap span covers both
//! kinds from the start so that reclaiming needs no new storage.
//!
//! **The heap reserve.** The last [`reserve`] free frames go only to the kernel heap's growth
//! (inside [`for_heap`]): user frames, page tables and kernel stacks fail with `OutOfMemory`
//! once the free count reaches it. So a process that takes every frame it can leaves the kernel
//! heap room to grow, and the system calls that still allocate (in bounded, small amounts —
//! `mm::heap::headroom` refuses them before the reserve runs dry) never meet an exhausted
//! heap. With more CPUs, another CPU's allocation during a heap growth may also draw on the
//! reserve; the headroom check leaves margin for that.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hsync_kcore::frame::{FRAME_SIZE, FrameAllocator, FrameError, FrameStats};
use hsync_kcore::mem::{MemoryRegion, RegionKind};
use spin::Mutex;

use super::MmError;

static PMM: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);

/// Most frames held back for the heap (4 MiB); smaller machines keep 1/16 of their RAM.
const RESERVE_MAX: u64 = 1024;
/// Frames held back for the heap's growth.
static RESERVE: AtomicU64 = AtomicU64::new(0);
/// Set while the heap grows: its frames may come from the reserve.
static HEAP_GROWING: AtomicBool = AtomicBool::new(false);

/// Frames only the kernel heap may take.
pub fn reserve() -> u64 {
    RESERVE.load(Ordering::Relaxed)
}

/// Runs `f` (the heap's growth) with the reserve open to it.
pub fn for_heap<R>(f: impl FnOnce() -> R) -> R {
    HEAP_GROWING.store(true, Ordering::Relaxed);
    let r = f();
    HEAP_GROWING.store(false, Ordering::Relaxed);
    r
}

/// Whether `n` frames may be taken now (the reserve stays for the heap).
fn may_take(pmm: &FrameAllocator<'_>, n: u64) -> bool {
    HEAP_GROWING.load(Ordering::Relaxed)
        || pmm.stats().free >= RESERVE.load(Ordering::Relaxed).saturating_add(n)
}

/// Builds the allocator over the `Usable` regions of `map`, placing its bitmaps at the start of
/// the first usable region large enough for them.
pub(super) fn init(map: &[MemoryRegion], hhdm: u64) {
    let managed_kinds = |r: &&MemoryRegion| {
        matches!(
            r.kind,
            RegionKind::Usable | RegionKind::BootloaderReclaimable
        )
    };
    let span_start = map
        .iter()
        .filter(managed_kinds)
        .map(|r| r.base)
        .min()
        .unwrap_or(0);
    let span_end = map
        .iter()
        .filter(managed_kinds)
        .map(|r| r.end())
        .max()
        .unwrap_or(0);
    let words = FrameAllocator::storage_words(span_start, span_end);
    let bytes = (words as u64 * 8).next_multiple_of(FRAME_SIZE);

    // Frame 0 is never managed, so storage must not start there.
    let storage_phys = map
        .iter()
        .filter(|r| r.kind == RegionKind::Usable)
        .map(|r| (r.base.max(FRAME_SIZE).next_multiple_of(FRAME_SIZE), r.end()))
        .find(|&(base, end)| end.saturating_sub(base) >= bytes)
        .map(|(base, _)| base)
        .expect("no usable region can hold the frame bitmaps");

    // SAFETY: `[storage_phys, +bytes)` lies inside a usable region that the loader maps in the
    // HHDM and nobody else uses: it is reserved in the allocator below before any frame is
    // handed out, so it stays ours for the kernel's lifetime ('static).
    let storage =
        unsafe { core::slice::from_raw_parts_mut((hhdm + storage_phys) as *mut u64, words) };
    let mut pmm = FrameAllocator::new(span_start, span_end, storage)
        .expect("bitmap storage sized by storage_words");
    for r in map.iter().filter(|r| r.kind == RegionKind::Usable) {
        pmm.add_region(r.base, r.len);
    }
    pmm.reserve(storage_phys, bytes)
        .expect("bitmap storage is free usable memory");
    log::debug!(
        "pmm: span {span_start:#x}..{span_end:#x}, bitmaps {} KiB at {storage_phys:#x}",
        bytes / 1024
    );
    RESERVE.store((pmm.stats().total / 16).min(RESERVE_MAX), Ordering::Relaxed);
    *PMM.lock() = Some(pmm);
}

/// Adds the bootloader-reclaimable regions; returns the number of frames gained.
pub(super) fn reclaim(map: &[MemoryRegion]) -> u64 {
    with(|pmm| {
        map.iter()
            .filter(|r| r.kind == RegionKind::BootloaderReclaimable)
            .map(|r| pmm.add_region(r.base, r.len))
            .sum()
    })
}

fn with<R>(f: impl FnOnce(&mut FrameAllocator<'static>) -> R) -> R {
    let mut guard = PMM.lock();
    f(guard.as_mut().expect("mm::init has not run"))
}

/// One frame, or `None` when physical memory is exhausted (down to the heap reserve, outside
/// [`for_heap`]). The contents are undefined.
pub fn alloc_frame() -> Option<u64> {
    with(|pmm| if may_take(pmm, 1) { pmm.alloc() } else { None })
}

/// `count` physically contiguous frames aligned to `align_frames` frames (the heap reserve
/// stays, as for [`alloc_frame`]).
pub fn alloc_contiguous(count: u64, align_frames: u64) -> Result<u64, MmError> {
    with(|pmm| {
        if may_take(pmm, count) {
            pmm.alloc_contiguous(count, align_frames)
        } else {
            Ok(None)
        }
    })?
    .ok_or(MmError::OutOfMemory)
}

/// Returns one frame. Double frees and foreign addresses are refused with an error.
pub fn free_frame(phys: u64) -> Result<(), FrameError> {
    with(|pmm| pmm.free(phys))
}

/// Returns `count` contiguous frames (all-or-nothing).
pub fn free_contiguous(phys: u64, count: u64) -> Result<(), FrameError> {
    with(|pmm| pmm.free_contiguous(phys, count))
}

/// Exact counters: total managed, free, used.
pub fn stats() -> FrameStats {
    with(|pmm| pmm.stats())
}

/// True when the frame at `phys` is managed and free.
pub fn is_free(phys: u64) -> bool {
    with(|pmm| pmm.is_free(phys))
}

/// Takes `count` contiguous free frames below 1 MiB (the AP start trampoline), lowest first
/// from 0x1000; `None` when the map has no such run of usable memory.
pub fn reserve_low(count: u64) -> Option<u64> {
    const LOW_END: u64 = 0x10_0000;
    with(|pmm| {
        let mut base = FRAME_SIZE;
        while base + count * FRAME_SIZE <= LOW_END {
            let run = (0..count).all(|i| pmm.is_free(base + i * FRAME_SIZE));
            if run && pmm.reserve(base, count * FRAME_SIZE).is_ok() {
                return Some(base);
            }
            base += FRAME_SIZE;
        }
        None
    })
}
