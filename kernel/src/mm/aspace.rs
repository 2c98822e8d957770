//! User address spaces: one PML4 per process sharing the kernel's upper half, user mappings of
//! `Memory` with W^X, checked copies to/from user memory, teardown that frees every page-table
//! frame (and drops its references to `Memory`).
//!
//! # Layout and ownership
//! PML4 entries `256..512` are copied from the kernel's PML4 when the space is created; the
//! kernel preallocated all of them, so the upper half never needs updating. The lower half holds
//! only user mappings (`USER_ACCESSIBLE`), each R, RW+NX or RX — never W+X. Every mapping is a
//! [`Region`] that keeps its `Arc<Memory>`, so a frame lives at least as long as a PTE points at
//! it. Dropping the space unlinks and frees every lower-half table frame, then the regions.
//!
//! # User copies
//! [`AddressSpace::copy_from_user`] / [`AddressSpace::copy_to_user`] take the address as an
//! unchecked claim: `hsync_kcore::user::UserRange` checks the shape (user half, no overflow), then
//! this space's own page tables are walked for every page touched (present, user, writable for
//! writes, not device memory), and the bytes are copied through the kernel's direct map of the
//! translated frame. We walk instead of dereferencing user pointers under `stac` because
//! (1) it works for any space, not only the current one (process creation, IPC between two
//! spaces), (2) no access can fault, so there is no fault-fixup machinery in the kernel, and
//! (3) SMAP stays on for every kernel instruction. A copy to user memory validates every page
//! before writing the first byte, so a failed copy changes nothing.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use hsync_abi::{Error, MapFlags};
use hsync_kcore::user::{UserRange, is_user_page_range};

use super::memory::Memory;
use super::{MmError, pmm, vmm};
use crate::arch::paging::{
    self, Flags, PAGE_4K, PageSize, PageTables, PagingError, TableFrames, Translation,
};

/// Software PTE bit (ignored by the CPU) marking device memory: copies refuse such pages, since
/// the direct map does not cover them.
const DEVICE: Flags = Flags::BIT_9;

/// Source of unique address-space ids (never reused, so a PCID allocator can detect reuse).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One mapping: `pages` pages of `mem` from its page `first_page` on, with `flags`.
#[derive(Debug)]
struct Region {
    pages: u64,
    mem: Arc<Memory>,
    first_page: usize,
    flags: MapFlags,
}

/// Page-table frames for user trees: PMM frames zeroed through the HHDM.
struct UserTables {
    hhdm: u64,
}

impl TableFrames for UserTables {
    fn alloc_zeroed(&mut self) -> Option<u64> {
        let phys = pmm::alloc_frame()?;
        // SAFETY: the PMM just handed us `phys`, mapped RW by the HHDM, referenced by nothing.
        unsafe { core::ptr::write_bytes((self.hhdm + phys) as *mut u8, 0, PAGE_4K as usize) };
        Some(phys)
    }
}

/// A process's address space.
#[derive(Debug)]
pub struct AddressSpace {
    tables: PageTables,
    hhdm: u64,
    regions: BTreeMap<u64, Region>,
    id: u64,
}

fn pte_flags(flags: MapFlags, device: bool) -> Flags {
    let mut f = Flags::USER_ACCESSIBLE;
    if flags.contains(MapFlags::WRITE) {
        f |= Flags::WRITABLE;
    }
    if !flags.contains(MapFlags::EXECUTE) {
        f |= Flags::NO_EXECUTE;
    }
    if device {
        f |= DEVICE;
    }
    f
}

impl AddressSpace {
    /// An empty address space (kernel half shared, user half empty).
    pub fn new() -> Result<AddressSpace, MmError> {
        let hhdm = vmm::hhdm_offset();
        let pml4 = UserTables { hhdm }
            .alloc_zeroed()
            .ok_or(MmError::OutOfMemory)?;
        // SAFETY: `pml4` is a fresh zeroed frame owned by this value alone; the HHDM maps it
        // and every table frame we will link below it (all come from the PMM).
        let mut tables = unsafe { PageTables::new(pml4, hhdm) };
        vmm::share_kernel_half(&mut tables);
        Ok(AddressSpace {
            tables,
            hhdm,
            regions: BTreeMap::new(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The physical address of its PML4 (for `arch::load_address_space`).
    pub fn cr3(&self) -> u64 {
        self.tables.root()
    }

    /// A unique id (never reused during a boot), e.g. to assign PCIDs.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// True when this CPU is running on this space's page tables.
    pub fn is_current(&self) -> bool {
        paging::active_pml4() == self.cr3()
    }

    /// Number of mappings (regions) in the user half.
    pub fn mapping_count(&self) -> usize {
        self.regions.len()
    }

    /// True when `va` lies in an unmapped page directly below a writable, non-executable
    /// mapping: the guard page of a downward-growing stack (the main stack's, or one a runtime
    /// mapped the same way). The fault handler uses it to report a stack overflow as such.
    pub fn is_guard_page(&self, va: u64) -> bool {
        let page = va - va % PAGE_4K;
        let Some(above) = page.checked_add(PAGE_4K) else {
            return false;
        };
        if let Some((&start, r)) = self.regions.range(..=page).next_back()
            && start + r.pages * PAGE_4K > page
        {
            return false; // mapped
        }
        self.regions.get(&above).is_some_and(|r| {
            r.flags.contains(MapFlags::WRITE) && !r.flags.contains(MapFlags::EXECUTE)
        })
    }

    /// Resolves user address `va` with the permissions the CPU enforces.
    pub fn translate(&self, va: u64) -> Option<Translation> {
        if !is_user_page_range(va - va % PAGE_4K, 1) {
            return None;
        }
        self.tables.translate(va)
    }

    /// Maps `pages` pages of `mem` starting at its page `first_page` at user address `va`.
    /// Errors: misaligned / outside the user half / overlapping an existing mapping /
    /// out of range of `mem` / W+X flags.
    ///
    /// Specifically: `InvalidArgument` for `pages == 0`, flags without READ or with
    /// WRITE | EXECUTE; `Paging(Misaligned)` for an unaligned `va`; `BadRange` when the range is
    /// not in the user half or past the end of `mem`; `Paging(AlreadyMapped)` on overlap;
    /// `OutOfMemory` for page tables. On error nothing is mapped.
    pub fn map(
        &mut self,
        va: u64,
        mem: &Arc<Memory>,
        first_page: usize,
        pages: usize,
        flags: MapFlags,
    ) -> Result<(), MmError> {
        if pages == 0
            || !flags.contains(MapFlags::READ)
            || flags.contains(MapFlags::WRITE | MapFlags::EXECUTE)
        {
            return Err(MmError::InvalidArgument);
        }
        if !va.is_multiple_of(PAGE_4K) {
            return Err(MmError::Paging(PagingError::Misaligned(va)));
        }
        let npages = pages as u64;
        if !is_user_page_range(va, npages)
            || first_page
                .checked_add(pages)
                .is_none_or(|end| end > mem.pages())
        {
            return Err(MmError::BadRange);
        }
        let end = va + npages * PAGE_4K;
        if let Some((&start, r)) = self.regions.range(..end).next_back()
            && start + r.pages * PAGE_4K > va
        {
            return Err(MmError::Paging(PagingError::AlreadyMapped(va.max(start))));
        }
        let device = mem.is_device();
        let pte = pte_flags(flags, device);
        let cache = mem.cache();
        let mut frames = UserTables { hhdm: self.hhdm };
        for i in 0..pages {
            let v = va + i as u64 * PAGE_4K;
            let result = mem
                .phys(first_page + i)
                .ok_or(MmError::BadRange)
                .and_then(|phys| {
                    self.tables
                        .map(v, phys, PageSize::Size4K, pte, cache, &mut frames)
                        .map_err(MmError::from)
                });
            if let Err(e) = result {
                self.clear_pages(va, i as u64);
                return Err(e);
            }
        }
        self.regions.insert(
            va,
            Region {
                pages: npages,
                mem: Arc::clone(mem),
                first_page,
                flags,
            },
        );
        Ok(())
    }

    /// Clears the PTEs of `pages` pages at `va`, flushing them here when this space is loaded
    /// and on every other CPU that may hold them (TLB shootdown).
    fn clear_pages(&mut self, va: u64, pages: u64) {
        let current = self.is_current();
        for i in 0..pages {
            let v = va + i * PAGE_4K;
            if self.tables.clear_4k(v).is_ok() && current {
                paging::flush(v);
            }
        }
        if !current && pages > 0 {
            // With PCIDs this CPU may still hold translations of this space under its tag.
            crate::arch::forget_address_space(self.cr3());
        }
        // Other CPUs running (or tagging) this space: invalidated before the caller frees the
        // frames (they drop with the region after this returns).
        if pages > 0 {
            crate::arch::shootdown(self.cr3(), va, pages);
        }
    }

    /// Removes the mappings of `pages` pages at `va` (unmapped pages in the range are skipped;
    /// mappings partly inside the range are split). Errors: `Paging(Misaligned)`, `BadRange`
    /// (not in the user half, `pages == 0`), `Paging(NotMapped)` when nothing in the range was
    /// mapped.
    pub fn unmap(&mut self, va: u64, pages: usize) -> Result<(), MmError> {
        if !va.is_multiple_of(PAGE_4K) {
            return Err(MmError::Paging(PagingError::Misaligned(va)));
        }
        let npages = pages as u64;
        if !is_user_page_range(va, npages) {
            return Err(MmError::BadRange);
        }
        let end = va + npages * PAGE_4K;
        // Regions overlapping [va, end): the one starting before `va` (if it reaches in) and
        // every one starting inside.
        let mut hit: Vec<u64> = Vec::new();
        if let Some((&start, r)) = self.regions.range(..va).next_back()
            && start + r.pages * PAGE_4K > va
        {
            hit.push(start);
        }
        hit.extend(self.regions.range(va..end).map(|(&s, _)| s));
        if hit.is_empty() {
            return Err(MmError::Paging(PagingError::NotMapped(va)));
        }
        for start in hit {
            let Some(r) = self.regions.remove(&start) else {
                continue;
            };
            let r_end = start + r.pages * PAGE_4K;
            let (a, b) = (start.max(va), r_end.min(end));
            self.clear_pages(a, (b - a) / PAGE_4K);
            if start < a {
                let left = Region {
                    pages: (a - start) / PAGE_4K,
                    mem: Arc::clone(&r.mem),
                    first_page: r.first_page,
                    flags: r.flags,
                };
                self.regions.insert(start, left);
            }
            if b < r_end {
                let right = Region {
                    pages: (r_end - b) / PAGE_4K,
                    mem: Arc::clone(&r.mem),
                    first_page: r.first_page + ((b - start) / PAGE_4K) as usize,
                    flags: r.flags,
                };
                self.regions.insert(b, right);
            }
        }
        Ok(())
    }

    /// The physical address of user byte `va` if its page is mapped user-accessible, RAM, and
    /// writable when `write` is asked for.
    fn user_phys(&self, va: u64, write: bool) -> Result<u64, Error> {
        let t = self.tables.translate(va).ok_or(Error::BadAddress)?;
        let ok = t.flags.contains(Flags::USER_ACCESSIBLE)
            && !t.flags.contains(DEVICE)
            && (!write || t.flags.contains(Flags::WRITABLE));
        if ok {
            Ok(t.phys)
        } else {
            Err(Error::BadAddress)
        }
    }

    /// Copies `dst.len()` bytes from user address `src`. Every byte must be mapped user-readable
    /// in this space; otherwise `Error::BadAddress` and nothing is trusted.
    pub fn copy_from_user(&self, src: u64, dst: &mut [u8]) -> Result<(), Error> {
        let range = UserRange::new(src, dst.len() as u64)?;
        let out = dst.as_mut_ptr();
        for c in range.chunks() {
            let phys = self.user_phys(c.addr, false)?;
            // SAFETY: `phys..phys + c.len` lies in one RAM frame (checked: mapped user, not a
            // device page, chunk within its page) that the HHDM maps; it stays allocated while
            // we hold `&self` (its `Memory` is kept by a region). `c.done + c.len <= dst.len()`
            // by construction of the chunks. User threads may write the frame concurrently,
            // which only changes the bytes we read.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    (self.hhdm + phys) as *const u8,
                    out.add(c.done as usize),
                    c.len as usize,
                )
            };
        }
        Ok(())
    }

    /// Copies `src` to user address `dst`; every byte must be mapped user-writable. Every page
    /// is checked before the first byte is written, so on error user memory is unchanged.
    pub fn copy_to_user(&self, dst: u64, src: &[u8]) -> Result<(), Error> {
        let range = UserRange::new(dst, src.len() as u64)?;
        // One page (the common case: IPC buffers, small structs) needs a single walk.
        let mut chunks = range.chunks();
        if let (Some(c), None) = (chunks.next(), chunks.next()) {
            let phys = self.user_phys(c.addr, true)?;
            self.write_phys(phys, src);
            return Ok(());
        }
        for c in range.chunks() {
            self.user_phys(c.addr, true)?;
        }
        for c in range.chunks() {
            let phys = self.user_phys(c.addr, true)?;
            let (at, n) = (c.done as usize, c.len as usize);
            self.write_phys(phys, src.get(at..at + n).ok_or(Error::BadAddress)?);
        }
        Ok(())
    }

    /// Reads `dst.len()` 8-byte words from user address `src`, which must be 8-byte aligned
    /// (`Error::Misaligned`) and mapped user-readable (`Error::BadAddress`). One page-table
    /// walk per page touched.
    pub fn copy_words_from_user(&self, src: u64, dst: &mut [u64]) -> Result<(), Error> {
        let len = (dst.len() as u64).checked_mul(8).ok_or(Error::BadAddress)?;
        let range = UserRange::aligned(src, len, 8)?;
        for c in range.chunks() {
            let base = (self.hhdm + self.user_phys(c.addr, false)?) as *const u64;
            let first = (c.done / 8) as usize;
            let words = dst
                .get_mut(first..first + (c.len / 8) as usize)
                .ok_or(Error::BadAddress)?;
            for (j, w) in words.iter_mut().enumerate() {
                // SAFETY: `base` is the HHDM address of an 8-aligned user address in a RAM
                // page validated by `user_phys`; the chunk ends at or before the page end, so
                // every `base + j` lies in that page. Volatile: user threads may race.
                *w = unsafe { base.add(j).read_volatile() };
            }
        }
        Ok(())
    }

    /// Writes `src` as 8-byte words to user address `dst` (8-byte aligned, user-writable).
    /// Every page is checked before the first word is written.
    pub fn copy_words_to_user(&self, dst: u64, src: &[u64]) -> Result<(), Error> {
        let len = (src.len() as u64).checked_mul(8).ok_or(Error::BadAddress)?;
        let range = UserRange::aligned(dst, len, 8)?;
        let mut chunks = range.chunks();
        let single = matches!((chunks.next(), chunks.next()), (_, None));
        if !single {
            for c in range.chunks() {
                self.user_phys(c.addr, true)?;
            }
        }
        for c in range.chunks() {
            let base = (self.hhdm + self.user_phys(c.addr, true)?) as *mut u64;
            let first = (c.done / 8) as usize;
            let words = src
                .get(first..first + (c.len / 8) as usize)
                .ok_or(Error::BadAddress)?;
            for (j, w) in words.iter().enumerate() {
                // SAFETY: as in `copy_words_from_user`, for a user-writable RAM page.
                unsafe { base.add(j).write_volatile(*w) };
            }
        }
        Ok(())
    }

    /// Copies `len` bytes from user address `src` in `from` to user address `dst` in `to`
    /// (which may be the same space) without a kernel bounce buffer, page piece by page piece.
    /// Both ranges are fully checked (readable in `from`, writable in `to`) before the first
    /// byte moves, so on error nothing changed. Overlapping ranges in one space behave like
    /// `memmove`.
    pub fn copy_between(
        from: &AddressSpace,
        src: u64,
        to: &AddressSpace,
        dst: u64,
        len: u64,
    ) -> Result<(), Error> {
        let s = UserRange::new(src, len)?;
        let d = UserRange::new(dst, len)?;
        for c in s.chunks() {
            from.user_phys(c.addr, false)?;
        }
        for c in d.chunks() {
            to.user_phys(c.addr, true)?;
        }
        // Same space with the destination inside the source: copy from the end, like memmove.
        let backward = core::ptr::eq(from, to) && dst > src && dst - src < len;
        let mut done = 0;
        while done < len {
            let (off, n) = if backward {
                let end = len - done;
                let (s_last, d_last) = (src + end - 1, dst + end - 1);
                let n = (s_last % PAGE_4K + 1).min(d_last % PAGE_4K + 1).min(end);
                (end - n, n)
            } else {
                let (sa, da) = (src + done, dst + done);
                let n = (PAGE_4K - sa % PAGE_4K)
                    .min(PAGE_4K - da % PAGE_4K)
                    .min(len - done);
                (done, n)
            };
            let sp = from.user_phys(src + off, false)?;
            let dp = to.user_phys(dst + off, true)?;
            // SAFETY: both pieces lie within one RAM page each (n stops at either page end),
            // validated just above and kept alive by the spaces' regions while we hold both
            // references. `copy` tolerates overlap inside a piece; the direction handles
            // overlap across pieces.
            unsafe {
                core::ptr::copy(
                    (from.hhdm + sp) as *const u8,
                    (to.hhdm + dp) as *mut u8,
                    n as usize,
                )
            };
            done += n;
        }
        Ok(())
    }

    /// Writes `bytes` at the RAM address `phys` (validated by `user_phys`, within one page).
    fn write_phys(&self, phys: u64, bytes: &[u8]) {
        // SAFETY: `phys..phys + bytes.len()` lies in one user-writable RAM frame of this space
        // (checked by the caller through `user_phys`), mapped RW by the HHDM and kept alive by
        // its region while we hold `&self`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (self.hhdm + phys) as *mut u8,
                bytes.len(),
            )
        };
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // The owner normally leaves the space first (`sched::leave_address_space`); this is
        // the safety net: never free the tables the CPU is walking.
        if self.is_current() {
            // SAFETY: the kernel's PML4 maps the whole upper half, which is all the kernel uses.
            unsafe { crate::arch::load_address_space(vmm::root()) };
        }
        // A later space may get this PML4 frame back: no PCID may keep its translations.
        crate::arch::forget_address_space(self.cr3());
        let mut free = |frame: u64| {
            if let Err(e) = pmm::free_frame(frame) {
                log::error!("aspace: freeing table {frame:#x}: {e:?}");
            }
        };
        self.tables.free_lower_half(&mut free);
        free(self.tables.root());
        // `regions` drops after this, releasing the Memory references (and their frames when
        // they were the last).
    }
}
