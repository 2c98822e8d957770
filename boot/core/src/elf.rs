//! Validating the kernel ELF and planning where its segments go.
//!
//! Hand-written rather than `goblin`: we need ten header fields and the program headers of a
//! file that is untrusted input, read with explicit bounds checks from an unaligned byte slice,
//! without an allocator; that is shorter to write and to review than adapting a general parser.
//!
//! The plan follows the Limine protocol: the image is one physically contiguous block covering
//! `[vbase, vbase + span)` (page-rounded), every `PT_LOAD` keeps its link address, and each page
//! gets the permissions of the one segment that owns it (read always; write from `PF_W`;
//! execute from `PF_X`). Two segments sharing a page would need conflicting permissions, so that
//! is rejected.

use crate::{FixedVec, PAGE, align_down, align_up};

/// The lowest address a Limine kernel may be linked at (the top 2 GiB).
pub const KERNEL_MIN_VADDR: u64 = 0xffff_ffff_8000_0000;

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;

/// Why a kernel ELF was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not an ELF64 little-endian x86-64 executable (`ET_EXEC`).
    NotX86_64Executable,
    /// A header or segment lies outside the file.
    Truncated,
    /// No `PT_LOAD` segments.
    NoSegments,
    /// More than [`MAX_SEGMENTS`] loadable segments.
    TooManySegments,
    /// A segment below [`KERNEL_MIN_VADDR`], wrapping around, or with `filesz > memsz`.
    BadSegment,
    /// Segments out of order or sharing a page.
    OverlappingSegments,
    /// The entry point is not inside an executable segment.
    BadEntry,
}

/// Upper bound on loadable segments (the kernel has three).
pub const MAX_SEGMENTS: usize = 8;

/// One loadable segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Link address of the first byte.
    pub vaddr: u64,
    /// Bytes in memory (the tail past `filesz` is zero).
    pub memsz: u64,
    /// Offset of the first byte in the file.
    pub offset: u64,
    /// Bytes present in the file.
    pub filesz: u64,
    /// `PF_W`.
    pub writable: bool,
    /// `PF_X`.
    pub executable: bool,
}

impl Segment {
    /// The page-aligned virtual range this segment's pages cover.
    pub fn pages(&self) -> (u64, u64) {
        let end = align_up(self.vaddr + self.memsz, PAGE).unwrap_or(u64::MAX);
        (align_down(self.vaddr, PAGE), end)
    }
}

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

fn u16_at(b: &[u8], off: usize) -> Result<u16, Error> {
    let s = b.get(off..off + 2).ok_or(Error::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, Error> {
    let s = b.get(off..off + 4).ok_or(Error::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, Error> {
    let s = b.get(off..off + 8).ok_or(Error::Truncated)?;
    let mut v = [0; 8];
    v.copy_from_slice(s);
    Ok(u64::from_le_bytes(v))
}

/// Validates `file` and plans its loading.
pub fn plan(file: &[u8]) -> Result<Plan, Error> {
    // e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT; e_type ET_EXEC; e_machine EM_X86_64.
    let ident_ok = file.get(..7) == Some(&[0x7f, b'E', b'L', b'F', 2, 1, 1]);
    if !ident_ok || u16_at(file, 16)? != 2 || u16_at(file, 18)? != 62 {
        return Err(Error::NotX86_64Executable);
    }
    let entry = u64_at(file, 24)?;
    let phoff = usize::try_from(u64_at(file, 32)?).map_err(|_| Error::Truncated)?;
    let phentsize = usize::from(u16_at(file, 54)?);
    let phnum = usize::from(u16_at(file, 56)?);
    if phentsize < 56 {
        return Err(Error::Truncated);
    }

    let mut segments: FixedVec<Segment, MAX_SEGMENTS> = FixedVec::default();
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i.checked_mul(phentsize).ok_or(Error::Truncated)?)
            .ok_or(Error::Truncated)?;
        if u32_at(file, ph)? != PT_LOAD {
            continue;
        }
        let flags = u32_at(file, ph + 4)?;
        let seg = Segment {
            offset: u64_at(file, ph + 8)?,
            vaddr: u64_at(file, ph + 16)?,
            filesz: u64_at(file, ph + 32)?,
            memsz: u64_at(file, ph + 40)?,
            writable: flags & PF_W != 0,
            executable: flags & PF_X != 0,
        };
        if seg.memsz == 0 {
            continue;
        }
        let in_file = seg
            .offset
            .checked_add(seg.filesz)
            .is_some_and(|e| e <= file.len() as u64);
        if !in_file {
            return Err(Error::Truncated);
        }
        let fits = seg
            .vaddr
            .checked_add(seg.memsz)
            .is_some_and(|e| e <= u64::MAX - PAGE);
        if seg.vaddr < KERNEL_MIN_VADDR || !fits || seg.filesz > seg.memsz {
            return Err(Error::BadSegment);
        }
        segments.push(seg).map_err(|()| Error::TooManySegments)?;
    }

    let segs = segments.as_slice();
    let (Some(first), Some(last)) = (segs.first(), segs.last()) else {
        return Err(Error::NoSegments);
    };
    // Program headers must be sorted by vaddr (ELF spec); also forbid page sharing.
    if segs.windows(2).any(|w| w[0].pages().1 > w[1].pages().0) {
        return Err(Error::OverlappingSegments);
    }
    if !segs
        .iter()
        .any(|s| s.executable && (s.vaddr..s.vaddr + s.memsz).contains(&entry))
    {
        return Err(Error::BadEntry);
    }
    let vbase = first.pages().0;
    Ok(Plan {
        segments,
        vbase,
        span: last.pages().1 - vbase,
        entry,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

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
        assert_eq!(
            plan(b"not an elf at all, sorry").unwrap_err(),
            Error::NotX86_64Executable
        );
        let low = build(0x100000, &[(0x100000, 0x10, 0x10, 5)]);
        assert_eq!(plan(&low).unwrap_err(), Error::BadSegment);
        let shared = build(K, &[(K, 0x10, 0x10, 5), (K + 0x800, 0x10, 0x10, 6)]);
        assert_eq!(plan(&shared).unwrap_err(), Error::OverlappingSegments);
        let entry_in_data = build(
            K + 0x1000,
            &[(K, 0x10, 0x10, 5), (K + 0x1000, 0x10, 0x10, 6)],
        );
        assert_eq!(plan(&entry_in_data).unwrap_err(), Error::BadEntry);
        let bss_only_file = build(K, &[(K, 0x20, 0x10, 5)]);
        assert_eq!(plan(&bss_only_file).unwrap_err(), Error::BadSegment);
        let mut cut = build(K, &[(K, 0x100, 0x100, 5)]);
        cut.truncate(cut.len() - 1);
        assert_eq!(plan(&cut).unwrap_err(), Error::Truncated);
    }
}
