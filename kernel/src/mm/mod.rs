//! Memory management: physical frames (PMM), the kernel's page tables (VMM) and the heap.
//!
//! OWNER: kernel-mm helper. The functions below are the contract with `main.rs`/`arch`;
//! keep their signatures (add more as needed).

use crate::boot::BootInfo;
use crate::ktest::KTest;

/// PMM from the memory map, the kernel's own PML4 (switched to), and the heap.
pub fn init(_info: &BootInfo) {
    todo!("kernel-mm helper")
}

/// Gives bootloader-reclaimable memory to the PMM. Called once, after boot data was copied out
/// and the CPU left the loader's stack.
pub fn reclaim_bootloader_memory(_info: &BootInfo) {
    todo!("kernel-mm helper")
}

/// Logs one line of memory totals (`memory: total=... free=... used=...`).
pub fn log_summary() {
    todo!("kernel-mm helper")
}

/// A kernel stack with an unmapped guard page below it.
pub struct KernelStack {
    /// Initial stack pointer (one past the highest byte, 16-byte aligned).
    pub top: u64,
}

/// Allocates and maps a kernel stack of `pages` pages with an unmapped guard page under it.
pub fn alloc_kernel_stack(_pages: usize) -> Option<KernelStack> {
    todo!("kernel-mm helper")
}

/// In-kernel tests of this module.
pub const TESTS: &[KTest] = &[];

// Skeleton placeholder until the talc heap lands (kernel-mm helper replaces this).
struct NoHeap;
// SAFETY: never hands out memory; allocation always fails.
unsafe impl core::alloc::GlobalAlloc for NoHeap {
    unsafe fn alloc(&self, _layout: core::alloc::Layout) -> *mut u8 {
        core::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: core::alloc::Layout) {}
}
#[global_allocator]
static HEAP: NoHeap = NoHeap;
