//! Pure logic of the HSYNC-OS boot shim, tested on the host.
//!
//! The shim (`boot/shim`) is the thin, `unsafe` layer that owns the CPU: entry assembly, port
//! I/O, page-table memory and the final jump. Everything that can be expressed as a function of
//! bytes lives here instead, so that it runs under `cargo test`:
//!
//! * [`bootinfo`]: Multiboot1, Multiboot2 and PVH boot information, read through [`bootinfo::PhysMem`];
//! * [`memmap`]: the physical memory map — sanitizing the firmware's map, carving allocations,
//!   and producing the sorted, aligned Limine map;
//! * [`elf`]: validating the kernel ELF and planning its segments (placement and permissions);
//! * [`limine`]: finding Limine requests in the loaded kernel, the base-revision handshake and
//!   the `#[repr(C)]` response layouts of base revision 3.
//!
//! This crate never touches hardware and never allocates; all tables have fixed capacities and
//! overflowing one is an error, not a panic.
#![no_std]

pub mod bootinfo;
pub mod elf;
pub mod limine;
pub mod memmap;

/// A fixed-capacity vector of `Copy` values: enough for boot-time tables without an allocator.
#[derive(Clone, Copy)]
pub struct FixedVec<T: Copy, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy + core::fmt::Debug, const N: usize> core::fmt::Debug for FixedVec<T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: Copy + Default, const N: usize> Default for FixedVec<T, N> {
    fn default() -> Self {
        Self {
            items: [T::default(); N],
            len: 0,
        }
    }
}

impl<T: Copy, const N: usize> FixedVec<T, N> {
    /// Appends `value`; `Err(())` when the vector is full.
    #[allow(
        clippy::result_unit_err,
        reason = "callers map fullness to their own error"
    )]
    pub fn push(&mut self, value: T) -> Result<(), ()> {
        let slot = self.items.get_mut(self.len).ok_or(())?;
        *slot = value;
        self.len += 1;
        Ok(())
    }

    /// The stored values.
    pub fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }

    /// The stored values, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.items[..self.len]
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops every value.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// 4 KiB, the only page size the Limine memory-map rules talk about.
pub const PAGE: u64 = 0x1000;

/// Rounds `x` down to a multiple of `align` (a power of two).
pub const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

/// Rounds `x` up to a multiple of `align` (a power of two); `None` on overflow.
pub const fn align_up(x: u64, align: u64) -> Option<u64> {
    match x.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}
