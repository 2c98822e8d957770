//! The only module that speaks the Limine boot protocol.
//!
//! It declares the Limine requests and turns the responses into our own [`BootInfo`], copying
//! everything that lives in bootloader-reclaimable memory (memory map, strings) into kernel-owned
//! storage so that memory can be reclaimed afterwards. Nothing else in the kernel names `limine`.
//!
//! OWNER: kernel-arch helper. `BootInfo`'s shape is a contract with `mm` — extend, don't rename.

use hsync_kcore::mem::MemoryRegion;

/// How the firmware started us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// PC BIOS (or a VMM's direct boot).
    Bios,
    /// 64-bit UEFI.
    Uefi64,
    /// Not reported.
    Unknown,
}

/// A file the loader placed in memory (the initfs, ...). Lives in `ExecutableAndModules` memory.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// Physical address (page aligned).
    pub phys: u64,
    /// Length in bytes.
    pub len: u64,
    /// The loader's path for it.
    pub path: &'static str,
    /// Its command-line string (e.g. `initfs`).
    pub string: &'static str,
}

/// A linear framebuffer handed over by the loader.
#[derive(Clone, Copy, Debug)]
pub struct Framebuffer {
    /// Physical address of pixel (0, 0).
    pub phys: u64,
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
    /// Bytes per row.
    pub pitch: u64,
    /// Bits per pixel.
    pub bpp: u16,
    /// (size, shift) of red, green, blue.
    pub rgb: [(u8, u8); 3],
}

/// Everything the kernel learned from the loader, in kernel-owned memory.
#[derive(Debug)]
pub struct BootInfo {
    /// Offset of the higher-half direct map: physical `p` is at virtual `hhdm_offset + p`.
    pub hhdm_offset: u64,
    /// The loader's memory map, sorted by base (a kernel-owned copy).
    pub memory_map: &'static [MemoryRegion],
    /// Physical address the kernel image was loaded at.
    pub kernel_phys_base: u64,
    /// Virtual address the kernel image is linked/mapped at.
    pub kernel_virt_base: u64,
    /// The kernel command line (a kernel-owned copy).
    pub cmdline: &'static str,
    /// Boot modules (the initfs, ...).
    pub modules: &'static [Module],
    /// Physical address of the ACPI RSDP, if any.
    pub rsdp_phys: Option<u64>,
    /// The first framebuffer, if any.
    pub framebuffer: Option<Framebuffer>,
    /// Loader name and version.
    pub bootloader: (&'static str, &'static str),
    /// Firmware type.
    pub firmware: Firmware,
}

impl BootInfo {
    /// True when the command line holds `word` as a whole word (or as `word=...`).
    pub fn cmdline_has(&self, word: &str) -> bool {
        self.cmdline_value(word).is_some()
    }

    /// The value of `key=value` on the command line; `Some("")` for a bare `key`.
    pub fn cmdline_value(&self, key: &str) -> Option<&'static str> {
        self.cmdline.split_ascii_whitespace().find_map(|w| match w.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if w == key => Some(""),
            _ => None,
        })
    }
}

/// Reads the Limine responses into a `'static` [`BootInfo`]. Panics (with a clear message) only
/// when a response the kernel cannot run without (HHDM, memory map, executable address) is missing.
pub fn collect() -> &'static BootInfo {
    todo!("kernel-arch helper: read Limine responses")
}
