//! Loading an ELF executable into a fresh address space (W^X enforced, bss zeroed), plus the
//! main thread's stack (with a guard page) and IPC buffer at the `hsync_abi::startup` addresses.
//!
//! OWNER: kmm2 (kernel-core wave). Contract with kcore2.

use super::aspace::AddressSpace;

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not a valid x86_64 ELF64 executable, or its segments are malformed (overlap, outside
    /// the user half, W+X, file range out of bounds, ...).
    Malformed,
    /// Out of memory while loading.
    OutOfMemory,
}

/// What `load` set up.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    /// Entry point.
    pub entry: u64,
    /// Initial stack top (`startup::MAIN_STACK_TOP`).
    pub stack_top: u64,
    /// IPC buffer address (`startup::MAIN_IPC_BUFFER`).
    pub ipc_buffer: u64,
}

/// Loads `image` into `aspace` and maps the main stack and IPC buffer.
pub fn load(_aspace: &mut AddressSpace, _image: &[u8]) -> Result<Loaded, ElfError> {
    todo!("kmm2")
}
