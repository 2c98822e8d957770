//! Physical memory description shared by the boot code and the memory managers.

/// What a range of physical memory is used for, as the boot protocol reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Free RAM the kernel may allocate.
    Usable,
    /// Firmware or hardware owns it; never touch.
    Reserved,
    /// ACPI tables; reclaimable after they are parsed.
    AcpiReclaimable,
    /// ACPI non-volatile storage; never touch.
    AcpiNvs,
    /// Broken RAM.
    BadMemory,
    /// Loader data (page tables, responses, boot stack); free once boot data is copied out.
    BootloaderReclaimable,
    /// The kernel image and the boot modules (initfs).
    ExecutableAndModules,
    /// The linear framebuffer.
    Framebuffer,
}

/// One physical memory range `[base, base + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Physical start address.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
    /// What the range is.
    pub kind: RegionKind,
}

impl MemoryRegion {
    /// One past the last byte (saturating).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.len)
    }
}
