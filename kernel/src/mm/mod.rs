//! Memory management: physical frames (PMM), the kernel's page tables (VMM) and the heap.
//!
//! Boot order: [`init`] builds the PMM over the `Usable` regions, builds and switches to the
//! kernel's own PML4 (see [`vmm`] for the layout) and maps the initial heap. After the CPU has
//! left the loader's stack, [`reclaim_bootloader_memory`] hands `BootloaderReclaimable` memory to
//! the PMM. Locks are taken in the order heap → kernel space → PMM, and the latter two never
//! allocate from the heap.

use core::sync::atomic::{AtomicU64, Ordering};

use hsync_kcore::frame::{FRAME_SIZE, FrameError};
use hsync_kcore::mem::{MemoryRegion, RegionKind};

use crate::arch::paging::PagingError;
use crate::boot::BootInfo;
use crate::ktest::KTest;

pub mod aspace;
pub mod elf;
pub mod heap;
pub mod memory;
pub mod pmm;
mod tests;
mod user_tests;
pub mod vmm;

pub use crate::arch::paging::Cache;
pub use vmm::{KernelStack, OwnedKernelStack, map_physical};

/// Why a memory operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmError {
    /// No free physical frame (or run of frames).
    OutOfMemory,
    /// The virtual region for this purpose is full.
    OutOfVirtualSpace,
    /// An empty, overflowing or non-physical address range.
    BadRange,
    /// The frame allocator refused the operation.
    Frame(FrameError),
    /// The page tables refused the operation.
    Paging(PagingError),
    /// Called before [`init`] built the kernel's address space.
    NotReady,
    /// Invalid flags (W+X, no READ) or a zero length.
    InvalidArgument,
}

impl From<MmError> for hsync_abi::Error {
    /// The syscall error for a failed memory operation (see `docs/syscalls.md`, `frame_map`).
    fn from(e: MmError) -> Self {
        use hsync_abi::Error;
        match e {
            MmError::OutOfMemory
            | MmError::OutOfVirtualSpace
            | MmError::Frame(_)
            | MmError::Paging(PagingError::OutOfFrames) => Error::OutOfMemory,
            MmError::BadRange => Error::BadAddress,
            MmError::Paging(PagingError::Misaligned(_)) => Error::Misaligned,
            MmError::Paging(PagingError::AlreadyMapped(_)) => Error::Exists,
            MmError::Paging(PagingError::NotMapped(_)) => Error::NotFound,
            MmError::InvalidArgument => Error::InvalidArgument,
            MmError::NotReady => Error::InvalidState,
        }
    }
}

impl From<FrameError> for MmError {
    fn from(e: FrameError) -> Self {
        Self::Frame(e)
    }
}

impl From<PagingError> for MmError {
    fn from(e: PagingError) -> Self {
        match e {
            PagingError::OutOfFrames => Self::OutOfMemory,
            e => Self::Paging(e),
        }
    }
}

/// Frames of RAM the PMM does not manage: ACPI, NVS, kernel + modules, and the loader's memory
/// until it is reclaimed. Reported as `reserved` in the summary.
static RESERVED_FRAMES: AtomicU64 = AtomicU64::new(0);

fn frames_of(map: &[MemoryRegion], kinds: &[RegionKind]) -> u64 {
    map.iter()
        .filter(|r| kinds.contains(&r.kind))
        .map(|r| r.len / FRAME_SIZE)
        .sum()
}

const RESERVED_KINDS: &[RegionKind] = &[
    RegionKind::AcpiReclaimable,
    RegionKind::AcpiNvs,
    RegionKind::ExecutableAndModules,
];

/// Frames below 1 MiB reserved for the AP start trampoline (code + three page tables).
pub const LOW_FRAME_COUNT: u64 = 4;
/// Physical base of those frames (0 = none found).
static LOW_FRAMES: AtomicU64 = AtomicU64::new(0);

/// The [`LOW_FRAME_COUNT`] contiguous frames below 1 MiB reserved at boot for starting APs.
pub fn low_frames() -> Option<u64> {
    match LOW_FRAMES.load(Ordering::Relaxed) {
        0 => None,
        p => Some(p),
    }
}

/// The loader's RSDP address, kept for the `map_physical` test (0 = none).
static RSDP_PHYS: AtomicU64 = AtomicU64::new(0);

/// PMM from the memory map, the kernel's own PML4 (switched to), and the heap.
pub fn init(info: &BootInfo) {
    RSDP_PHYS.store(info.rsdp_phys.unwrap_or(0), Ordering::Relaxed);
    pmm::init(info.memory_map, info.hhdm_offset);
    // Before anything else allocates: the AP trampoline needs frames below 1 MiB.
    LOW_FRAMES.store(
        pmm::reserve_low(LOW_FRAME_COUNT).unwrap_or(0),
        Ordering::Relaxed,
    );
    let reserved = frames_of(info.memory_map, RESERVED_KINDS)
        + frames_of(info.memory_map, &[RegionKind::BootloaderReclaimable]);
    RESERVED_FRAMES.store(reserved, Ordering::Relaxed);
    vmm::init(info);
    heap::init();
}

/// Gives bootloader-reclaimable memory to the PMM. Called once, after boot data was copied out
/// and the CPU left the loader's stack.
pub fn reclaim_bootloader_memory(info: &BootInfo) {
    let gained = pmm::reclaim(info.memory_map);
    if LOW_FRAMES.load(Ordering::Relaxed) == 0 {
        LOW_FRAMES.store(
            pmm::reserve_low(LOW_FRAME_COUNT).unwrap_or(0),
            Ordering::Relaxed,
        );
    }
    RESERVED_FRAMES.store(
        frames_of(info.memory_map, RESERVED_KINDS),
        Ordering::Relaxed,
    );
    log::info!(
        "reclaimed {} KiB of bootloader memory",
        gained * FRAME_SIZE / 1024
    );
}

/// Logs one line of memory totals (`memory: total=... free=... used=... reserved=...`).
///
/// `total` is the RAM the PMM manages, `used` = `total - free` (page tables, PMM bitmaps, heap,
/// stacks, ...), `reserved` is RAM it does not manage (see [`RESERVED_KINDS`]).
pub fn log_summary() {
    let s = pmm::stats();
    let reserved = RESERVED_FRAMES.load(Ordering::Relaxed);
    let mib = |frames: u64| frames * FRAME_SIZE / (1 << 20);
    log::info!(
        "memory: total={} MiB ({} frames) free={} MiB ({}) used={} MiB ({}) reserved={} MiB ({}) heap={} KiB",
        mib(s.total),
        s.total,
        mib(s.free),
        s.free,
        mib(s.used()),
        s.used(),
        mib(reserved),
        reserved,
        heap::mapped_bytes() / 1024,
    );
}

/// Allocates and maps a kernel stack of `pages` pages with an unmapped guard page under it.
pub fn alloc_kernel_stack(pages: usize) -> Option<KernelStack> {
    vmm::alloc_kernel_stack(pages)
}

/// A freeable kernel stack (for threads): `pages` pages (at most
/// [`vmm::OWNED_STACK_MAX_PAGES`]) above an unmapped guard page; unmapped and returned to the
/// PMM when dropped.
pub fn new_kernel_stack(pages: usize) -> Result<OwnedKernelStack, MmError> {
    vmm::alloc_owned_stack(pages)
}

/// Virtual address of physical RAM `phys` in the HHDM (valid for the kinds the HHDM maps).
pub fn phys_to_virt(phys: u64) -> u64 {
    vmm::hhdm_offset() + phys
}

/// In-kernel tests of this module.
pub const TESTS: &[KTest] = tests::TESTS;
