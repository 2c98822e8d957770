//! Validating the kernel ELF and planning where its segments go.
//!
//! Reading the file is [`hsync_elf`]'s, the one ELF reader (on the `elf` crate, without an
//! allocator): header, program headers, file bounds, W^X, page sharing, the entry point inside an
//! executable segment. This module adds the Limine protocol's placement.
//!
//! The plan follows the Limine protocol: the image is one physically contiguous block covering
//! `[vbase, vbase + span)` (page-rounded), every `PT_LOAD` keeps its link address, and each page
//! gets the permissions of the one segment that owns it (read always; write from `PF_W`;
//! execute from `PF_X`). Two segments sharing a page would need conflicting permissions, so the
//! reader refuses that.

use crate::FixedVec;

pub use hsync_elf::Segment;

/// The lowest address a Limine kernel may be linked at (the top 2 GiB).
pub const KERNEL_MIN_VADDR: u64 = 0xffff_ffff_8000_0000;

/// Why a kernel ELF was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The reader refused the file (not an x86-64 `ET_EXEC`, truncated, W+X, shared pages,
    /// entry outside the text, ...).
    Elf(hsync_elf::Error),
    /// A segment below [`KERNEL_MIN_VADDR`].
    BadSegment,
}

impl From<hsync_elf::Error> for Error {
    fn from(e: hsync_elf::Error) -> Self {
        Error::Elf(e)
    }
}

/// Upper bound on loadable segments (the kernel has three).
pub const MAX_SEGMENTS: usize = 8;

/// How to load a kernel.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Loadable segments, sorted by address, not sharing pages.
    pub segments: FixedVec<Segment, MAX_SEGMENTS>,
    /// Page-aligned link address of the image's first page.
    pub vbase: u64,
    /// Bytes from `vbase` to the end of the last page.
    pub span: u64,
    /// `e_entry`.
    pub entry: u64,
}

/// Validates `file` and plans its loading.
pub fn plan(file: &[u8]) -> Result<Plan, Error> {
    let exe = hsync_elf::read::<MAX_SEGMENTS>(file)?;
    let mut segments: FixedVec<Segment, MAX_SEGMENTS> = FixedVec::default();
    for s in exe.segments() {
        if s.vaddr < KERNEL_MIN_VADDR {
            return Err(Error::BadSegment);
        }
        // Never fails: the reader holds at most MAX_SEGMENTS.
        segments
            .push(*s)
            .map_err(|()| hsync_elf::Error::TooManySegments)?;
    }
    let segs = segments.as_slice();
    let (Some(first), Some(last)) = (segs.first(), segs.last()) else {
        return Err(hsync_elf::Error::NoSegments.into());
    };
    let vbase = first.pages().0;
    Ok(Plan {
        segments,
        vbase,
        span: last.pages().1 - vbase,
        entry: exe.entry,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::PAGE;
    extern crate std;
    use std::vec::Vec;

    const PT_LOAD: u32 = 1;

    /// (vaddr, filesz, memsz, flags) → a minimal ELF64 file with those PT_LOADs; segment data is
    /// filled with the segment's index + 1.
    pub(crate) fn build(entry: u64, segs: &[(u64, u64, u64, u32)]) -> Vec<u8> {
        let phoff = 64u64;
        let data_start = phoff + 56 * segs.len() as u64;
        let mut f = Vec::new();
        f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        f.resize(16, 0);
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&62u16.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&entry.to_le_bytes());
        f.extend_from_slice(&phoff.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes()); // shoff
        f.extend_from_slice(&0u32.to_le_bytes()); // flags
        f.extend_from_slice(&64u16.to_le_bytes()); // ehsize
        f.extend_from_slice(&56u16.to_le_bytes());
        f.extend_from_slice(&(segs.len() as u16).to_le_bytes());
        f.resize(64, 0);
        let mut off = data_start;
        for &(vaddr, filesz, memsz, flags) in segs {
            f.extend_from_slice(&PT_LOAD.to_le_bytes());
            f.extend_from_slice(&flags.to_le_bytes());
            f.extend_from_slice(&off.to_le_bytes());
            f.extend_from_slice(&vaddr.to_le_bytes());
            f.extend_from_slice(&vaddr.wrapping_sub(KERNEL_MIN_VADDR).to_le_bytes()); // paddr
            f.extend_from_slice(&filesz.to_le_bytes());
            f.extend_from_slice(&memsz.to_le_bytes());
            f.extend_from_slice(&PAGE.to_le_bytes());
            off += filesz;
        }
        for (i, &(_, filesz, _, _)) in segs.iter().enumerate() {
            f.extend(core::iter::repeat_n(i as u8 + 1, filesz as usize));
        }
        f
    }

    const K: u64 = KERNEL_MIN_VADDR;

    #[test]
    fn plans_three_segments_with_permissions() {
        let f = build(
            K + 0x10,
            &[
                (K, 0x1234, 0x1234, 5),
                (K + 0x2000, 0x10, 0x10, 4),
                (K + 0x3000, 0x8, 0x3000, 6),
            ],
        );
        let p = plan(&f).unwrap();
        assert_eq!((p.vbase, p.span, p.entry), (K, 0x6000, K + 0x10));
        let s = p.segments.as_slice();
        assert_eq!(s.len(), 3);
        assert!(s[0].executable && !s[0].writable);
        assert!(!s[1].executable && !s[1].writable);
        assert!(!s[2].executable && s[2].writable);
        assert_eq!(s[2].pages(), (K + 0x3000, K + 0x6000));
    }

    #[test]
    fn rejects_bad_files() {
        let refused = |e| Error::Elf(e);
        assert_eq!(
            plan(b"not an elf at all, sorry").unwrap_err(),
            refused(hsync_elf::Error::NotElf)
        );
        let low = build(0x100000, &[(0x100000, 0x10, 0x10, 5)]);
        assert_eq!(plan(&low).unwrap_err(), Error::BadSegment);
        let shared = build(K, &[(K, 0x10, 0x10, 5), (K + 0x800, 0x10, 0x10, 6)]);
        assert_eq!(
            plan(&shared).unwrap_err(),
            refused(hsync_elf::Error::Overlap)
        );
        let entry_in_data = build(
            K + 0x1000,
            &[(K, 0x10, 0x10, 5), (K + 0x1000, 0x10, 0x10, 6)],
        );
        assert_eq!(
            plan(&entry_in_data).unwrap_err(),
            refused(hsync_elf::Error::BadEntry)
        );
        let bss_only_file = build(K, &[(K, 0x20, 0x10, 5)]);
        assert_eq!(
            plan(&bss_only_file).unwrap_err(),
            refused(hsync_elf::Error::FileRange)
        );
        let wx = build(K, &[(K, 0x10, 0x10, 7)]);
        assert_eq!(
            plan(&wx).unwrap_err(),
            refused(hsync_elf::Error::WriteExecute)
        );
        let mut cut = build(K, &[(K, 0x100, 0x100, 5)]);
        cut.truncate(cut.len() - 1);
        assert_eq!(
            plan(&cut).unwrap_err(),
            refused(hsync_elf::Error::FileRange)
        );
    }

    #[test]
    fn mutated_kernels_never_panic_and_stay_in_the_top_2_gib() {
        let mut f = build(
            K + 0x10,
            &[
                (K, 0x1234, 0x1234, 5),
                (K + 0x2000, 0x10, 0x10, 4),
                (K + 0x3000, 0x8, 0x3000, 6),
            ],
        );
        hsync_elf::build::mutations(&mut f, 64 + 3 * 56, 8, |m| {
            if let Ok(p) = plan(m) {
                assert!(p.vbase >= KERNEL_MIN_VADDR);
                assert!(p.segments.as_slice().iter().all(|s| s.vaddr >= p.vbase));
            }
        });
    }
}
