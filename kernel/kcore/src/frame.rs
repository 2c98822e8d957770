//! Physical frame allocator: two bitmaps over one physical span, fed by memory-map regions.
//!
//! The allocator owns no memory: the caller lends it the bitmap storage (the kernel carves it out
//! of usable RAM and reaches it through the HHDM; host tests use a `Vec`). Every frame in the span
//! has two bits:
//!
//! * `managed` — the frame belongs to the allocator (it came from a region handed to
//!   [`FrameAllocator::add_region`]). Holes between regions and frame 0 are never managed, so
//!   freeing them is an error rather than silent corruption.
//! * `free` — the frame can be handed out. Only ever set on managed frames.
//!
//! Two bitmaps cost 2 bits per 4 KiB frame (64 KiB of bitmap per 1 GiB of span). In exchange the
//! accounting is exact and every misuse (double free, freeing a hole, a misaligned address) is
//! detected and reported without changing any state.
//!
//! Frame 0 is never handed out: a physical address of 0 is too easily confused with "none".

/// Size of one frame (a 4 KiB page) in bytes.
pub const FRAME_SIZE: u64 = 4096;

const BITS: u64 = u64::BITS as u64;

/// Why a frame operation was refused. The allocator's state is unchanged in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The address is not a multiple of [`FRAME_SIZE`].
    Misaligned(u64),
    /// The frame at this address is outside the span or in a hole (never added).
    NotManaged(u64),
    /// The frame at this address is already free.
    DoubleFree(u64),
    /// The frame at this address is allocated, but the operation needed it free.
    InUse(u64),
    /// The lent bitmap storage holds fewer words than [`FrameAllocator::storage_words`] asked for.
    StorageTooSmall {
        /// Words needed.
        needed: usize,
        /// Words given.
        given: usize,
    },
    /// A run of zero frames, or an alignment that is not a power of two.
    BadCount,
}

/// Frame counters. `used = total - free` holds by construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Frames the allocator manages (free or allocated).
    pub total: u64,
    /// Frames available right now.
    pub free: u64,
}

impl FrameStats {
    /// Frames handed out (and not yet returned).
    pub fn used(&self) -> u64 {
        self.total - self.free
    }
}

/// A bitmap frame allocator over the physical span `[span_start, span_end)`.
#[derive(Debug)]
pub struct FrameAllocator<'a> {
    /// Frame number described by bit 0 of both bitmaps.
    first_frame: u64,
    /// Number of frames the bitmaps describe.
    frames: u64,
    managed: &'a mut [u64],
    free: &'a mut [u64],
    stats: FrameStats,
    /// Word index where the next single-frame search starts (next fit keeps allocation O(1)
    /// amortised instead of rescanning the low, usually full, words every time).
    cursor: usize,
}

/// First frame number at or above `addr`, or `None` past the end of the address space.
fn frame_up(addr: u64) -> Option<u64> {
    addr.checked_add(FRAME_SIZE - 1).map(|a| a / FRAME_SIZE)
}

/// Mask of the bits `[lo, hi)` of one word, `0 <= lo <= hi <= 64`.
fn word_mask(lo: u64, hi: u64) -> u64 {
    let upper = if hi >= BITS {
        u64::MAX
    } else {
        (1u64 << hi) - 1
    };
    upper & !((1u64 << lo) - 1)
}

impl<'a> FrameAllocator<'a> {
    /// Bitmap words needed to describe `[span_start, span_end)` (rounded outward to frames).
    pub fn storage_words(span_start: u64, span_end: u64) -> usize {
        let first = span_start / FRAME_SIZE;
        let end = frame_up(span_end).unwrap_or(u64::MAX / FRAME_SIZE);
        let frames = end.saturating_sub(first);
        // Two bitmaps of `ceil(frames / 64)` words each.
        (frames.div_ceil(BITS) as usize).saturating_mul(2)
    }

    /// An empty allocator (nothing managed yet) for `[span_start, span_end)`, keeping its
    /// bitmaps in `storage` (which it zeroes). Memory comes in through [`Self::add_region`].
    pub fn new(span_start: u64, span_end: u64, storage: &'a mut [u64]) -> Result<Self, FrameError> {
        let needed = Self::storage_words(span_start, span_end);
        if storage.len() < needed {
            return Err(FrameError::StorageTooSmall {
                needed,
                given: storage.len(),
            });
        }
        let first_frame = span_start / FRAME_SIZE;
        let frames = frame_up(span_end)
            .unwrap_or(u64::MAX / FRAME_SIZE)
            .saturating_sub(first_frame);
        let storage = &mut storage[..needed];
        storage.fill(0);
        let (managed, free) = storage.split_at_mut(needed / 2);
        Ok(Self {
            first_frame,
            frames,
            managed,
            free,
            stats: FrameStats::default(),
            cursor: 0,
        })
    }

    /// Current counters.
    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    /// Bit index of the frame at `addr`, checking alignment and span (not `managed`).
    fn index_of(&self, addr: u64) -> Result<u64, FrameError> {
        if !addr.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::Misaligned(addr));
        }
        let frame = addr / FRAME_SIZE;
        match frame.checked_sub(self.first_frame) {
            Some(i) if i < self.frames => Ok(i),
            _ => Err(FrameError::NotManaged(addr)),
        }
    }

    fn addr_of(&self, index: u64) -> u64 {
        (self.first_frame + index) * FRAME_SIZE
    }

    fn bit(map: &[u64], index: u64) -> bool {
        map[(index / BITS) as usize] & (1 << (index % BITS)) != 0
    }

    /// Bit range `[lo, hi)` of the frames fully inside `[base, base + len)`, clipped to the span
    /// and with frame 0 removed. Empty ranges come back as `lo == hi`.
    fn clip(&self, base: u64, len: u64) -> (u64, u64) {
        let start = frame_up(base)
            .unwrap_or(u64::MAX)
            .max(1)
            .max(self.first_frame);
        let end = (base.saturating_add(len) / FRAME_SIZE).min(self.first_frame + self.frames);
        if start >= end {
            (0, 0)
        } else {
            (start - self.first_frame, end - self.first_frame)
        }
    }

    /// Calls `f(word_index, mask)` for each word that the bit range `[lo, hi)` touches.
    fn for_words(lo: u64, hi: u64, mut f: impl FnMut(usize, u64)) {
        let mut i = lo;
        while i < hi {
            let word = i / BITS;
            let word_end = ((word + 1) * BITS).min(hi);
            f(word as usize, word_mask(i % BITS, word_end - word * BITS));
            i = word_end;
        }
    }

    /// Adds the whole frames inside `[base, base + len)` as free memory and returns how many were
    /// new. Unaligned edges are trimmed inward; the part outside the span, frame 0, and frames
    /// that are already managed (overlapping regions) are skipped, so no frame is counted twice.
    pub fn add_region(&mut self, base: u64, len: u64) -> u64 {
        let (lo, hi) = self.clip(base, len);
        let mut added = 0;
        let (managed, free) = (&mut *self.managed, &mut *self.free);
        Self::for_words(lo, hi, |w, mask| {
            let new = mask & !managed[w];
            managed[w] |= new;
            free[w] |= new;
            added += u64::from(new.count_ones());
        });
        self.stats.total += added;
        self.stats.free += added;
        added
    }

    /// Marks the free frames covering `[base, base + len)` (rounded outward) as allocated, e.g.
    /// to keep the allocator's own bitmap storage. All of them must be managed and free;
    /// otherwise nothing changes.
    pub fn reserve(&mut self, base: u64, len: u64) -> Result<(), FrameError> {
        if len == 0 {
            return Ok(());
        }
        let first = base - base % FRAME_SIZE;
        let last = base
            .checked_add(len - 1)
            .ok_or(FrameError::NotManaged(base))?;
        let last = last - last % FRAME_SIZE;
        let lo = self.index_of(first)?;
        let hi = self.index_of(last)? + 1;
        self.take_run(lo, hi)
    }

    /// Allocates `[lo, hi)` after checking that every frame in it is managed and free.
    fn take_run(&mut self, lo: u64, hi: u64) -> Result<(), FrameError> {
        for i in lo..hi {
            if !Self::bit(self.managed, i) {
                return Err(FrameError::NotManaged(self.addr_of(i)));
            }
            if !Self::bit(self.free, i) {
                return Err(FrameError::InUse(self.addr_of(i)));
            }
        }
        let free = &mut *self.free;
        Self::for_words(lo, hi, |w, mask| free[w] &= !mask);
        self.stats.free -= hi - lo;
        Ok(())
    }

    /// Allocates one frame and returns its physical address, or `None` when none is free.
    pub fn alloc(&mut self) -> Option<u64> {
        if self.stats.free == 0 {
            return None;
        }
        let words = self.free.len();
        for n in 0..words {
            let w = (self.cursor + n) % words;
            let bits = self.free[w];
            if bits != 0 {
                let bit = u64::from(bits.trailing_zeros());
                self.free[w] &= !(1 << bit);
                self.stats.free -= 1;
                self.cursor = w;
                return Some(self.addr_of(w as u64 * BITS + bit));
            }
        }
        None
    }

    /// Allocates `count` physically contiguous frames whose first address is a multiple of
    /// `align_frames * FRAME_SIZE` (a power of two), and returns that address.
    pub fn alloc_contiguous(
        &mut self,
        count: u64,
        align_frames: u64,
    ) -> Result<Option<u64>, FrameError> {
        if count == 0 || !align_frames.is_power_of_two() {
            return Err(FrameError::BadCount);
        }
        // Candidate starts are absolute frame numbers that are multiples of the alignment.
        let mut start = self.first_frame.next_multiple_of(align_frames) - self.first_frame;
        while start.saturating_add(count) <= self.frames {
            match (start..start + count).find(|&i| !Self::bit(self.free, i)) {
                // No run can start at or below the busy frame `i`: skip past it.
                Some(i) => {
                    start =
                        (self.first_frame + i + 1).next_multiple_of(align_frames) - self.first_frame
                }
                None => {
                    self.take_run(start, start + count)?;
                    return Ok(Some(self.addr_of(start)));
                }
            }
        }
        Ok(None)
    }

    /// Returns one frame. Misaligned, unmanaged and already-free frames are refused.
    pub fn free(&mut self, addr: u64) -> Result<(), FrameError> {
        self.free_contiguous(addr, 1)
    }

    /// Returns `count` contiguous frames starting at `addr`. Every frame is checked before any
    /// is freed, so a refused call changes nothing.
    pub fn free_contiguous(&mut self, addr: u64, count: u64) -> Result<(), FrameError> {
        if count == 0 {
            return Err(FrameError::BadCount);
        }
        let lo = self.index_of(addr)?;
        let hi = lo.checked_add(count).filter(|&hi| hi <= self.frames);
        let Some(hi) = hi else {
            return Err(FrameError::NotManaged(self.addr_of(self.frames)));
        };
        for i in lo..hi {
            if !Self::bit(self.managed, i) {
                return Err(FrameError::NotManaged(self.addr_of(i)));
            }
            if Self::bit(self.free, i) {
                return Err(FrameError::DoubleFree(self.addr_of(i)));
            }
        }
        let free = &mut *self.free;
        Self::for_words(lo, hi, |w, mask| free[w] |= mask);
        self.stats.free += hi - lo;
        Ok(())
    }

    /// True when the frame at `addr` is managed and free.
    pub fn is_free(&self, addr: u64) -> bool {
        self.index_of(addr).is_ok_and(|i| Self::bit(self.free, i))
    }

    /// True when the frame at `addr` belongs to the allocator (free or not).
    pub fn is_managed(&self, addr: u64) -> bool {
        self.index_of(addr)
            .is_ok_and(|i| Self::bit(self.managed, i))
    }
}

#[cfg(test)]
mod tests;
