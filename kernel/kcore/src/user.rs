//! User pointers are claims: the pure checks that turn a `(address, length)` pair from a syscall
//! register into a [`UserRange`] the kernel may try to copy through.
//!
//! A [`UserRange`] only proves the *shape* of the claim: it lies entirely in the user half
//! `[USER_MIN, USER_END)` of `hsync_abi::startup` (hence canonical), `address + length` does not
//! wrap, and the start is aligned when the caller asked for alignment. Whether the pages are
//! mapped, and with which permissions, is for the address space to decide page by page
//! (`AddressSpace::copy_from_user` / `copy_to_user` in the kernel); this module refuses to guess
//! about page tables.
//!
//! Error order: a range that is not in the user half is [`Error::BadAddress`] even when it is also
//! misaligned (the address is wrong before its alignment matters); [`Error::Misaligned`] is only
//! reported for otherwise valid ranges.

use hsync_abi::Error;
use hsync_abi::startup::{USER_END, USER_MIN};

/// Bytes in a page.
pub const PAGE: u64 = 4096;

/// A validated user byte range `[start, start + len)` inside `[USER_MIN, USER_END)`.
///
/// The only constructors are [`UserRange::new`] and [`UserRange::aligned`], so holding one means
/// the checks ran. An empty range is allowed at any user address (including `USER_END`, one past
/// the end): it names no byte and copies nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserRange {
    start: u64,
    len: u64,
}

impl UserRange {
    /// Checks `len` bytes at `addr`: in the user half and not wrapping.
    pub fn new(addr: u64, len: u64) -> Result<UserRange, Error> {
        let end = addr.checked_add(len).ok_or(Error::BadAddress)?;
        if addr < USER_MIN || end > USER_END {
            return Err(Error::BadAddress);
        }
        Ok(UserRange { start: addr, len })
    }

    /// As [`UserRange::new`], and `addr` must be a multiple of `align` (a power of two; `0` and
    /// `1` mean no alignment). A non-power-of-two `align` is a kernel bug and reported as
    /// [`Error::InvalidArgument`] rather than trusted.
    pub fn aligned(addr: u64, len: u64, align: u64) -> Result<UserRange, Error> {
        let range = Self::new(addr, len)?;
        if align > 1 {
            if !align.is_power_of_two() {
                return Err(Error::InvalidArgument);
            }
            if addr & (align - 1) != 0 {
                return Err(Error::Misaligned);
            }
        }
        Ok(range)
    }

    /// First byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the range names no byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the last byte (cannot overflow: checked at construction).
    pub fn end(&self) -> u64 {
        self.start + self.len
    }

    /// The range cut at page boundaries, in address order.
    pub fn chunks(&self) -> PageChunks {
        PageChunks {
            next: self.start,
            end: self.end(),
            done: 0,
        }
    }
}

/// One piece of a [`UserRange`] inside a single page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageChunk {
    /// User address of the chunk's first byte.
    pub addr: u64,
    /// Base address of the page containing it.
    pub page: u64,
    /// Offset of `addr` in that page.
    pub offset: u64,
    /// Bytes in this chunk (`1..=PAGE`, never crossing the page end).
    pub len: u64,
    /// Bytes of the range before this chunk (the offset into the kernel-side buffer).
    pub done: u64,
}

/// Iterator over the [`PageChunk`]s of a [`UserRange`].
#[derive(Clone, Debug)]
pub struct PageChunks {
    next: u64,
    end: u64,
    done: u64,
}

impl Iterator for PageChunks {
    type Item = PageChunk;

    fn next(&mut self) -> Option<PageChunk> {
        if self.next >= self.end {
            return None;
        }
        let offset = self.next % PAGE;
        let page = self.next - offset;
        let len = (PAGE - offset).min(self.end - self.next);
        let chunk = PageChunk {
            addr: self.next,
            page,
            offset,
            len,
            done: self.done,
        };
        self.next += len;
        self.done += len;
        Some(chunk)
    }
}

/// True when `[addr, addr + pages * PAGE)` is page-aligned, non-empty and inside the user half
/// (the shape every user *mapping* must have).
pub fn is_user_page_range(addr: u64, pages: u64) -> bool {
    let Some(len) = pages.checked_mul(PAGE) else {
        return false;
    };
    pages > 0 && addr.is_multiple_of(PAGE) && UserRange::new(addr, len).is_ok()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    #[test]
    fn good_ranges() {
        let r = UserRange::new(USER_MIN, 16).unwrap();
        assert_eq!((r.start(), r.len(), r.end()), (USER_MIN, 16, USER_MIN + 16));
        // The last byte of the user half.
        assert!(UserRange::new(USER_END - 1, 1).is_ok());
        // The whole user half.
        assert!(UserRange::new(USER_MIN, USER_END - USER_MIN).is_ok());
        // Empty ranges at the edges.
        assert!(UserRange::new(USER_END, 0).unwrap().is_empty());
        assert!(UserRange::new(USER_MIN, 0).is_ok());
    }

    #[test]
    fn null_page_and_kernel_half_refused() {
        for addr in [0, 1, USER_MIN - 1] {
            assert_eq!(UserRange::new(addr, 1), Err(Error::BadAddress), "{addr:#x}");
        }
        assert_eq!(UserRange::new(0, 0), Err(Error::BadAddress));
        for addr in [0xffff_8000_0000_0000, 0xffff_ffff_8000_0000, u64::MAX] {
            assert_eq!(UserRange::new(addr, 1), Err(Error::BadAddress), "{addr:#x}");
            assert_eq!(UserRange::new(addr, 0), Err(Error::BadAddress), "{addr:#x}");
        }
    }

    #[test]
    fn non_canonical_refused() {
        for addr in [
            USER_END,
            0x0000_8000_0000_1000,
            0x1234_5678_0000_0000,
            0xfff0_0000_0000_0000,
        ] {
            assert_eq!(UserRange::new(addr, 8), Err(Error::BadAddress), "{addr:#x}");
        }
    }

    #[test]
    fn crossing_the_top_refused() {
        assert_eq!(UserRange::new(USER_END - 1, 2), Err(Error::BadAddress));
        assert_eq!(
            UserRange::new(USER_END - 4096, 4097),
            Err(Error::BadAddress)
        );
        assert_eq!(UserRange::new(USER_MIN, USER_END), Err(Error::BadAddress));
    }

    #[test]
    fn overflow_refused() {
        assert_eq!(UserRange::new(USER_MIN, u64::MAX), Err(Error::BadAddress));
        assert_eq!(
            UserRange::new(0x7000, u64::MAX - 0x6fff),
            Err(Error::BadAddress)
        );
        assert_eq!(UserRange::new(u64::MAX, 1), Err(Error::BadAddress));
    }

    #[test]
    fn alignment() {
        assert!(UserRange::aligned(0x2008, 8, 8).is_ok());
        assert!(UserRange::aligned(0x2003, 8, 1).is_ok());
        assert!(UserRange::aligned(0x2003, 8, 0).is_ok());
        assert_eq!(UserRange::aligned(0x2004, 8, 8), Err(Error::Misaligned));
        assert_eq!(UserRange::aligned(0x2800, 8, 4096), Err(Error::Misaligned));
        // Bad address wins over misalignment.
        assert_eq!(
            UserRange::aligned(0xffff_8000_0000_0004, 8, 8),
            Err(Error::BadAddress)
        );
        assert_eq!(UserRange::aligned(0x3, 8, 8), Err(Error::BadAddress));
        assert_eq!(
            UserRange::aligned(0x2000, 8, 12),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn chunks_cover_the_range_exactly() {
        let r = UserRange::new(0x1ff0, 0x2020).unwrap();
        let chunks: Vec<_> = r.chunks().collect();
        assert_eq!(
            chunks,
            [
                PageChunk {
                    addr: 0x1ff0,
                    page: 0x1000,
                    offset: 0xff0,
                    len: 0x10,
                    done: 0
                },
                PageChunk {
                    addr: 0x2000,
                    page: 0x2000,
                    offset: 0,
                    len: 0x1000,
                    done: 0x10
                },
                PageChunk {
                    addr: 0x3000,
                    page: 0x3000,
                    offset: 0,
                    len: 0x1000,
                    done: 0x1010
                },
                PageChunk {
                    addr: 0x4000,
                    page: 0x4000,
                    offset: 0,
                    len: 0x10,
                    done: 0x2010
                },
            ]
        );
        assert_eq!(UserRange::new(0x5000, 0).unwrap().chunks().count(), 0);
        let one = UserRange::new(0x5004, 4).unwrap();
        assert_eq!(one.chunks().count(), 1);
        // The last page of the user half ends the iteration without overflow.
        let top = UserRange::new(USER_END - 8, 8).unwrap();
        assert_eq!(top.chunks().map(|c| c.len).sum::<u64>(), 8);
    }

    #[test]
    fn page_ranges() {
        assert!(is_user_page_range(USER_MIN, 1));
        assert!(is_user_page_range(USER_END - PAGE, 1));
        assert!(!is_user_page_range(USER_END - PAGE, 2));
        assert!(!is_user_page_range(0, 1));
        assert!(!is_user_page_range(0x1001, 1));
        assert!(!is_user_page_range(0x1000, 0));
        assert!(!is_user_page_range(0x1000, u64::MAX));
        assert!(!is_user_page_range(0xffff_8000_0000_0000, 1));
    }
}
