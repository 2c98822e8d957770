//! The kernel heap: `talc` over a dedicated virtual region that grows on demand.
//!
//! The heap starts as [`INITIAL_SIZE`] mapped bytes at [`HEAP_BASE`]. When talc runs out, its
//! OOM handler maps fresh frames right above the current top and extends the heap in place, so
//! there is no fixed ceiling short of the 512 GiB region (or physical memory). [`trim`] gives a
//! free span at the top back to the PMM (at the end of a system call that freed objects); free memory below the highest
//! live allocation stays mapped for reuse.
//!
//! Exhaustion never panics a system call (issue 12): growth steps of at most [`MIN_GROWTH`]
//! may draw on the PMM's heap reserve (`pmm::reserve`), larger ones (a fallible bulk
//! `try_reserve`) may not; and [`headroom`] refuses a system call that may allocate once the
//! heap's free bytes plus the free frames fall under half the reserve. A system call's
//! infallible allocations (an object, a queue slot, a handle-table step) are a few KiB, far
//! below that margin, so they always succeed.
//!
//! Lock order: heap → kernel space → PMM. The VMM and PMM never allocate from the heap, so the
//! OOM handler may take their locks while talc's lock is held.

use core::alloc::Layout;
use core::sync::atomic::{AtomicU64, Ordering};

use talc::{OomHandler, Span, Talc, Talck};

use super::vmm::{self, HEAP_BASE, HEAP_SIZE};
use crate::arch::paging::PAGE_4K;

/// Bytes mapped at boot; small on purpose so the tests see the heap grow.
pub const INITIAL_SIZE: u64 = 64 * 1024;
/// Smallest step the heap grows by, to keep the number of OOM round trips low.
const MIN_GROWTH: u64 = 64 * 1024;

/// Bytes of the heap region currently mapped (readable without the heap lock).
static MAPPED: AtomicU64 = AtomicU64::new(0);

/// talc's OOM handler: the heap's current extent, grown by mapping pages at its top.
pub struct GrowOnDemand {
    heap: Span,
}

impl GrowOnDemand {
    /// Maps at least `bytes` more and hands them to talc.
    fn grow(talc: &mut Talc<Self>, bytes: u64) -> Result<(), ()> {
        let mapped = MAPPED.load(Ordering::Relaxed);
        let grow = bytes.max(MIN_GROWTH).next_multiple_of(PAGE_4K);
        if mapped.checked_add(grow).is_none_or(|end| end > HEAP_SIZE) {
            return Err(());
        }
        let top = HEAP_BASE + mapped;
        let pages = grow / PAGE_4K;
        // Only small steps may use the reserve: a bulk allocation must not drain it.
        if grow > MIN_GROWTH && super::pmm::stats().free < super::pmm::reserve() + pages {
            return Err(());
        }
        super::pmm::for_heap(|| vmm::map_fresh_locked(top, pages)).map_err(|_| ())?;
        MAPPED.store(mapped + grow, Ordering::Relaxed);
        let span = Span::from_base_size(HEAP_BASE as *mut u8, (mapped + grow) as usize);
        let old = talc.oom_handler.heap;
        let new = if old.is_empty() {
            // SAFETY: `span` was just mapped RW for the heap alone and is not used otherwise.
            unsafe { talc.claim(span)? }
        } else {
            // SAFETY: `old` is the span talc last returned; `span` contains it and the extra
            // pages were just mapped RW for the heap alone.
            unsafe { talc.extend(old, span) }
        };
        talc.oom_handler.heap = new;
        Ok(())
    }
}

impl OomHandler for GrowOnDemand {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        // Room for the block, its alignment slack, and talc's tags.
        let need = (layout.size() as u64)
            .saturating_add(layout.align() as u64)
            .saturating_add(64);
        Self::grow(talc, need)
    }
}

#[global_allocator]
static ALLOCATOR: Talck<spin::Mutex<()>, GrowOnDemand> = Talc::new(GrowOnDemand {
    heap: Span::empty(),
})
.lock();

/// Maps the initial heap. Allocation before this point fails (no heap, nothing mapped).
pub(super) fn init() {
    GrowOnDemand::grow(&mut ALLOCATOR.lock(), INITIAL_SIZE).expect("mapping the initial heap");
}

/// Bytes of the heap region currently backed by frames.
pub fn mapped_bytes() -> u64 {
    MAPPED.load(Ordering::Relaxed)
}

/// Whether a system call that may allocate can go ahead: the heap's free bytes plus the free
/// frames cover at least half the reserve (see the module documentation).
pub fn headroom() -> bool {
    let free = super::pmm::stats().free;
    let reserve = super::pmm::reserve();
    if free >= reserve {
        return true;
    }
    let c = counters();
    let heap_free = (c.claimed_bytes.saturating_sub(c.allocated_bytes)) as u64;
    heap_free + free * PAGE_4K >= reserve / 2 * PAGE_4K
}

/// Set by whatever frees much heap (the reaper, a closed handle, a process's end): the next
/// [`trim`] looks; other system calls skip it without a lock.
static TRIM_SOON: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Asks the next [`trim`] to look for a free top span.
pub fn trim_soon() {
    TRIM_SOON.store(true, Ordering::Relaxed);
}

/// Gives the free span at the top of the heap back to the PMM, keeping [`INITIAL_SIZE`] and a
/// slack of [`MIN_GROWTH`] above the highest allocation. Cheap when there is nothing to give.
pub fn trim() {
    if !TRIM_SOON.swap(false, Ordering::Relaxed) {
        return;
    }
    let mut talc = ALLOCATOR.lock();
    let heap = talc.oom_handler.heap;
    if heap.is_empty() {
        return;
    }
    // SAFETY: `heap` is the span talc last returned from `claim`/`extend`/`truncate`.
    let used = unsafe { talc.get_allocated_span(heap) };
    let Some((_, used_top)) = used.get_base_acme() else {
        return;
    };
    let mapped = MAPPED.load(Ordering::Relaxed);
    let keep = ((used_top as u64).saturating_sub(HEAP_BASE) + MIN_GROWTH)
        .next_multiple_of(PAGE_4K)
        .max(INITIAL_SIZE);
    if keep + MIN_GROWTH > mapped {
        return;
    }
    let req = Span::from_base_size(HEAP_BASE as *mut u8, keep as usize);
    // SAFETY: as above; `req` lies inside `heap` (same base, `keep < mapped`) and contains the
    // allocated span (`keep` is above its top).
    let new = unsafe { talc.truncate(heap, req) };
    talc.oom_handler.heap = new;
    let Some((_, new_top)) = new.get_base_acme() else {
        return;
    };
    // Unmap whole pages above the new top; talc no longer uses them.
    let first = (new_top as u64).next_multiple_of(PAGE_4K);
    let pages = (HEAP_BASE + mapped).saturating_sub(first) / PAGE_4K;
    let freed = vmm::unmap_fresh_locked(first, pages);
    MAPPED.store(mapped - freed * PAGE_4K, Ordering::Relaxed);
}

/// talc's counters: bytes allocated, claimed, and so on.
pub fn counters() -> talc::Counters {
    *ALLOCATOR.lock().get_counters()
}

/// `Box::new(value)` that returns `None` instead of aborting when the heap is exhausted
/// (`Box::try_new` is not stable yet).
pub fn try_box<T>(value: T) -> Option<alloc::boxed::Box<T>> {
    let layout = Layout::new::<T>();
    if layout.size() == 0 {
        return Some(alloc::boxed::Box::new(value));
    }
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc::alloc::alloc(layout) }.cast::<T>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is a fresh allocation with `T`'s layout; writing initializes it, and
    // `Box::from_raw` takes it over with the same layout (the global allocator).
    unsafe {
        p.write(value);
        Some(alloc::boxed::Box::from_raw(p))
    }
}
