//! User address spaces: one PML4 per process sharing the kernel's upper half, user mappings of
//! `Memory` with W^X, checked copies to/from user memory, teardown that frees every page-table
//! frame (and drops its references to `Memory`).
//!
//! OWNER: kmm2 (kernel-core wave). Contract with kcore2: keep names/signatures, add freely.

use alloc::sync::Arc;

use hsync_abi::{Error, MapFlags};

use super::MmError;
use super::memory::Memory;

/// A process's address space.
#[derive(Debug)]
pub struct AddressSpace {
    _private: (),
}

impl AddressSpace {
    /// An empty address space (kernel half shared, user half empty).
    pub fn new() -> Result<AddressSpace, MmError> {
        todo!("kmm2")
    }

    /// The physical address of its PML4 (for `arch::load_address_space`).
    pub fn cr3(&self) -> u64 {
        todo!("kmm2")
    }

    /// Maps `pages` pages of `mem` starting at its page `first_page` at user address `va`.
    /// Errors: misaligned / outside the user half / overlapping an existing mapping /
    /// out of range of `mem` / W+X flags.
    pub fn map(
        &mut self,
        _va: u64,
        _mem: &Arc<Memory>,
        _first_page: usize,
        _pages: usize,
        _flags: MapFlags,
    ) -> Result<(), MmError> {
        todo!("kmm2")
    }

    /// Removes the mappings of `pages` pages at `va` (unmapped pages in the range are skipped).
    pub fn unmap(&mut self, _va: u64, _pages: usize) -> Result<(), MmError> {
        todo!("kmm2")
    }

    /// Copies `dst.len()` bytes from user address `src`. Every byte must be mapped user-readable
    /// in this space; otherwise `Error::BadAddress` and nothing is trusted.
    pub fn copy_from_user(&self, _src: u64, _dst: &mut [u8]) -> Result<(), Error> {
        todo!("kmm2")
    }

    /// Copies `src` to user address `dst`; every byte must be mapped user-writable.
    pub fn copy_to_user(&self, _dst: u64, _src: &[u8]) -> Result<(), Error> {
        todo!("kmm2")
    }
}
