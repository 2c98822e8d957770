//! The physical memory map, from the firmware's raw list to the map handed to the kernel.
//!
//! Firmware maps can be unsorted, overlapping, contain empty entries and unaligned usable ranges
//! (qboot, microvm; see notes/boot.md §5.8). [`MemoryMap::from_firmware`] resolves all of that: the
//! stricter type wins where entries overlap, and usable memory is trimmed inward to whole pages.
//! From then on the map is always *normal*: sorted, non-overlapping, adjacent equal kinds merged.
//!
//! The shim then claims memory out of the usable ranges ([`MemoryMap::claim`], [`MemoryMap::alloc`]).
//! [`Kind::InUse`] marks boot-loader data that must survive until the jump (boot information,
//! the loader's copies of the modules) but is free for the kernel afterwards: it is reported as usable.

use crate::{FixedVec, PAGE, align_down, align_up};

/// Entry capacity of a map. QEMU gives ~6 entries, OVMF through GRUB ~40.
pub const CAPACITY: usize = 128;

/// What a range of physical memory is.
///
/// The declaration order is the precedence when firmware entries overlap: later wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Kind {
    /// Free RAM.
    #[default]
    Usable,
    /// Used by the shim until the jump, free afterwards (reported as usable).
    InUse,
    /// Shim image, page tables, responses, stack: the kernel may reclaim it once done with them.
    BootloaderReclaimable,
    /// The kernel image and the modules.
    ExecutableAndModules,
    /// ACPI tables, reclaimable once parsed.
    AcpiReclaimable,
    /// ACPI non-volatile storage.
    AcpiNvs,
    /// Anything else the firmware keeps.
    Reserved,
    /// Broken RAM.
    BadMemory,
    /// The linear framebuffer.
    Framebuffer,
}

impl Kind {
    /// The Limine memory-map type (`limine::memory_map::EntryType`).
    pub fn limine_type(self) -> u64 {
        match self {
            Kind::Usable | Kind::InUse => 0,
            Kind::Reserved => 1,
            Kind::AcpiReclaimable => 2,
            Kind::AcpiNvs => 3,
            Kind::BadMemory => 4,
            Kind::BootloaderReclaimable => 5,
            Kind::ExecutableAndModules => 6,
            Kind::Framebuffer => 7,
        }
    }

    /// The kind of an E820/Multiboot/PVH memory type. Unknown types (GRUB-EFI's 20, ...) are reserved.
    pub fn from_e820(ty: u32) -> Kind {
        match ty {
            1 => Kind::Usable,
            3 => Kind::AcpiReclaimable,
            4 => Kind::AcpiNvs,
            5 => Kind::BadMemory,
            _ => Kind::Reserved,
        }
    }

    /// Whether base revision 3 maps this kind in the HHDM.
    pub fn in_hhdm(self) -> bool {
        matches!(
            self,
            Kind::Usable
                | Kind::InUse
                | Kind::BootloaderReclaimable
                | Kind::ExecutableAndModules
                | Kind::Framebuffer
        )
    }
}

/// A half-open physical range `[base, end)` of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Region {
    /// First byte.
    pub base: u64,
    /// One past the last byte.
    pub end: u64,
    /// What it is.
    pub kind: Kind,
}

/// Errors of map operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// More entries than [`CAPACITY`].
    Full,
    /// No usable range can satisfy the allocation.
    OutOfMemory,
}

/// A normal memory map (see the module docs).
#[derive(Clone, Copy, Default)]
pub struct MemoryMap {
    regions: FixedVec<Region, CAPACITY>,
}

impl MemoryMap {
    /// Builds a normal map from raw firmware entries `(base, length, kind)` in any order.
    pub fn from_firmware(raw: &[(u64, u64, Kind)]) -> Result<Self, Error> {
        let mut map = MemoryMap::default();
        // Paint in increasing precedence so the stricter kind is painted last and wins.
        let mut order: FixedVec<Region, CAPACITY> = FixedVec::default();
        for &(base, len, kind) in raw {
            let end = base.saturating_add(len);
            if end > base {
                order
                    .push(Region { base, end, kind })
                    .map_err(|()| Error::Full)?;
            }
        }
        order
            .as_mut_slice()
            .sort_unstable_by_key(|r| (r.kind, r.base));
        for r in order.as_slice() {
            map.paint(r.base, r.end, r.kind, false)?;
        }
        // Usable memory is handed out in pages: trim it inward. The slivers are simply not reported.
        let mut trimmed: FixedVec<Region, CAPACITY> = FixedVec::default();
        for &r in map.regions.as_slice() {
            let r = if r.kind == Kind::Usable {
                let base = align_up(r.base, PAGE).unwrap_or(u64::MAX);
                Region {
                    base,
                    end: align_down(r.end, PAGE),
                    kind: r.kind,
                }
            } else {
                r
            };
            if r.end > r.base {
                trimmed.push(r).map_err(|()| Error::Full)?;
            }
        }
        map.regions = trimmed;
        Ok(map)
    }

    /// The regions, sorted by base.
    pub fn regions(&self) -> &[Region] {
        self.regions.as_slice()
    }

    /// Turns the *usable* parts of `[base, end)`, rounded out to pages, into `kind`. Other kinds
    /// are left alone: this is how the shim reserves things that sit in RAM the firmware called free.
    pub fn claim(&mut self, base: u64, end: u64, kind: Kind) -> Result<(), Error> {
        let base = align_down(base, PAGE);
        let end = align_up(end, PAGE).unwrap_or(u64::MAX);
        self.paint(base, end, kind, true)
    }

    /// Makes `[base, end)` exactly `kind`, whatever was there (also where nothing was).
    pub fn overwrite(&mut self, base: u64, end: u64, kind: Kind) -> Result<(), Error> {
        self.paint(base, end, kind, false)
    }

    /// Allocates `size` bytes (rounded up to pages) aligned to `align` (a power of two ≥ 4 KiB),
    /// wholly below `limit`, from the highest usable range that fits, and marks it `kind`.
    /// Top-down keeps low memory (and the loader's data near the shim) out of the way.
    pub fn alloc(&mut self, size: u64, align: u64, limit: u64, kind: Kind) -> Result<u64, Error> {
        let align = align.max(PAGE);
        let size = align_up(size.max(1), PAGE).ok_or(Error::OutOfMemory)?;
        let found = self.regions.as_slice().iter().rev().find_map(|r| {
            if r.kind != Kind::Usable {
                return None;
            }
            let top = r.end.min(limit);
            let base = align_down(top.checked_sub(size)?, align);
            (base >= r.base).then_some(base)
        });
        let base = found.ok_or(Error::OutOfMemory)?;
        self.paint(base, base + size, kind, true)?;
        Ok(base)
    }

    /// The map as the kernel sees it: `(base, length, limine type)`, with [`Kind::InUse`] turned
    /// back into usable and neighbours of equal Limine type merged.
    pub fn limine_entries(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        let regions = self.regions.as_slice();
        let mut i = 0;
        core::iter::from_fn(move || {
            let first = regions.get(i)?;
            let ty = first.kind.limine_type();
            let mut end = first.end;
            i += 1;
            while let Some(next) = regions.get(i) {
                if next.base != end || next.kind.limine_type() != ty {
                    break;
                }
                end = next.end;
                i += 1;
            }
            Some((first.base, end - first.base, ty))
        })
    }

    /// Sets `[base, end)` to `kind` — only its usable parts if `only_usable`, else all of it
    /// including holes — then renormalizes.
    fn paint(&mut self, base: u64, end: u64, kind: Kind, only_usable: bool) -> Result<(), Error> {
        if end <= base {
            return Ok(());
        }
        let fill_holes = !only_usable;
        let replace = |k: Kind| !only_usable || k == Kind::Usable;
        let mut out: FixedVec<Region, { CAPACITY * 2 }> = FixedVec::default();
        let mut push = |r: Region| -> Result<(), Error> {
            if r.end > r.base {
                out.push(r).map_err(|()| Error::Full)
            } else {
                Ok(())
            }
        };
        let mut cursor = base; // first byte of [base, end) not yet covered by output
        for &r in self.regions.as_slice() {
            if r.end <= base || r.base >= end {
                push(r)?;
                continue;
            }
            if fill_holes && r.base > cursor {
                push(Region {
                    base: cursor,
                    end: r.base,
                    kind,
                })?;
            }
            let (lo, hi) = (r.base.max(base), r.end.min(end));
            push(Region {
                base: r.base,
                end: lo,
                ..r
            })?;
            push(Region {
                base: lo,
                end: hi,
                kind: if replace(r.kind) { kind } else { r.kind },
            })?;
            push(Region {
                base: hi,
                end: r.end,
                ..r
            })?;
            cursor = cursor.max(hi);
        }
        if fill_holes && cursor < end {
            push(Region {
                base: cursor,
                end,
                kind,
            })?;
        }
        out.as_mut_slice().sort_unstable_by_key(|r| r.base);
        // Merge neighbours of the same kind.
        let mut merged: FixedVec<Region, CAPACITY> = FixedVec::default();
        for &r in out.as_slice() {
            if let Some(last) = merged.as_mut_slice().last_mut()
                && last.end == r.base
                && last.kind == r.kind
            {
                last.end = r.end;
                continue;
            }
            merged.push(r).map_err(|()| Error::Full)?;
        }
        self.regions = merged;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Kind::*;

    fn r(base: u64, end: u64, kind: Kind) -> Region {
        Region { base, end, kind }
    }

    fn check_normal(map: &MemoryMap) {
        for w in map.regions().windows(2) {
            assert!(w[0].end <= w[1].base, "sorted and disjoint: {w:?}");
            assert!(
                !(w[0].end == w[1].base && w[0].kind == w[1].kind),
                "merged: {w:?}"
            );
        }
        for r in map.regions() {
            assert!(r.end > r.base);
            if matches!(r.kind, Usable | InUse | BootloaderReclaimable) {
                assert_eq!(r.base % PAGE, 0, "{r:?}");
                assert_eq!(r.end % PAGE, 0, "{r:?}");
            }
        }
    }

    #[test]
    fn sorts_drops_empty_and_trims_usable() {
        // qboot-like: unsorted, a trailing zero-length entry, unaligned RAM end.
        let map = MemoryMap::from_firmware(&[
            (0x100000, 0xff00000 - 0x100000 + 0x123, Usable),
            (0, 0x9fc00, Usable),
            (0x9fc00, 0x400, Reserved),
            (0, 0, Usable),
        ])
        .unwrap();
        check_normal(&map);
        assert_eq!(
            map.regions(),
            &[
                r(0, 0x9f000, Usable),
                r(0x9fc00, 0xa0000, Reserved),
                r(0x100000, 0xff00000, Usable)
            ]
        );
    }

    #[test]
    fn stricter_type_wins_on_overlap() {
        let map = MemoryMap::from_firmware(&[
            (0x0, 0x10000, Usable),
            (0x4000, 0x2000, Reserved),
            (0x5000, 0x2000, AcpiNvs),
            (0x8000, 0x1000, AcpiReclaimable),
        ])
        .unwrap();
        check_normal(&map);
        assert_eq!(
            map.regions(),
            &[
                r(0, 0x4000, Usable),
                r(0x4000, 0x6000, Reserved),
                r(0x6000, 0x7000, AcpiNvs),
                r(0x7000, 0x8000, Usable),
                r(0x8000, 0x9000, AcpiReclaimable),
                r(0x9000, 0x10000, Usable),
            ]
        );
    }

    #[test]
    fn claim_rounds_out_and_touches_only_usable() {
        let mut map =
            MemoryMap::from_firmware(&[(0, 0x9f000, Usable), (0x9f000, 0x1000, Reserved)]).unwrap();
        map.claim(0x9e800, 0x9f800, InUse).unwrap();
        check_normal(&map);
        assert_eq!(
            map.regions(),
            &[
                r(0, 0x9e000, Usable),
                r(0x9e000, 0x9f000, InUse),
                r(0x9f000, 0xa0000, Reserved)
            ]
        );
    }

    #[test]
    fn alloc_is_top_down_aligned_below_limit_and_merges() {
        let mut map = MemoryMap::from_firmware(&[(0x100000, 0x1000000, Usable)]).unwrap();
        let a = map
            .alloc(0x1800, 0x1000, 0x800000, BootloaderReclaimable)
            .unwrap();
        assert_eq!(a, 0x7fe000);
        let b = map
            .alloc(0x1000, 0x1000, 0x800000, BootloaderReclaimable)
            .unwrap();
        assert_eq!(b, 0x7fd000);
        let c = map
            .alloc(0x1000, 0x200000, 0x800000, ExecutableAndModules)
            .unwrap();
        assert_eq!(c, 0x600000);
        check_normal(&map);
        assert!(
            map.regions()
                .contains(&r(0x7fd000, 0x800000, BootloaderReclaimable))
        );
        assert_eq!(
            map.alloc(0x2000000, 0x1000, u64::MAX, Usable),
            Err(Error::OutOfMemory)
        );
    }

    #[test]
    fn overwrite_fills_holes_and_limine_view_merges_in_use() {
        let mut map = MemoryMap::from_firmware(&[(0, 0x4000, Usable)]).unwrap();
        map.claim(0x1000, 0x2000, InUse).unwrap();
        map.overwrite(0x8000, 0x9000, Framebuffer).unwrap();
        map.overwrite(0, 0x1000, Reserved).unwrap();
        check_normal(&map);
        let v: std::vec::Vec<_> = map.limine_entries().collect();
        assert_eq!(
            v,
            [(0, 0x1000, 1), (0x1000, 0x3000, 0), (0x8000, 0x1000, 7)]
        );
    }

    extern crate std;
}
