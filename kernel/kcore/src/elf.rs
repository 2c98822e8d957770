//! ELF planning for user images: from the bytes of an x86_64 ELF64 executable to the list of
//! page ranges the kernel must allocate, fill and map — or a precise reason to refuse the image.
//!
//! Reading the file is [`hsync_elf`]'s, the one ELF reader (on the `elf` crate; no allocation,
//! every read bounds-checked, so host tests can throw arbitrary bytes at it): header, program
//! headers, file bounds, W^X, page sharing, the entry point. This module adds where a user image
//! may go. HSYNC-OS runs static, non-relocatable executables (`ET_EXEC`) linked by libhsync's
//! linker script.
//!
//! A plan ([`ElfPlan`]) guarantees: only `PT_LOAD` segments with `memsz > 0` become
//! [`Segment`]s; each is inside `[USER_MIN, USER_END)` (page-rounded), no two share a page, none
//! touches the main stack (with its guard page) or the IPC buffer of `hsync_abi::startup`, none is
//! writable and executable, its file bytes lie inside the image, `filesz <= memsz`, and the total
//! is at most [`MAX_IMAGE_BYTES`]. The entry point lies in an executable segment.

use hsync_abi::MapFlags;
use hsync_abi::startup::{MAIN_IPC_BUFFER, MAIN_STACK_PAGES, MAIN_STACK_TOP, USER_END, USER_MIN};

pub use hsync_elf::{MAX_PHDRS, PAGE, build};

/// Most `PT_LOAD` segments an image may have.
pub const MAX_SEGMENTS: usize = 16;
/// Largest total memory size (page-rounded) of all segments: 256 MiB.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

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

impl From<hsync_elf::Error> for ElfError {
    fn from(e: hsync_elf::Error) -> Self {
        use hsync_elf::Error as E;
        match e {
            E::NotElf => ElfError::NotElf,
            E::WrongClass => ElfError::WrongClass,
            E::WrongMachine => ElfError::WrongMachine,
            E::WrongType => ElfError::WrongType,
            E::BadTables => ElfError::BadProgramHeaders,
            E::Dynamic => ElfError::Dynamic,
            E::NoSegments => ElfError::NoSegments,
            E::TooManySegments => ElfError::TooManySegments,
            E::FileRange => ElfError::FileRange,
            E::AddressOverflow => ElfError::OutsideUser,
            E::WriteExecute => ElfError::WriteExecute,
            E::Overlap => ElfError::Overlap,
            E::BadEntry => ElfError::BadEntry,
        }
    }
}

/// Validates `image` and plans its segments. Never panics, never allocates.
pub fn plan(image: &[u8]) -> Result<ElfPlan, ElfError> {
    let exe = hsync_elf::read::<MAX_SEGMENTS>(image)?;
    let empty = Segment {
        page: 0,
        pages: 0,
        page_offset: 0,
        file_offset: 0,
        file_len: 0,
        flags: MapFlags::READ,
    };
    let mut segments = [empty; MAX_SEGMENTS];
    let mut total_pages = 0u64;
    for (slot, s) in segments.iter_mut().zip(exe.segments()) {
        // The reader checked that the page-rounded end does not overflow.
        let (page, end) = s.pages();
        if s.vaddr < USER_MIN || s.vaddr + s.memsz > USER_END {
            return Err(ElfError::OutsideUser);
        }
        if reserved_ranges().iter().any(|&r| overlaps((page, end), r)) {
            return Err(ElfError::Reserved);
        }
        let pages = (end - page) / PAGE;
        total_pages += pages;
        if total_pages > MAX_IMAGE_BYTES / PAGE {
            return Err(ElfError::TooLarge);
        }
        let flags = match (s.writable, s.executable) {
            (true, _) => MapFlags::READ | MapFlags::WRITE,
            (false, true) => MapFlags::READ | MapFlags::EXECUTE,
            (false, false) => MapFlags::READ,
        };
        *slot = Segment {
            page,
            pages,
            page_offset: s.vaddr % PAGE,
            file_offset: s.offset,
            file_len: s.filesz,
            flags,
        };
    }
    Ok(ElfPlan {
        entry: exe.entry,
        segments,
        count: exe.segments().len(),
    })
}

#[cfg(test)]
mod tests;
