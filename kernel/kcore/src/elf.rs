//! ELF planning: from the bytes of an x86_64 ELF64 executable to the list of page ranges the
//! kernel must allocate, fill and map — or a precise reason to refuse the image.
//!
//! This is a deliberately small parser of exactly what loading needs (the file header and the
//! program headers), written by hand rather than with `goblin` because every field is a claim
//! from an untrusted file and the checks *are* the point: each read is bounds-checked, each sum
//! is checked for overflow, and nothing is allocated, so host tests can throw arbitrary bytes at
//! it. Sections, symbols, relocations and dynamic linking are refused or ignored: HSYNC-OS runs
//! static, non-relocatable executables (`ET_EXEC`) linked by libhsync's linker script.
//!
//! A plan ([`ElfPlan`]) guarantees: only `PT_LOAD` segments with `memsz > 0` become
//! [`Segment`]s; each is inside `[USER_MIN, USER_END)` (page-rounded), no two share a page, none
//! touches the main stack (with its guard page) or the IPC buffer of `hsync_abi::startup`, none is
//! writable and executable, its file bytes lie inside the image, `filesz <= memsz`, and the total
//! is at most [`MAX_IMAGE_BYTES`]. The entry point lies in an executable segment.

use hsync_abi::MapFlags;
use hsync_abi::startup::{MAIN_IPC_BUFFER, MAIN_STACK_PAGES, MAIN_STACK_TOP, USER_END, USER_MIN};

/// Bytes in a page.
pub const PAGE: u64 = 4096;
/// Most `PT_LOAD` segments an image may have.
pub const MAX_SEGMENTS: usize = 16;
/// Most program headers an image may have (of any type).
pub const MAX_PHDRS: u16 = 64;
/// Largest total memory size (page-rounded) of all segments: 256 MiB.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PF_X: u32 = 1;
const PF_W: u32 = 2;

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than the ELF header, or bad magic.
    NotElf,
    /// Not ELF64 little-endian version 1.
    WrongClass,
    /// Not `EM_X86_64`.
    WrongMachine,
    /// Not `ET_EXEC` (relocatable, shared/PIE or core files are refused).
    WrongType,
    /// Program header table missing, truncated, with a foreign entry size, or too many entries.
    BadProgramHeaders,
    /// `PT_INTERP` or `PT_DYNAMIC`: the image wants a dynamic loader.
    Dynamic,
    /// No loadable segment with a non-zero memory size.
    NoSegments,
    /// More than [`MAX_SEGMENTS`] loadable segments.
    TooManySegments,
    /// A segment's file bytes run past the end of the image, or `filesz > memsz`.
    FileRange,
    /// A segment lies (partly) outside `[USER_MIN, USER_END)`, or its end overflows.
    OutsideUser,
    /// A segment shares a page with another one.
    Overlap,
    /// A segment overlaps the main stack, its guard page or the IPC buffer.
    Reserved,
    /// A segment is both writable and executable.
    WriteExecute,
    /// The segments add up to more than [`MAX_IMAGE_BYTES`].
    TooLarge,
    /// The entry point is not inside an executable segment.
    BadEntry,
}

/// One loadable segment, page-rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First page (page-aligned user address).
    pub page: u64,
    /// Pages to allocate and map.
    pub pages: u64,
    /// Offset of the segment's first byte (`p_vaddr`) within `page`.
    pub page_offset: u64,
    /// Image bytes `[file_offset, file_offset + file_len)` go to `p_vaddr`; the rest is zero.
    pub file_offset: u64,
    /// Bytes copied from the image (`p_filesz`).
    pub file_len: u64,
    /// Mapping permissions: R, RW or RX (a segment without `PF_W`/`PF_X` is read-only).
    pub flags: MapFlags,
}

impl Segment {
    /// One past the last mapped byte.
    pub fn end(&self) -> u64 {
        self.page + self.pages * PAGE
    }
}

/// A validated load plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfPlan {
    /// Entry point (inside an executable segment).
    pub entry: u64,
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
}

impl ElfPlan {
    /// The segments, sorted by address.
    pub fn segments(&self) -> &[Segment] {
        self.segments.get(..self.count).unwrap_or(&[])
    }

    /// Total pages of all segments.
    pub fn total_pages(&self) -> u64 {
        self.segments().iter().map(|s| s.pages).sum()
    }
}

fn bytes<const N: usize>(image: &[u8], at: usize) -> Option<[u8; N]> {
    image.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(image: &[u8], at: usize) -> Option<u16> {
    bytes(image, at).map(u16::from_le_bytes)
}

fn u32_at(image: &[u8], at: usize) -> Option<u32> {
    bytes(image, at).map(u32::from_le_bytes)
}

fn u64_at(image: &[u8], at: usize) -> Option<u64> {
    bytes(image, at).map(u64::from_le_bytes)
}

/// The user pages the loader maps itself: main stack with its guard page, IPC buffer.
fn reserved_ranges() -> [(u64, u64); 2] {
    let stack_bottom = MAIN_STACK_TOP - MAIN_STACK_PAGES * PAGE;
    [
        (stack_bottom - PAGE, MAIN_STACK_TOP),
        (MAIN_IPC_BUFFER, MAIN_IPC_BUFFER + PAGE),
    ]
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Validates `image` and plans its segments. Never panics, never allocates.
pub fn plan(image: &[u8]) -> Result<ElfPlan, ElfError> {
    let ident: [u8; 16] = bytes(image, 0).ok_or(ElfError::NotElf)?;
    if image.len() < EHDR_SIZE || ident[..4] != *b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    // EI_CLASS = ELFCLASS64, EI_DATA = ELFDATA2LSB, EI_VERSION = EV_CURRENT.
    if ident[4] != 2 || ident[5] != 1 || ident[6] != 1 {
        return Err(ElfError::WrongClass);
    }
    let field16 = |at| u16_at(image, at).ok_or(ElfError::NotElf);
    let e_type = field16(16)?;
    let e_machine = field16(18)?;
    if e_machine != EM_X86_64 {
        return Err(ElfError::WrongMachine);
    }
    if e_type != ET_EXEC {
        return Err(ElfError::WrongType);
    }
    if u32_at(image, 20) != Some(1) {
        return Err(ElfError::WrongClass);
    }
    let entry = u64_at(image, 24).ok_or(ElfError::NotElf)?;
    let phoff = u64_at(image, 32).ok_or(ElfError::NotElf)?;
    let phentsize = field16(54)?;
    let phnum = field16(56)?;
    if phnum == 0 || phnum > MAX_PHDRS || usize::from(phentsize) != PHDR_SIZE {
        return Err(ElfError::BadProgramHeaders);
    }
    let phoff = usize::try_from(phoff).map_err(|_| ElfError::BadProgramHeaders)?;
    let table_len = usize::from(phnum) * PHDR_SIZE;
    let table = phoff
        .checked_add(table_len)
        .and_then(|end| image.get(phoff..end))
        .ok_or(ElfError::BadProgramHeaders)?;

    let empty = Segment {
        page: 0,
        pages: 0,
        page_offset: 0,
        file_offset: 0,
        file_len: 0,
        flags: MapFlags::READ,
    };
    let mut segments = [empty; MAX_SEGMENTS];
    let mut count = 0;
    let mut total_pages = 0u64;
    for ph in table.chunks_exact(PHDR_SIZE) {
        // The chunk is exactly PHDR_SIZE bytes, so these reads cannot fail; `?` keeps it honest.
        let p = |at| u64_at(ph, at).ok_or(ElfError::BadProgramHeaders);
        let p_type = u32_at(ph, 0).ok_or(ElfError::BadProgramHeaders)?;
        let p_flags = u32_at(ph, 4).ok_or(ElfError::BadProgramHeaders)?;
        let (offset, vaddr, filesz, memsz) = (p(8)?, p(16)?, p(32)?, p(40)?);
        match p_type {
            PT_INTERP | PT_DYNAMIC => return Err(ElfError::Dynamic),
            PT_LOAD if memsz > 0 => {}
            _ => continue,
        }
        if filesz > memsz
            || offset
                .checked_add(filesz)
                .is_none_or(|end| end > image.len() as u64)
        {
            return Err(ElfError::FileRange);
        }
        let end = vaddr.checked_add(memsz).ok_or(ElfError::OutsideUser)?;
        if vaddr < USER_MIN || end > USER_END {
            return Err(ElfError::OutsideUser);
        }
        let page = vaddr - vaddr % PAGE;
        // `end <= USER_END`, so rounding up cannot overflow.
        let pages = (end.next_multiple_of(PAGE) - page) / PAGE;
        let range = (page, page + pages * PAGE);
        if reserved_ranges().iter().any(|&r| overlaps(range, r)) {
            return Err(ElfError::Reserved);
        }
        let (w, x) = (p_flags & PF_W != 0, p_flags & PF_X != 0);
        let flags = match (w, x) {
            (true, true) => return Err(ElfError::WriteExecute),
            (true, false) => MapFlags::READ | MapFlags::WRITE,
            (false, true) => MapFlags::READ | MapFlags::EXECUTE,
            (false, false) => MapFlags::READ,
        };
        total_pages += pages;
        if total_pages > MAX_IMAGE_BYTES / PAGE {
            return Err(ElfError::TooLarge);
        }
        let slot = segments.get_mut(count).ok_or(ElfError::TooManySegments)?;
        *slot = Segment {
            page,
            pages,
            page_offset: vaddr % PAGE,
            file_offset: offset,
            file_len: filesz,
            flags,
        };
        count += 1;
    }
    if count == 0 {
        return Err(ElfError::NoSegments);
    }
    let used = segments.get_mut(..count).ok_or(ElfError::NoSegments)?;
    used.sort_unstable_by_key(|s| s.page);
    if used.windows(2).any(|w| w[0].end() > w[1].page) {
        return Err(ElfError::Overlap);
    }
    let entry_ok = used.iter().any(|s| {
        s.flags.contains(MapFlags::EXECUTE) && entry >= s.page + s.page_offset && entry < s.end()
    });
    if !entry_ok {
        return Err(ElfError::BadEntry);
    }
    Ok(ElfPlan {
        entry,
        segments,
        count,
    })
}

/// Builders of small ELF images for tests (host tests here, and the kernel's in-QEMU tests).
pub mod build {
    /// A program header to put into [`image`].
    #[derive(Clone, Copy, Debug)]
    pub struct Phdr {
        /// `p_type`.
        pub kind: u32,
        /// `p_flags` (PF_X = 1, PF_W = 2, PF_R = 4).
        pub flags: u32,
        /// `p_offset`.
        pub offset: u64,
        /// `p_vaddr`.
        pub vaddr: u64,
        /// `p_filesz`.
        pub filesz: u64,
        /// `p_memsz`.
        pub memsz: u64,
    }

    impl Phdr {
        /// A `PT_LOAD` header.
        pub const fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Self {
            Phdr {
                kind: super::PT_LOAD,
                flags,
                offset,
                vaddr,
                filesz,
                memsz,
            }
        }
    }

    /// Size of the headers [`image`] writes for `phdrs.len()` program headers; segment data
    /// goes after this offset.
    pub const fn headers_len(phdrs: usize) -> usize {
        super::EHDR_SIZE + phdrs * super::PHDR_SIZE
    }

    /// Writes an x86_64 `ET_EXEC` ELF header and the program headers into `out` (which must be
    /// at least [`headers_len`] long; the rest of `out` is left as is). Returns false if `out`
    /// is too short.
    pub fn image(out: &mut [u8], entry: u64, phdrs: &[Phdr]) -> bool {
        let Some(head) = out.get_mut(..headers_len(phdrs.len())) else {
            return false;
        };
        head.fill(0);
        head[..4].copy_from_slice(b"\x7fELF");
        head[4] = 2; // ELFCLASS64
        head[5] = 1; // little-endian
        head[6] = 1; // EV_CURRENT
        let mut put = |at: usize, v: &[u8]| head[at..at + v.len()].copy_from_slice(v);
        put(16, &super::ET_EXEC.to_le_bytes());
        put(18, &super::EM_X86_64.to_le_bytes());
        put(20, &1u32.to_le_bytes());
        put(24, &entry.to_le_bytes());
        put(32, &(super::EHDR_SIZE as u64).to_le_bytes());
        put(52, &(super::EHDR_SIZE as u16).to_le_bytes());
        put(54, &(super::PHDR_SIZE as u16).to_le_bytes());
        put(56, &(phdrs.len() as u16).to_le_bytes());
        for (i, p) in phdrs.iter().enumerate() {
            let at = super::EHDR_SIZE + i * super::PHDR_SIZE;
            put(at, &p.kind.to_le_bytes());
            put(at + 4, &p.flags.to_le_bytes());
            put(at + 8, &p.offset.to_le_bytes());
            put(at + 16, &p.vaddr.to_le_bytes());
            put(at + 24, &p.vaddr.to_le_bytes());
            put(at + 32, &p.filesz.to_le_bytes());
            put(at + 40, &p.memsz.to_le_bytes());
            put(at + 48, &super::PAGE.to_le_bytes());
        }
        true
    }
}

#[cfg(test)]
mod tests;
