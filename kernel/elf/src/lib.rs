//! The one ELF reader of HSYNC-OS: from the bytes of an x86-64 ELF64 executable to its entry
//! point and its loadable segments, or a precise reason to refuse the file.
//!
//! Parsing is the `elf` crate's (`ElfBytes` with `default-features = false`: no `std`, no
//! allocator, every read bounds-checked). We use `elf` rather than `goblin` because goblin's
//! program-header parsing (`ProgramHeader::parse`, `Elf::parse`) returns `Vec`s and so needs an
//! allocator; the boot shim has none, and the kernel's loader must not allocate on a path a user
//! image controls.
//!
//! On top of parsing, this crate checks what every loader of ours needs, whatever the address
//! space: a static (`ET_EXEC`), little-endian x86-64 file with a program header table; no
//! `PT_INTERP`/`PT_DYNAMIC`; each `PT_LOAD` with `memsz > 0` has its file bytes inside the file,
//! `filesz <= memsz`, an end that does not overflow even when rounded up to a page, and is not
//! both writable and executable (W^X); segments are returned sorted by address and no two share
//! a page; the entry point lies inside an executable segment. Where segments may go (user space,
//! the kernel's top 2 GiB) is the caller's policy: `hsync_kcore::elf` for user images,
//! `hsync_bootcore::elf` for the kernel.
//!
//! It refuses to do anything else: no sections, symbols, relocations or dynamic linking.

#![no_std]

use elf::ElfBytes;
use elf::abi::{EI_NIDENT, EM_X86_64, ET_EXEC, PF_W, PF_X, PT_DYNAMIC, PT_INTERP, PT_LOAD};
use elf::endian::LittleEndian;
use elf::file::{Class, ELF64_EHDR_TAILSIZE, FileHeader, parse_ident};
use elf::parse::ParseError;

pub mod build;

/// Bytes in a page.
pub const PAGE: u64 = 4096;
/// Most program headers a file may have (of any type).
pub const MAX_PHDRS: usize = 64;

/// Why a file was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the ELF header, or bad magic.
    NotElf,
    /// Not ELF64 little-endian version 1.
    WrongClass,
    /// Not `EM_X86_64`.
    WrongMachine,
    /// Not `ET_EXEC` (relocatable, shared/PIE or core files are refused).
    WrongType,
    /// Program (or section) header table missing, outside the file, with a foreign entry size,
    /// or more than [`MAX_PHDRS`] program headers.
    BadTables,
    /// `PT_INTERP` or `PT_DYNAMIC`: the file wants a dynamic loader.
    Dynamic,
    /// No loadable segment with a non-zero memory size.
    NoSegments,
    /// More loadable segments than the caller has room for.
    TooManySegments,
    /// A segment's file bytes run past the end of the file, or `filesz > memsz`.
    FileRange,
    /// A segment's end (rounded up to a page) overflows the address space.
    AddressOverflow,
    /// A segment is both writable and executable.
    WriteExecute,
    /// Two segments share a page.
    Overlap,
    /// The entry point is not inside an executable segment.
    BadEntry,
}

/// One loadable segment (`PT_LOAD` with `memsz > 0`), checked as the crate docs say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Link address of the first byte (`p_vaddr`).
    pub vaddr: u64,
    /// Bytes in memory (`p_memsz`; the tail past `filesz` is zero).
    pub memsz: u64,
    /// Offset of the first byte in the file (`p_offset`).
    pub offset: u64,
    /// Bytes present in the file (`p_filesz`).
    pub filesz: u64,
    /// `PF_W`.
    pub writable: bool,
    /// `PF_X`.
    pub executable: bool,
}

impl Segment {
    /// The page-aligned range `[start, end)` this segment's pages cover (cannot overflow: the
    /// reader refused segments whose rounded end would).
    pub fn pages(&self) -> (u64, u64) {
        let end = (self.vaddr + self.memsz).next_multiple_of(PAGE);
        (self.vaddr - self.vaddr % PAGE, end)
    }
}

/// A checked executable with room for `N` loadable segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Executable<const N: usize> {
    /// `e_entry` (inside an executable segment).
    pub entry: u64,
    segments: [Segment; N],
    count: usize,
}

impl<const N: usize> Executable<N> {
    /// The loadable segments, sorted by address, no two sharing a page.
    pub fn segments(&self) -> &[Segment] {
        self.segments.get(..self.count).unwrap_or(&[])
    }
}

/// The file header, checked before the tables are looked at (so a 32-bit or foreign file is
/// named as such, not as a table of the wrong entry size).
fn header(file: &[u8]) -> Result<FileHeader<LittleEndian>, Error> {
    let class_error = |e| match e {
        ParseError::BadMagic(_) | ParseError::SliceReadError(_) => Error::NotElf,
        _ => Error::WrongClass,
    };
    let ident = parse_ident::<LittleEndian>(file.get(..EI_NIDENT).ok_or(Error::NotElf)?)
        .map_err(class_error)?;
    if ident.1 != Class::ELF64 {
        return Err(Error::WrongClass);
    }
    let tail = file
        .get(EI_NIDENT..EI_NIDENT + ELF64_EHDR_TAILSIZE)
        .ok_or(Error::NotElf)?;
    let ehdr = FileHeader::parse_tail(ident, tail).map_err(class_error)?;
    if ehdr.version != 1 {
        return Err(Error::WrongClass);
    }
    if ehdr.e_machine != EM_X86_64 {
        return Err(Error::WrongMachine);
    }
    if ehdr.e_type != ET_EXEC {
        return Err(Error::WrongType);
    }
    Ok(ehdr)
}

/// Reads and checks `file`. Never panics, never allocates.
pub fn read<const N: usize>(file: &[u8]) -> Result<Executable<N>, Error> {
    let entry = header(file)?.e_entry;
    // The header is sound; whatever the crate refuses now is in the header tables.
    let parsed = ElfBytes::<LittleEndian>::minimal_parse(file).map_err(|_| Error::BadTables)?;
    let table = parsed.segments().ok_or(Error::BadTables)?;
    if table.is_empty() || table.len() > MAX_PHDRS {
        return Err(Error::BadTables);
    }
    let mut segments = [Segment::default(); N];
    let mut count = 0;
    for i in 0..table.len() {
        let ph = table.get(i).map_err(|_| Error::BadTables)?;
        match ph.p_type {
            PT_INTERP | PT_DYNAMIC => return Err(Error::Dynamic),
            PT_LOAD if ph.p_memsz > 0 => {}
            _ => continue,
        }
        let in_file = ph
            .p_offset
            .checked_add(ph.p_filesz)
            .is_some_and(|end| end <= file.len() as u64);
        if ph.p_filesz > ph.p_memsz || !in_file {
            return Err(Error::FileRange);
        }
        let rounded_end = ph
            .p_vaddr
            .checked_add(ph.p_memsz)
            .and_then(|end| end.checked_next_multiple_of(PAGE));
        if rounded_end.is_none() {
            return Err(Error::AddressOverflow);
        }
        let (writable, executable) = (ph.p_flags & PF_W != 0, ph.p_flags & PF_X != 0);
        if writable && executable {
            return Err(Error::WriteExecute);
        }
        let slot = segments.get_mut(count).ok_or(Error::TooManySegments)?;
        *slot = Segment {
            vaddr: ph.p_vaddr,
            memsz: ph.p_memsz,
            offset: ph.p_offset,
            filesz: ph.p_filesz,
            writable,
            executable,
        };
        count += 1;
    }
    let used = segments.get_mut(..count).ok_or(Error::NoSegments)?;
    if used.is_empty() {
        return Err(Error::NoSegments);
    }
    used.sort_unstable_by_key(|s| s.vaddr);
    if used.windows(2).any(|w| w[0].pages().1 > w[1].pages().0) {
        return Err(Error::Overlap);
    }
    if !used
        .iter()
        .any(|s| s.executable && entry >= s.vaddr && entry - s.vaddr < s.memsz)
    {
        return Err(Error::BadEntry);
    }
    Ok(Executable {
        entry,
        segments,
        count,
    })
}

#[cfg(test)]
mod tests;
