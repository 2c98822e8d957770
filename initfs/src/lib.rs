//! The HSYNC-OS initfs: a flat, read-only archive of named files.
//!
//! The boot loader hands the kernel one initfs image as a module; root later unpacks servers and
//! the compiled system manifest from it. The format is designed so that a reader needs no
//! allocation and no copies: every file's data sits at a 4 KiB-aligned offset, so a file can be
//! mapped as a Frame directly out of the image.
//!
//! This crate refuses to do anything but describe, read and write that format: no compression,
//! no directories, no metadata beyond names.
//!
//! # Layout (all integers little-endian)
//!
//! ```text
//! offset 0   header (32 bytes)
//!            magic     [u8; 8]  = b"HSYNCIFS"
//!            version   u32      = 1
//!            count     u32      number of entries
//!            total_len u64      length of the whole image in bytes
//!            reserved  u64      = 0
//! offset 32  entry table: `count` entries of 32 bytes
//!            name_off  u32      offset of the name (UTF-8, not NUL-terminated)
//!            name_len  u32      1..=MAX_NAME_LEN bytes
//!            data_off  u64      offset of the data, a multiple of DATA_ALIGN
//!            data_len  u64
//!            reserved  u64      = 0
//! then       names, back to back
//! then       file data, each file starting on a DATA_ALIGN boundary
//! ```
//!
//! [`Archive::parse`] validates every offset and length against the image before any entry is
//! handed out, so a corrupt or hostile image yields an [`Error`], never a panic or an
//! out-of-bounds read.
#![cfg_attr(not(feature = "std"), no_std)]

pub mod manifest;

#[cfg(feature = "std")]
mod writer;
#[cfg(feature = "std")]
pub use writer::{BuildError, Builder};

/// The eight bytes every initfs image starts with.
pub const MAGIC: [u8; 8] = *b"HSYNCIFS";
/// The format version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 32;
/// Size of one entry-table record.
pub const ENTRY_LEN: usize = 32;
/// Alignment of every file's data within the image (one page).
pub const DATA_ALIGN: u64 = 4096;
/// Longest file name accepted.
pub const MAX_NAME_LEN: usize = 255;
/// Most entries accepted (keeps duplicate detection cheap and bounds a hostile table).
pub const MAX_ENTRIES: usize = 1024;

/// Why an image was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its header, or than the length its header claims.
    Truncated,
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// A version this reader does not know.
    UnsupportedVersion(u32),
    /// More than [`MAX_ENTRIES`] entries.
    TooManyEntries,
    /// Entry `index` points outside the image or is misaligned.
    EntryOutOfBounds(usize),
    /// Entry `index` has an empty, overlong, non-UTF-8 or otherwise invalid name.
    BadName(usize),
    /// Entry `index` repeats an earlier entry's name.
    DuplicateName(usize),
    /// A reserved field is not zero.
    ReservedNotZero,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => write!(f, "initfs image is truncated"),
            Error::BadMagic => write!(f, "not an initfs image (bad magic)"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported initfs version {v}"),
            Error::TooManyEntries => write!(f, "more than {MAX_ENTRIES} initfs entries"),
            Error::EntryOutOfBounds(i) => write!(f, "initfs entry {i} lies outside the image"),
            Error::BadName(i) => write!(f, "initfs entry {i} has an invalid name"),
            Error::DuplicateName(i) => write!(f, "initfs entry {i} repeats a name"),
            Error::ReservedNotZero => write!(f, "initfs reserved field is not zero"),
        }
    }
}

/// One file in an archive, borrowed from the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The file's name.
    pub name: &'a str,
    /// The file's contents.
    pub data: &'a [u8],
    /// Offset of `data` within the image (a multiple of [`DATA_ALIGN`]).
    pub offset: u64,
}

/// A validated initfs image.
#[derive(Clone, Copy, Debug)]
pub struct Archive<'a> {
    image: &'a [u8],
    count: usize,
}

impl<'a> Archive<'a> {
    /// Validates `image` completely and returns a view of it.
    ///
    /// Bytes after `total_len` are ignored (loaders round modules up to pages).
    pub fn parse(image: &'a [u8]) -> Result<Self, Error> {
        let header = image.get(..HEADER_LEN).ok_or(Error::Truncated)?;
        if header[..8] != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = read_u32(header, 8);
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let count = read_u32(header, 12) as usize;
        if count > MAX_ENTRIES {
            return Err(Error::TooManyEntries);
        }
        let total_len = usize::try_from(read_u64(header, 16)).map_err(|_| Error::Truncated)?;
        if read_u64(header, 24) != 0 {
            return Err(Error::ReservedNotZero);
        }
        let image = image.get(..total_len).ok_or(Error::Truncated)?;
        // count <= MAX_ENTRIES, so this cannot overflow.
        let table_end = HEADER_LEN + count * ENTRY_LEN;
        if table_end > image.len() {
            return Err(Error::Truncated);
        }
        let archive = Archive { image, count };
        for index in 0..count {
            let entry = archive.entry_at(index)?;
            if archive
                .iter_checked()
                .take(index)
                .any(|e| e.is_ok_and(|e| e.name == entry.name))
            {
                return Err(Error::DuplicateName(index));
            }
        }
        Ok(archive)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the archive holds no files.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The whole image (up to `total_len`).
    pub fn image(&self) -> &'a [u8] {
        self.image
    }

    /// The files, in table order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'a>> + 'a {
        let archive = *self;
        // `parse` validated every entry, so `entry_at` cannot fail here.
        (0..self.count).filter_map(move |i| archive.entry_at(i).ok())
    }

    /// The contents of the file called `name`.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.entries().find(|e| e.name == name).map(|e| e.data)
    }

    fn iter_checked(&self) -> impl Iterator<Item = Result<Entry<'a>, Error>> + '_ {
        (0..self.count).map(move |i| self.entry_at(i))
    }

    fn entry_at(&self, index: usize) -> Result<Entry<'a>, Error> {
        let at = HEADER_LEN + index * ENTRY_LEN;
        let raw = self.image.get(at..at + ENTRY_LEN).ok_or(Error::Truncated)?;
        let name_off = read_u32(raw, 0) as usize;
        let name_len = read_u32(raw, 4) as usize;
        let data_off = read_u64(raw, 8);
        let data_len = read_u64(raw, 16);
        if read_u64(raw, 24) != 0 {
            return Err(Error::ReservedNotZero);
        }
        if name_len == 0 || name_len > MAX_NAME_LEN {
            return Err(Error::BadName(index));
        }
        let name_bytes = self
            .image
            .get(name_off..name_off.saturating_add(name_len))
            .ok_or(Error::EntryOutOfBounds(index))?;
        let name = core::str::from_utf8(name_bytes).map_err(|_| Error::BadName(index))?;
        if name.chars().any(|c| c.is_control()) {
            return Err(Error::BadName(index));
        }
        if !data_off.is_multiple_of(DATA_ALIGN) {
            return Err(Error::EntryOutOfBounds(index));
        }
        let start = usize::try_from(data_off).map_err(|_| Error::EntryOutOfBounds(index))?;
        let len = usize::try_from(data_len).map_err(|_| Error::EntryOutOfBounds(index))?;
        let data = self
            .image
            .get(
                start
                    ..start
                        .checked_add(len)
                        .ok_or(Error::EntryOutOfBounds(index))?,
            )
            .ok_or(Error::EntryOutOfBounds(index))?;
        Ok(Entry {
            name,
            data,
            offset: data_off,
        })
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}
