//! x86_64 four-level page tables: walk, map, unmap, translate; CR3, `invlpg`, EFER.NXE, CR4.PGE.
//!
//! All page-table bit twiddling lives here; `mm` decides *what* to map. Table frames are reached
//! through the higher-half direct map (HHDM), so a [`PageTables`] value is just the physical
//! address of a PML4 plus the HHDM offset. Entries use the `x86_64` crate's types.
//!
//! Intermediate entries are created present + writable (+ user when the leaf is user-accessible)
//! and never NX: the leaf alone decides the permissions, which keeps the W^X reasoning local to
//! one entry. [`PageTables::translate`] still reports the *effective* permissions (writable
//! only if every level is, NX if any level is), so tests check what the CPU enforces.

use x86_64::PhysAddr;
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::{PageTable, PhysFrame};

pub use x86_64::structures::paging::PageTableFlags as Flags;

/// Bytes in a 4 KiB page.
pub const PAGE_4K: u64 = 4096;
/// Bytes in a 2 MiB page.
pub const PAGE_2M: u64 = 2 << 20;

/// Page sizes this module maps (1 GiB pages are not used: `qemu64` lacks them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB, a PT entry.
    Size4K,
    /// 2 MiB, a PD entry with the huge bit.
    Size2M,
}

impl PageSize {
    /// Size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => PAGE_4K,
            Self::Size2M => PAGE_2M,
        }
    }
}

/// Why a page-table operation was refused. Nothing was changed in either case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// The virtual address already has a mapping.
    AlreadyMapped(u64),
    /// The virtual address has no mapping (or not of the requested size).
    NotMapped(u64),
    /// A virtual or physical address is not aligned to the page size, or not canonical.
    Misaligned(u64),
    /// No frame was available for an intermediate table.
    OutOfFrames,
}

/// Memory type of a mapping, encoded with PWT/PCD/PAT as an index into IA32_PAT. The Limine
/// protocol (and our shim) program PAT as WB, WT, UC-, UC, WP, WC, so index 5 is write-combining.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Write-back (PAT 0): RAM.
    WriteBack,
    /// Write-combining (PAT 5): framebuffers.
    WriteCombining,
    /// Strong uncacheable (PAT 3): MMIO registers. Index 3 is UC in the power-on PAT too.
    Uncached,
}

/// The PAT bit: bit 7 in a 4 KiB PTE (where other levels have HUGE_PAGE), bit 12 in a 2 MiB PDE.
const PAT_4K: u64 = 1 << 7;
const PAT_2M: u64 = 1 << 12;

/// Where page-table frames come from. Frames handed out must be zeroed.
pub trait TableFrames {
    /// A zeroed 4 KiB frame, or `None` when memory is exhausted.
    fn alloc_zeroed(&mut self) -> Option<u64>;
}

/// A resolved mapping with the permissions the CPU enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Physical address `virt` maps to.
    pub phys: u64,
    /// Size of the leaf page.
    pub size: PageSize,
    /// Leaf flags, with WRITABLE/USER_ACCESSIBLE cleared and NO_EXECUTE set as the whole walk
    /// dictates.
    pub flags: Flags,
}

/// A four-level page-table tree reached through the HHDM.
#[derive(Debug)]
pub struct PageTables {
    pml4: u64,
    hhdm: u64,
}

/// Address bits of an entry (bits 12..52); the x86_64 crate's `addr()` asserts on huge entries.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

fn is_canonical(virt: u64) -> bool {
    // Bits 63..47 must all equal bit 47 (4-level paging).
    let top = virt >> 47;
    top == 0 || top == 0x1_ffff
}

impl PageTables {
    /// Wraps the tree rooted at the physical frame `pml4`.
    ///
    /// # Safety
    /// `pml4` and every table below it must be page-table frames that only this value (or code
    /// holding the same lock) modifies, and `hhdm` must map all of them read-write.
    pub unsafe fn new(pml4: u64, hhdm: u64) -> Self {
        Self { pml4, hhdm }
    }

    /// Physical address of the PML4.
    pub fn root(&self) -> u64 {
        self.pml4
    }

    /// The table at physical `phys`, which must be a table of this tree.
    fn table(&self, phys: u64) -> &PageTable {
        // SAFETY: `phys` is a page-table frame of this tree (invariant of `new`), mapped by the
        // HHDM; `&self` excludes modification through this value meanwhile.
        unsafe { &*((self.hhdm + phys) as *const PageTable) }
    }

    /// The table at physical `phys`, mutably.
    fn table_mut(&mut self, phys: u64) -> &mut PageTable {
        // SAFETY: as in `table`; `&mut self` makes this the only access to the tree.
        unsafe { &mut *((self.hhdm + phys) as *mut PageTable) }
    }

    /// The table `entry_phys` points to, allocating and linking a zeroed one if absent.
    /// Returns `Ok(None)` when the entry is a huge-page leaf (the walk cannot continue).
    fn next_table(
        &mut self,
        table: u64,
        i: usize,
        user: bool,
        frames: &mut dyn TableFrames,
    ) -> Result<Option<u64>, PagingError> {
        let entry = &mut self.table_mut(table)[i];
        if entry.is_unused() {
            let frame = frames.alloc_zeroed().ok_or(PagingError::OutOfFrames)?;
            let mut flags = Flags::PRESENT | Flags::WRITABLE;
            if user {
                flags |= Flags::USER_ACCESSIBLE;
            }
            entry.set_addr(PhysAddr::new(frame), flags);
            return Ok(Some(frame));
        }
        if entry.flags().contains(Flags::HUGE_PAGE) {
            return Ok(None);
        }
        if user && !entry.flags().contains(Flags::USER_ACCESSIBLE) {
            entry.set_flags(entry.flags() | Flags::USER_ACCESSIBLE);
        }
        Ok(Some(entry.addr().as_u64()))
    }

    /// Makes sure PML4 entry `i` points to a PDPT (allocating an empty one), so address spaces
    /// that copy the upper half of this PML4 later share all kernel mappings made afterwards.
    pub fn preallocate_pml4_entry(
        &mut self,
        i: usize,
        frames: &mut dyn TableFrames,
    ) -> Result<(), PagingError> {
        self.next_table(self.pml4, i, false, frames).map(|_| ())
    }

    /// True when PML4 entry `i` (0..512) is present.
    pub fn pml4_entry_present(&self, i: usize) -> bool {
        self.table(self.pml4)[i & 0x1ff]
            .flags()
            .contains(Flags::PRESENT)
    }

    /// Maps the page at `virt` to `phys` with `flags` (PRESENT is added; HUGE_PAGE and the
    /// cache bits are derived from `size` and `cache`). Fails if the page is already mapped.
    pub fn map(
        &mut self,
        virt: u64,
        phys: u64,
        size: PageSize,
        flags: Flags,
        cache: Cache,
        frames: &mut dyn TableFrames,
    ) -> Result<(), PagingError> {
        let align = size.bytes();
        if !virt.is_multiple_of(align) || !is_canonical(virt) {
            return Err(PagingError::Misaligned(virt));
        }
        if !phys.is_multiple_of(align) || phys & !ADDR_MASK != 0 {
            return Err(PagingError::Misaligned(phys));
        }
        let user = flags.contains(Flags::USER_ACCESSIBLE);
        let leaf_level = match size {
            PageSize::Size4K => 1,
            PageSize::Size2M => 2,
        };
        let mut table = self.pml4;
        for level in (leaf_level + 1..=4).rev() {
            table = self
                .next_table(table, index(virt, level), user, frames)?
                .ok_or(PagingError::AlreadyMapped(virt))?;
        }
        let entry = &mut self.table_mut(table)[index(virt, leaf_level)];
        if !entry.is_unused() {
            return Err(PagingError::AlreadyMapped(virt));
        }
        let mut flags =
            (flags | Flags::PRESENT) - (Flags::HUGE_PAGE | Flags::WRITE_THROUGH | Flags::NO_CACHE);
        let pat = if size == PageSize::Size2M {
            PAT_2M
        } else {
            PAT_4K
        };
        let mut pat_bits = 0;
        match cache {
            Cache::WriteBack => {}
            Cache::WriteCombining => {
                flags |= Flags::WRITE_THROUGH;
                pat_bits = pat;
            }
            Cache::Uncached => flags |= Flags::WRITE_THROUGH | Flags::NO_CACHE,
        }
        flags.set(Flags::HUGE_PAGE, size == PageSize::Size2M);
        // The 2 MiB PAT bit sits in the address field, so it goes into the address.
        let (addr, flags) = if size == PageSize::Size2M {
            (phys | pat_bits, flags)
        } else {
            (phys, flags | Flags::from_bits_retain(pat_bits))
        };
        entry.set_addr(PhysAddr::new(addr), flags);
        Ok(())
    }

    /// Removes the 4 KiB mapping of `virt`, flushes it from this CPU's TLB and returns the
    /// physical frame it pointed to. Page-table frames that become empty are kept (cheap, and
    /// the upper half must keep its tables anyway).
    pub fn unmap_4k(&mut self, virt: u64) -> Result<u64, PagingError> {
        let phys = self.clear_4k(virt)?;
        flush(virt);
        Ok(phys)
    }

    /// Removes the 4 KiB mapping of `virt` *without* touching the TLB and returns the frame it
    /// pointed to. For trees that are not loaded on any CPU (a CR3 load flushes them), or when
    /// the caller flushes itself.
    pub fn clear_4k(&mut self, virt: u64) -> Result<u64, PagingError> {
        if !is_canonical(virt) {
            return Err(PagingError::NotMapped(virt));
        }
        let mut table = self.pml4;
        for level in (2..=4).rev() {
            let entry = &self.table(table)[index(virt, level)];
            if entry.is_unused() || entry.flags().contains(Flags::HUGE_PAGE) {
                return Err(PagingError::NotMapped(virt));
            }
            table = entry.addr().as_u64();
        }
        let entry = &mut self.table_mut(table)[index(virt, 1)];
        if entry.is_unused() {
            return Err(PagingError::NotMapped(virt));
        }
        let phys = entry.addr().as_u64();
        entry.set_unused();
        Ok(phys)
    }

    /// Copies PML4 entries `256..512` (the kernel half) from `kernel`, so this tree shares every
    /// kernel mapping (they are preallocated, so they never change afterwards).
    pub fn share_upper_half(&mut self, kernel: &PageTables) {
        for i in 256..512 {
            let entry = kernel.table(kernel.pml4)[i].clone();
            self.table_mut(self.pml4)[i] = entry;
        }
    }

    /// Unlinks every page-table frame of the lower half (PML4 entries `0..256`) and hands each
    /// one to `free`, bottom-up. Leaf frames are *not* handed over: they belong to whoever
    /// mapped them. The tree must not be loaded on any CPU.
    pub fn free_lower_half(&mut self, free: &mut dyn FnMut(u64)) {
        for i in 0..256 {
            let entry = &self.table(self.pml4)[i];
            if entry.is_unused() {
                continue;
            }
            let pdpt = entry.addr().as_u64();
            self.free_subtree(pdpt, 3, free);
            self.table_mut(self.pml4)[i].set_unused();
        }
    }

    /// Frees the table at `table` (of `level`: 3 = PDPT, 2 = PD, 1 = PT) and all tables below.
    fn free_subtree(&mut self, table: u64, level: u32, free: &mut dyn FnMut(u64)) {
        if level > 1 {
            for i in 0..512 {
                let entry = &self.table(table)[i];
                let flags = entry.flags();
                if flags.contains(Flags::PRESENT) && !flags.contains(Flags::HUGE_PAGE) {
                    let child = entry.addr().as_u64();
                    self.free_subtree(child, level - 1, free);
                }
            }
        }
        free(table);
    }

    /// Resolves `virt` with the effective permissions of the whole walk.
    pub fn translate(&self, virt: u64) -> Option<Translation> {
        if !is_canonical(virt) {
            return None;
        }
        let mut table = self.pml4;
        let mut writable = true;
        let mut user = true;
        let mut nx = false;
        for level in (1..=4).rev() {
            let raw = &self.table(table)[index(virt, level)];
            let flags = raw.flags();
            if !flags.contains(Flags::PRESENT) {
                return None;
            }
            writable &= flags.contains(Flags::WRITABLE);
            user &= flags.contains(Flags::USER_ACCESSIBLE);
            nx |= flags.contains(Flags::NO_EXECUTE);
            let leaf = level == 1 || (level == 2 && flags.contains(Flags::HUGE_PAGE));
            if level == 3 && flags.contains(Flags::HUGE_PAGE) {
                // 1 GiB pages are never created here; a loader's are reported as absent.
                return None;
            }
            let base = raw.addr().as_u64();
            if leaf {
                let size = if level == 1 {
                    PageSize::Size4K
                } else {
                    PageSize::Size2M
                };
                let page_mask = size.bytes() - 1;
                // For 2 MiB leaves bit 12 is the PAT bit, not an address bit.
                let base = base & !page_mask;
                let mut eff = flags;
                eff.set(Flags::WRITABLE, writable);
                eff.set(Flags::USER_ACCESSIBLE, user);
                eff.set(Flags::NO_EXECUTE, nx);
                return Some(Translation {
                    phys: base | (virt & page_mask),
                    size,
                    flags: eff,
                });
            }
            table = base;
        }
        None
    }
}

/// Loads `pml4` into CR3 (flushing all non-global TLB entries).
///
/// # Safety
/// The tree must map the running code, the current stack and everything the kernel touches
/// afterwards, with the same virtual addresses as before.
pub unsafe fn activate(pml4: u64) {
    let frame = PhysFrame::from_start_address(PhysAddr::new(pml4)).expect("PML4 is page aligned");
    // SAFETY: the caller guarantees the new tree maps everything in use.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
}

/// Physical address of the PML4 the CPU is using.
pub fn active_pml4() -> u64 {
    Cr3::read().0.start_address().as_u64()
}

/// The current stack pointer (to check that a new address space still maps the stack).
pub fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: reads a register; no memory access, no side effects.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags))
    };
    rsp
}

/// Invalidates this CPU's TLB entry for `virt` (global ones too).
pub fn flush(virt: u64) {
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(virt));
}

/// True when EFER.NXE is set, i.e. the NO_EXECUTE bit is honoured rather than reserved.
pub fn nx_enabled() -> bool {
    Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE)
}

/// True when CPUID reports global pages (leaf 1, EDX bit 13).
pub fn global_pages_supported() -> bool {
    #[allow(
        unused_unsafe,
        reason = "`__cpuid` is a safe fn on newer toolchains only"
    )]
    // SAFETY: CPUID leaf 1 exists on every x86_64 CPU and only reads identification data.
    let edx = unsafe { core::arch::x86_64::__cpuid(1) }.edx;
    edx & (1 << 13) != 0
}

/// Turns on CR4.PGE so GLOBAL kernel mappings survive address-space switches.
/// Returns false (and changes nothing) when the CPU lacks global pages.
pub fn enable_global_pages() -> bool {
    if !global_pages_supported() {
        return false;
    }
    // SAFETY: setting PGE only changes TLB retention of entries marked GLOBAL, which are the
    // kernel's mappings, identical in every address space. Toggling it flushes the TLB.
    unsafe { Cr4::update(|f| f.insert(Cr4Flags::PAGE_GLOBAL)) };
    true
}
