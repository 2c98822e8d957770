//! `Memory`: a refcounted set of physical frames — the backing of Frame objects, of ELF
//! segments, stacks and IPC buffers. RAM it allocated goes back to the PMM when the last
//! `Arc<Memory>` drops; a device/boot range (`from_physical`) is never freed.
//!
//! OWNER: kmm2 (kernel-core wave). Contract with kcore2: keep names/signatures, add freely.

use alloc::sync::Arc;

use super::MmError;

/// Physical frames, page-granular.
#[derive(Debug)]
pub struct Memory {
    _private: (),
}

impl Memory {
    /// `pages` zeroed frames of RAM (not necessarily contiguous).
    pub fn new_zeroed(_pages: usize) -> Result<Arc<Memory>, MmError> {
        todo!("kmm2")
    }

    /// An existing physical range (boot module, MMIO) that this object does not own.
    pub fn from_physical(_phys: u64, _pages: usize) -> Result<Arc<Memory>, MmError> {
        todo!("kmm2")
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        todo!("kmm2")
    }

    /// Physical address of page `index`.
    pub fn phys(&self, _index: usize) -> Option<u64> {
        todo!("kmm2")
    }

    /// Copies `data` into the memory at byte `offset` (through the direct map).
    pub fn write(&self, _offset: usize, _data: &[u8]) -> Result<(), MmError> {
        todo!("kmm2")
    }

    /// Copies bytes at `offset` into `buf`.
    pub fn read(&self, _offset: usize, _buf: &mut [u8]) -> Result<(), MmError> {
        todo!("kmm2")
    }
}
