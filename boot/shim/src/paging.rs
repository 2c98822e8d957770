//! The kernel's page tables (4-level), built in bootloader-reclaimable memory.
//!
//! Table pages are physical memory below 4 GiB, which the shim reaches through its identity map;
//! the kernel later sees them through the HHDM like every other reclaimable page.

use hsync_bootcore::PAGE;
use hsync_bootcore::memmap::{self, Kind, MemoryMap};

const PRESENT: u64 = 1;
/// Writable.
pub const WRITE: u64 = 1 << 1;
const PWT: u64 = 1 << 3;
const HUGE: u64 = 1 << 7;
const PAT_4K: u64 = 1 << 7;
const PAT_2M: u64 = 1 << 12;
/// No-execute (dropped when the CPU lacks NX).
pub const NO_EXEC: u64 = 1 << 63;
/// Write-combining through PAT entry 5 (PAT=1, PCD=0, PWT=1), for the framebuffer. Expressed
/// for 4 KiB pages; [`PageTables::map`] moves the PAT bit for 2 MiB pages.
pub const WRITE_COMBINING: u64 = PAT_4K | PWT;

const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const TWO_MIB: u64 = 0x20_0000;

/// Page tables under construction.
pub struct PageTables {
    /// Physical address of the PML4.
    pub root: u64,
    nx: bool,
}

/// Identity-mapped pointer to the `index`th entry of the table at `table`.
fn entry(table: u64, index: u64) -> *mut u64 {
    (table + index * 8) as *mut u64
}

impl PageTables {
    /// An empty PML4 allocated from `map`.
    pub fn new(map: &mut MemoryMap, nx: bool) -> Result<Self, memmap::Error> {
        Ok(Self {
            root: zeroed_page(map)?,
            nx,
        })
    }

    /// Maps `[virt, virt + len)` to `[phys, ...)`; all three must be page-aligned. `flags` is a
    /// combination of [`WRITE`], [`NO_EXEC`], [`WRITE_COMBINING`]. Uses 2 MiB pages where
    /// alignment and length allow when `large` is set.
    pub fn map(
        &mut self,
        map: &mut MemoryMap,
        virt: u64,
        phys: u64,
        len: u64,
        flags: u64,
        large: bool,
    ) -> Result<(), memmap::Error> {
        let flags = if self.nx { flags } else { flags & !NO_EXEC };
        let mut off = 0;
        while off < len {
            let (v, p) = (virt + off, phys + off);
            let huge = large && v % TWO_MIB == 0 && p % TWO_MIB == 0 && len - off >= TWO_MIB;
            let pd = self.walk(map, v, 2)?;
            let pde = entry(pd, (v >> 21) & 511);
            if huge {
                let f = if flags & PAT_4K != 0 {
                    (flags & !PAT_4K) | PAT_2M
                } else {
                    flags
                };
                // SAFETY: `pde` points into a table page this builder allocated (identity-mapped,
                // owned by nobody else until the handover).
                unsafe { pde.write(p | f | PRESENT | HUGE) };
                off += TWO_MIB;
            } else {
                let pt = self.walk(map, v, 1)?;
                // SAFETY: as above, a table page owned by this builder.
                unsafe { entry(pt, (v >> 12) & 511).write(p | flags | PRESENT) };
                off += PAGE;
            }
        }
        Ok(())
    }

    /// The table at `level` (2 = page directory, 1 = page table) on the path to `virt`,
    /// allocating intermediate tables (writable, executable: leaves decide).
    fn walk(&mut self, map: &mut MemoryMap, virt: u64, level: u32) -> Result<u64, memmap::Error> {
        let mut table = self.root;
        for shift in [39u32, 30, 21].into_iter().take((4 - level) as usize) {
            let e = entry(table, (virt >> shift) & 511);
            // SAFETY: `e` is in a table page owned by this builder.
            let value = unsafe { e.read() };
            table = if value & PRESENT != 0 {
                value & ADDR_MASK
            } else {
                let next = zeroed_page(map)?;
                // SAFETY: as above.
                unsafe { e.write(next | PRESENT | WRITE) };
                next
            };
        }
        Ok(table)
    }
}

/// One zeroed bootloader-reclaimable page below 4 GiB.
pub fn zeroed_page(map: &mut MemoryMap) -> Result<u64, memmap::Error> {
    let page = map.alloc(PAGE, PAGE, crate::LOW_LIMIT, Kind::BootloaderReclaimable)?;
    // SAFETY: `alloc` just carved this page out of usable RAM below 4 GiB (identity-mapped); no
    // one else refers to it.
    unsafe { core::ptr::write_bytes(page as *mut u8, 0, PAGE as usize) };
    Ok(page)
}
