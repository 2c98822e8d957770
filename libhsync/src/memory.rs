//! Memory: [`Frame`]s (RAM), mapping them into an address space, and this process's own
//! virtual-address layout.
//!
//! libhsync owns the layout of the lower half below the kernel's fixed addresses:
//!
//! | range | use |
//! |---|---|
//! | `0x40_0000..` | the executable (`hsync_abi::startup::USER_IMAGE_BASE`) |
//! | [`MAP_BASE`]`..`[`MAP_END`] | [`Mapping`]s and thread stacks, allocated upwards with a guard page between |
//! | [`HEAP_BASE`]`..`[`HEAP_END`] | the `talc` heap, grown on demand |
//! | [`PROBE_BASE`]`..`[`PROBE_END`] | never mapped: tests aim bad pointers here ([`crate::raw`]) |
//! | [`CHILD_ARGS_ADDR`] | the start page of a child created by [`crate::process::Spawn`] |

use core::sync::atomic::{AtomicU64, Ordering};

use hsync_abi::{Error, MapFlags, PAGE_SIZE, Sysnum};

use crate::handle::{Frame, Handle, Process};
use crate::sys;

/// Start of the region for [`Mapping`]s and stacks.
pub const MAP_BASE: u64 = 0x0000_1000_0000_0000;
/// End of that region.
pub const MAP_END: u64 = 0x0000_2000_0000_0000;
/// Start of the heap region.
pub const HEAP_BASE: u64 = 0x0000_2000_0000_0000;
/// End of the heap region.
pub const HEAP_END: u64 = 0x0000_3000_0000_0000;
/// Start of the never-mapped probe window.
pub const PROBE_BASE: u64 = 0x0000_5000_0000_0000;
/// End of the probe window.
pub const PROBE_END: u64 = 0x0000_5000_1000_0000;
/// Where a child's start page is mapped (read-only).
pub const CHILD_ARGS_ADDR: u64 = 0x0000_6000_0000_0000;

static NEXT_MAP: AtomicU64 = AtomicU64::new(MAP_BASE);

/// Ranges given back by dropped [`Mapping`]s, `(address, pages)`, reused by size so that a
/// loop of map/unmap does not make the kernel build page tables for ever new addresses.
static FREE_RANGES: spin::Mutex<[(u64, u64); 32]> = spin::Mutex::new([(0, 0); 32]);

fn release(addr: u64, pages: u64) {
    let mut free = FREE_RANGES.lock();
    if let Some(slot) = free.iter_mut().find(|s| s.1 == 0) {
        *slot = (addr, pages);
    }
}

/// Reserves `pages` pages of address space in the mapping region, preceded by an unmapped
/// guard page. Ranges of dropped mappings are reused.
pub fn reserve(pages: u64) -> Result<u64, Error> {
    if pages == 0 {
        return Err(Error::InvalidArgument);
    }
    if let Some(slot) = FREE_RANGES.lock().iter_mut().find(|s| s.1 == pages) {
        let addr = slot.0;
        *slot = (0, 0);
        return Ok(addr);
    }
    let bytes = pages
        .checked_add(1)
        .and_then(|p| p.checked_mul(PAGE_SIZE))
        .ok_or(Error::OutOfMemory)?;
    let base = NEXT_MAP.fetch_add(bytes, Ordering::Relaxed);
    match base.checked_add(bytes) {
        Some(end) if end <= MAP_END => Ok(base + PAGE_SIZE),
        _ => Err(Error::OutOfMemory),
    }
}

impl Frame {
    /// Allocates `size` bytes (a non-zero multiple of 4096) of zeroed RAM.
    pub fn create(size: u64) -> Result<Frame, Error> {
        let out = sys::pure(Sysnum::FrameCreate, [size, 0, 0, 0, 0, 0])?;
        Ok(Handle::from_raw(hsync_abi::Handle::from_raw(out[0])))
    }

    /// Maps `len` bytes from `offset` of this frame at `vaddr` in *another* process (or an
    /// address of this process that libhsync never uses).
    ///
    /// Mapping into this process at an arbitrary address is refused by the kernel only when
    /// something is mapped there already, which keeps it memory-safe; use [`Mapping`] for
    /// memory this process will touch.
    pub fn map_into(
        &self,
        process: &Process,
        vaddr: u64,
        flags: MapFlags,
        offset: u64,
        len: u64,
    ) -> Result<(), Error> {
        sys::pure(
            Sysnum::FrameMap,
            [
                self.raw().raw(),
                process.raw().raw(),
                vaddr,
                flags.raw(),
                offset,
                len,
            ],
        )
        .map(|_| ())
    }
}

/// Removes the mappings of `[vaddr, vaddr + len)` from `process`, which must not be this
/// process (use [`Mapping`] there): unmapping memory this process uses would pull it from under
/// live references.
pub fn unmap_from(process: &Process, vaddr: u64, len: u64) -> Result<(), Error> {
    if crate::rt::is_self(process) {
        return Err(Error::InvalidArgument);
    }
    sys::pure(
        Sysnum::FrameUnmap,
        [process.raw().raw(), vaddr, len, 0, 0, 0],
    )
    .map(|_| ())
}

/// A frame mapped into this process at an address libhsync reserved; unmapped on drop.
///
/// ```no_run
/// use libhsync::{Frame, memory::Mapping};
/// let frame = Frame::create(4096).unwrap();
/// let mut map = Mapping::new_rw(&frame, 4096).unwrap();
/// map.as_mut_slice()[0] = 42;
/// ```
#[derive(Debug)]
pub struct Mapping {
    addr: u64,
    len: u64,
    writable: bool,
}

impl Mapping {
    /// Maps the first `len` bytes of `frame` read-write into this process.
    pub fn new_rw(frame: &Frame, len: u64) -> Result<Mapping, Error> {
        Self::new(frame, len, MapFlags::READ | MapFlags::WRITE)
    }

    /// Maps the first `len` bytes of `frame` read-only into this process.
    pub fn new_ro(frame: &Frame, len: u64) -> Result<Mapping, Error> {
        Self::new(frame, len, MapFlags::READ)
    }

    fn new(frame: &Frame, len: u64, flags: MapFlags) -> Result<Mapping, Error> {
        let me = crate::rt::own_process().ok_or(Error::InvalidHandle)?;
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) {
            return Err(Error::Misaligned);
        }
        let addr = reserve(len / PAGE_SIZE)?;
        sys::pure(
            Sysnum::FrameMap,
            [frame.raw().raw(), me.raw(), addr, flags.raw(), 0, len],
        )?;
        Ok(Mapping {
            addr,
            len,
            writable: flags.contains(MapFlags::WRITE),
        })
    }

    /// The mapped address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// The mapped length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false (a mapping has at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `[addr, addr+len)` was mapped readable by `new` into address space reserved
        // for this mapping alone and stays mapped until `drop`, which needs `&mut self`.
        unsafe { core::slice::from_raw_parts(self.addr as *const u8, self.len as usize) }
    }

    /// The mapped bytes, writable. Panics if the mapping is read-only (a caller bug).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        assert!(
            self.writable,
            "Mapping::as_mut_slice on a read-only mapping"
        );
        // SAFETY: as in `as_slice`, and the range is mapped writable; `&mut self` is unique.
        unsafe { core::slice::from_raw_parts_mut(self.addr as *mut u8, self.len as usize) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if let Some(me) = crate::rt::own_process() {
            let _ = sys::pure(Sysnum::FrameUnmap, [me.raw(), self.addr, self.len, 0, 0, 0]);
            release(self.addr, self.len / PAGE_SIZE);
        }
    }
}
