//! Loading an ELF executable into a fresh address space (W^X enforced, bss zeroed), plus the
//! main thread's stack (with a guard page) and IPC buffer at the `hsync_abi::startup` addresses.
//!
//! All validation is `hsync_kcore::elf::plan` (pure, host-tested); this module only allocates,
//! copies and maps what the plan allows. Each segment gets its own zeroed [`Memory`] (so bss
//! and the page slack around file bytes are zero), the file bytes are copied in through the
//! direct map, and the pages are mapped with the segment's permissions. On any failure every
//! mapping made here is removed again, so the caller's space is as it was (apart from page-table
//! frames, which it frees when it drops).

use hsync_abi::MapFlags;
use hsync_abi::startup::{MAIN_IPC_BUFFER, MAIN_STACK_PAGES, MAIN_STACK_TOP};
use hsync_kcore::elf::{self as plan, ElfPlan};

use super::MmError;
use super::aspace::AddressSpace;
use super::memory::Memory;
use crate::arch::paging::PAGE_4K;

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not a valid x86_64 ELF64 executable, or its segments are malformed (overlap, outside
    /// the user half, W+X, file range out of bounds, ...).
    Malformed,
    /// Out of memory while loading.
    OutOfMemory,
}

impl From<ElfError> for hsync_abi::Error {
    fn from(e: ElfError) -> Self {
        match e {
            ElfError::Malformed => hsync_abi::Error::BadElf,
            ElfError::OutOfMemory => hsync_abi::Error::OutOfMemory,
        }
    }
}

/// What `load` set up.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    /// Entry point.
    pub entry: u64,
    /// Initial stack top (`startup::MAIN_STACK_TOP`).
    pub stack_top: u64,
    /// IPC buffer address (`startup::MAIN_IPC_BUFFER`).
    pub ipc_buffer: u64,
}

/// Validates `image` without touching memory: the plan `load` would follow.
pub fn check(image: &[u8]) -> Result<ElfPlan, plan::ElfError> {
    plan::plan(image)
}

fn mm_to_elf(e: MmError) -> ElfError {
    match e {
        MmError::OutOfMemory | MmError::Paging(crate::arch::paging::PagingError::OutOfFrames) => {
            ElfError::OutOfMemory
        }
        // Anything else means the image collides with what the space already holds.
        _ => ElfError::Malformed,
    }
}

/// Loads `image` into `aspace` and maps the main stack and IPC buffer.
pub fn load(aspace: &mut AddressSpace, image: &[u8]) -> Result<Loaded, ElfError> {
    let plan = plan::plan(image).map_err(|e| {
        log::debug!("elf: refused: {e:?}");
        ElfError::Malformed
    })?;
    // (address, pages) of every mapping made so far, to undo on failure.
    let mut mapped: [(u64, usize); plan::MAX_SEGMENTS + 2] = [(0, 0); plan::MAX_SEGMENTS + 2];
    let mut count = 0;
    let result = load_into(aspace, image, &plan, &mut mapped, &mut count);
    if result.is_err() {
        for &(va, pages) in mapped.iter().take(count) {
            let _ = aspace.unmap(va, pages);
        }
    }
    result
}

fn load_into(
    aspace: &mut AddressSpace,
    image: &[u8],
    plan: &ElfPlan,
    mapped: &mut [(u64, usize)],
    count: &mut usize,
) -> Result<Loaded, ElfError> {
    let mut map_fresh = |aspace: &mut AddressSpace,
                         va: u64,
                         pages: u64,
                         flags: MapFlags,
                         fill: Option<(usize, &[u8])>|
     -> Result<(), ElfError> {
        let pages = usize::try_from(pages).map_err(|_| ElfError::Malformed)?;
        let mem = Memory::new_zeroed(pages).map_err(mm_to_elf)?;
        if let Some((offset, bytes)) = fill {
            mem.write(offset, bytes).map_err(|_| ElfError::Malformed)?;
        }
        aspace.map(va, &mem, 0, pages, flags).map_err(mm_to_elf)?;
        let slot = mapped.get_mut(*count).ok_or(ElfError::Malformed)?;
        *slot = (va, pages);
        *count += 1;
        Ok(())
    };

    for seg in plan.segments() {
        // The plan checked `file_offset + file_len <= image.len()`; `get` keeps that honest.
        let start = usize::try_from(seg.file_offset).map_err(|_| ElfError::Malformed)?;
        let len = usize::try_from(seg.file_len).map_err(|_| ElfError::Malformed)?;
        let bytes = start
            .checked_add(len)
            .and_then(|end| image.get(start..end))
            .ok_or(ElfError::Malformed)?;
        let offset = seg.page_offset as usize;
        map_fresh(
            aspace,
            seg.page,
            seg.pages,
            seg.flags,
            Some((offset, bytes)),
        )?;
    }
    let rw = MapFlags::READ | MapFlags::WRITE;
    // The page below the stack stays unmapped: the guard (the plan keeps segments off it).
    let stack_bottom = MAIN_STACK_TOP - MAIN_STACK_PAGES * PAGE_4K;
    map_fresh(aspace, stack_bottom, MAIN_STACK_PAGES, rw, None)?;
    map_fresh(aspace, MAIN_IPC_BUFFER, 1, rw, None)?;
    Ok(Loaded {
        entry: plan.entry,
        stack_top: MAIN_STACK_TOP,
        ipc_buffer: MAIN_IPC_BUFFER,
    })
}
