//! `Memory`: a refcounted set of physical frames — the backing of Frame objects, of ELF
//! segments, stacks and IPC buffers. RAM it allocated goes back to the PMM when the last
//! `Arc<Memory>` drops; a device/boot range (`from_physical`) is never freed.
//!
//! Owned RAM is a list of single frames (not necessarily contiguous: large objects must not
//! depend on fragmentation luck). Borrowed ranges are one contiguous run and are either RAM the
//! HHDM maps (a boot module such as the initfs: readable and writable by the kernel through the
//! direct map) or device memory (MMIO: mapped uncached into user space, never touched by
//! [`Memory::read`]/[`Memory::write`] so a user range over MMIO can never make the kernel fault).

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{MmError, pmm, vmm};
use crate::arch::paging::{Cache, PAGE_4K};

/// Where the frames come from.
#[derive(Debug)]
enum Backing {
    /// Frames from the PMM, returned on drop.
    Owned(Vec<u64>),
    /// A contiguous physical run this object does not own.
    Borrowed {
        /// First frame.
        base: u64,
        /// Pages in the run.
        pages: usize,
        /// The HHDM maps the whole run (RAM); false for device memory.
        direct: bool,
        /// How user mappings of device memory are cached (ignored for RAM).
        cache: Cache,
    },
}

/// Physical frames, page-granular.
#[derive(Debug)]
pub struct Memory {
    backing: Backing,
}

impl Memory {
    /// `pages` zeroed frames of RAM (not necessarily contiguous). All-or-nothing: on failure
    /// every frame taken so far is back in the PMM.
    pub fn new_zeroed(pages: usize) -> Result<Arc<Memory>, MmError> {
        if pages == 0 {
            return Err(MmError::BadRange);
        }
        // Refuse the impossible up front instead of draining the PMM first.
        if pages as u64 > pmm::stats().free {
            return Err(MmError::OutOfMemory);
        }
        let mut frames = Vec::new();
        frames
            .try_reserve_exact(pages)
            .map_err(|_| MmError::OutOfMemory)?;
        let hhdm = vmm::hhdm_offset();
        for _ in 0..pages {
            let Some(phys) = pmm::alloc_frame() else {
                free_all(&frames);
                return Err(MmError::OutOfMemory);
            };
            // SAFETY: the PMM just handed us `phys`; the HHDM maps all PMM RAM read-write and
            // nothing else refers to the frame yet.
            unsafe { core::ptr::write_bytes((hhdm + phys) as *mut u8, 0, PAGE_4K as usize) };
            frames.push(phys);
        }
        let memory = Memory {
            backing: Backing::Owned(frames),
        };
        // On heap exhaustion `Arc::new` aborts like every kernel allocation; the frames list
        // above was the large allocation and is already fallible.
        Ok(Arc::new(memory))
    }

    /// An existing physical range (boot module, MMIO) that this object does not own.
    /// `phys` must be page-aligned. RAM the HHDM maps is accessible through
    /// [`read`](Self::read)/[`write`](Self::write); anything else is treated as a device.
    pub fn from_physical(phys: u64, pages: usize) -> Result<Arc<Memory>, MmError> {
        Self::borrowed(phys, pages, Cache::Uncached)
    }

    /// Device memory (MMIO, a framebuffer) that user mappings access with `cache`
    /// (`Uncached` or `WriteCombining`). The caller has checked that the range is not RAM.
    pub fn device(phys: u64, pages: usize, cache: Cache) -> Result<Arc<Memory>, MmError> {
        Self::borrowed(phys, pages, cache)
    }

    fn borrowed(phys: u64, pages: usize, cache: Cache) -> Result<Arc<Memory>, MmError> {
        let len = (pages as u64)
            .checked_mul(PAGE_4K)
            .ok_or(MmError::BadRange)?;
        let end = phys.checked_add(len).ok_or(MmError::BadRange)?;
        if pages == 0 || !phys.is_multiple_of(PAGE_4K) || end > 1 << 52 {
            return Err(MmError::BadRange);
        }
        let hhdm = vmm::hhdm_offset();
        let direct = (phys..end)
            .step_by(PAGE_4K as usize)
            .all(|p| vmm::translate(hhdm + p).is_some_and(|t| t.phys == p));
        Ok(Arc::new(Memory {
            backing: Backing::Borrowed {
                base: phys,
                pages,
                direct,
                cache,
            },
        }))
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        match &self.backing {
            Backing::Owned(frames) => frames.len(),
            Backing::Borrowed { pages, .. } => *pages,
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.pages() as u64 * PAGE_4K
    }

    /// True for device memory (not RAM the kernel reaches through the direct map).
    pub fn is_device(&self) -> bool {
        matches!(self.backing, Backing::Borrowed { direct: false, .. })
    }

    /// How user mappings cache this memory: write-back for RAM, the device's mode otherwise.
    pub fn cache(&self) -> Cache {
        match self.backing {
            Backing::Borrowed {
                direct: false,
                cache,
                ..
            } => cache,
            _ => Cache::WriteBack,
        }
    }

    /// True when the PMM frames are owned (and freed on drop).
    pub fn is_owned(&self) -> bool {
        matches!(self.backing, Backing::Owned(_))
    }

    /// Physical address of page `index`.
    pub fn phys(&self, index: usize) -> Option<u64> {
        match &self.backing {
            Backing::Owned(frames) => frames.get(index).copied(),
            Backing::Borrowed { base, pages, .. } => {
                (index < *pages).then(|| base + index as u64 * PAGE_4K)
            }
        }
    }

    /// Calls `f(hhdm_pointer, offset_in_data, chunk_len)` for each page-sized piece of
    /// `[offset, offset + len)`, after checking the whole range first.
    fn for_each_chunk(
        &self,
        offset: usize,
        len: usize,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> Result<(), MmError> {
        let end = offset.checked_add(len).ok_or(MmError::BadRange)?;
        if end as u64 > self.len() || self.is_device() {
            return Err(MmError::BadRange);
        }
        let hhdm = vmm::hhdm_offset();
        let page = PAGE_4K as usize;
        let mut pos = offset;
        while pos < end {
            let in_page = pos % page;
            let n = (page - in_page).min(end - pos);
            let phys = self.phys(pos / page).ok_or(MmError::BadRange)?;
            f((hhdm + phys + in_page as u64) as *mut u8, pos - offset, n);
            pos += n;
        }
        Ok(())
    }

    /// Copies `data` into the memory at byte `offset` (through the direct map).
    /// Errors: `BadRange` if it does not fit or this is device memory.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), MmError> {
        self.for_each_chunk(offset, data.len(), |dst, at, n| {
            // SAFETY: `dst..dst + n` lies inside one frame of this object, mapped RW by the
            // HHDM (checked: not device memory); `at + n <= data.len()` by construction. Frames
            // may be mapped into user space concurrently: racing user writes only change bytes.
            unsafe { core::ptr::copy_nonoverlapping(data.as_ptr().add(at), dst, n) }
        })
    }

    /// Copies bytes at `offset` into `buf`.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MmError> {
        let out = buf.as_mut_ptr();
        self.for_each_chunk(offset, buf.len(), |src, at, n| {
            // SAFETY: as in `write`, with `out + at .. + n` inside `buf`.
            unsafe { core::ptr::copy_nonoverlapping(src, out.add(at), n) }
        })
    }
}

fn free_all(frames: &[u64]) {
    for &phys in frames {
        if let Err(e) = pmm::free_frame(phys) {
            log::error!("memory: freeing frame {phys:#x}: {e:?}");
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if let Backing::Owned(frames) = &self.backing {
            free_all(frames);
        }
    }
}
