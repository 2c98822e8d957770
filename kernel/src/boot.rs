//! The only module that speaks the Limine boot protocol.
//!
//! It declares the Limine requests and turns the responses into our own [`BootInfo`], copying
//! everything that lives in bootloader-reclaimable memory (memory map, strings) into kernel-owned
//! storage so that memory can be reclaimed afterwards. Nothing else in the kernel names `limine`.
//!
//! OWNER: kernel-arch helper. `BootInfo`'s shape is a contract with `mm` — extend, don't rename.

use hsync_kcore::mem::{MemoryRegion, RegionKind};
use limine::BaseRevision;
use limine::firmware_type::FirmwareType;
use limine::memory_map::EntryType;
use limine::request::{
    BootloaderInfoRequest, ExecutableAddressRequest, ExecutableCmdlineRequest, FirmwareTypeRequest,
    FramebufferRequest, HhdmRequest, MemoryMapRequest, ModuleRequest, RequestsEndMarker,
    RequestsStartMarker, RsdpRequest,
};
use spin::Once;

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

    /// The initfs: the module whose string is `initfs`, else the first module.
    pub fn initfs(&self) -> Option<&Module> {
        self.modules
            .iter()
            .find(|m| m.string == "initfs")
            .or_else(|| self.modules.first())
    }

    /// The value of `key=value` on the command line; `Some("")` for a bare `key`.
    pub fn cmdline_value(&self, key: &str) -> Option<&'static str> {
        self.cmdline
            .split_ascii_whitespace()
            .find_map(|w| match w.split_once('=') {
                Some((k, v)) if k == key => Some(v),
                None if w == key => Some(""),
                _ => None,
            })
    }
}

// ---- The Limine requests (the only ones in the kernel) -------------------------------------
//
// Loaders find these by scanning the image between the start and end markers (binding from base
// revision 2 on). The linker script keeps the `.requests*` sections in order, in writable data.

#[used]
#[unsafe(link_section = ".requests_start_marker")]
static REQUESTS_START: RequestsStartMarker = RequestsStartMarker::new();

#[used]
#[unsafe(link_section = ".requests")]
static BASE_REVISION: BaseRevision = BaseRevision::with_revision(3);

#[used]
#[unsafe(link_section = ".requests")]
static BOOTLOADER_INFO: BootloaderInfoRequest = BootloaderInfoRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static FIRMWARE_TYPE: FirmwareTypeRequest = FirmwareTypeRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static HHDM: HhdmRequest = HhdmRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static MEMORY_MAP: MemoryMapRequest = MemoryMapRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static EXECUTABLE_ADDRESS: ExecutableAddressRequest = ExecutableAddressRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static EXECUTABLE_CMDLINE: ExecutableCmdlineRequest = ExecutableCmdlineRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static MODULES: ModuleRequest = ModuleRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static RSDP: RsdpRequest = RsdpRequest::new();

#[used]
#[unsafe(link_section = ".requests")]
static FRAMEBUFFER: FramebufferRequest = FramebufferRequest::new();

#[used]
#[unsafe(link_section = ".requests_end_marker")]
static REQUESTS_END: RequestsEndMarker = RequestsEndMarker::new();

// ---- Kernel-owned copies ---------------------------------------------------------------------

/// Memory map entries kept (firmware maps have tens; 256 leaves room for fragmented EFI maps).
pub const MAX_MEMORY_REGIONS: usize = 256;
/// Boot modules kept.
pub const MAX_MODULES: usize = 16;
/// Bytes for all copied strings (cmdline, loader name/version, module paths and strings).
const STRING_SPACE: usize = 4096;

/// Fixed-capacity storage the responses are copied into.
struct Storage {
    regions: [MemoryRegion; MAX_MEMORY_REGIONS],
    region_count: usize,
    module_count: usize,
    strings: [u8; STRING_SPACE],
    string_len: usize,
}

impl Storage {
    /// Copies `bytes` (lossily as UTF-8, truncated when space runs out) into the string pool.
    fn push_str(&mut self, bytes: &[u8]) -> (usize, usize) {
        let s = match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        };
        let room = STRING_SPACE - self.string_len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        let start = self.string_len;
        self.strings[start..start + take].copy_from_slice(&s.as_bytes()[..take]);
        self.string_len += take;
        (start, take)
    }
}

static BOOT_INFO: Once<BootInfo> = Once::new();
static STORAGE: Once<Storage> = Once::new();

fn region_kind(t: EntryType) -> RegionKind {
    match t {
        EntryType::USABLE => RegionKind::Usable,
        EntryType::ACPI_RECLAIMABLE => RegionKind::AcpiReclaimable,
        EntryType::ACPI_NVS => RegionKind::AcpiNvs,
        EntryType::BAD_MEMORY => RegionKind::BadMemory,
        EntryType::BOOTLOADER_RECLAIMABLE => RegionKind::BootloaderReclaimable,
        EntryType::EXECUTABLE_AND_MODULES => RegionKind::ExecutableAndModules,
        EntryType::FRAMEBUFFER => RegionKind::Framebuffer,
        // RESERVED, and types newer than we know (e.g. rev-4 "reserved, mapped"): hands off.
        _ => RegionKind::Reserved,
    }
}

/// The [`BootInfo`] once [`collect`] has run.
pub fn info() -> Option<&'static BootInfo> {
    BOOT_INFO.get()
}

/// Reads the Limine responses into a `'static` [`BootInfo`]. Panics (with a clear message) only
/// when a response the kernel cannot run without (HHDM, memory map, executable address) is missing.
/// Halts with a message when the loader does not support our base revision.
pub fn collect() -> &'static BootInfo {
    if !BASE_REVISION.is_supported() {
        log::error!(
            "the boot loader does not support Limine base revision 3 (it reports {:?}); \
             HSYNC-OS needs a Limine-protocol loader with base revision 3 or later. Halting.",
            BASE_REVISION.loaded_revision()
        );
        crate::arch::halt_forever();
    }
    let Some(hhdm) = HHDM.get_response() else {
        panic!("boot loader gave no HHDM response")
    };
    let Some(memmap) = MEMORY_MAP.get_response() else {
        panic!("boot loader gave no memory map")
    };
    let Some(exe) = EXECUTABLE_ADDRESS.get_response() else {
        panic!("boot loader gave no executable address response")
    };
    let hhdm_offset = hhdm.offset();

    let mut st = Storage {
        regions: [MemoryRegion {
            base: 0,
            len: 0,
            kind: RegionKind::Reserved,
        }; MAX_MEMORY_REGIONS],
        region_count: 0,
        module_count: 0,
        strings: [0; STRING_SPACE],
        string_len: 0,
    };

    let entries = memmap.entries();
    if entries.len() > MAX_MEMORY_REGIONS {
        log::warn!(
            "memory map has {} entries; keeping the first {MAX_MEMORY_REGIONS}",
            entries.len()
        );
    }
    for (slot, e) in st.regions.iter_mut().zip(entries) {
        *slot = MemoryRegion {
            base: e.base,
            len: e.length,
            kind: region_kind(e.entry_type),
        };
    }
    st.region_count = entries.len().min(MAX_MEMORY_REGIONS);
    // The protocol promises a sorted map; make it true for whatever loader we got.
    st.regions[..st.region_count].sort_unstable_by_key(|r| r.base);

    // Strings are recorded as (offset, len) pairs first and turned into `&'static str` once the
    // storage has its final, `'static` home.
    let cmdline = EXECUTABLE_CMDLINE
        .get_response()
        .map(|r| st.push_str(r.cmdline().to_bytes()));
    let loader = BOOTLOADER_INFO.get_response().map(|r| {
        (
            st.push_str(r.name().as_bytes()),
            st.push_str(r.version().as_bytes()),
        )
    });
    let mut module_strs = [((0, 0), (0, 0)); MAX_MODULES];
    let mut module_addrs = [(0u64, 0u64); MAX_MODULES];
    if let Some(resp) = MODULES.get_response() {
        let files = resp.modules();
        if files.len() > MAX_MODULES {
            log::warn!(
                "{} boot modules; keeping the first {MAX_MODULES}",
                files.len()
            );
        }
        for (i, f) in files.iter().take(MAX_MODULES).enumerate() {
            module_strs[i] = (
                st.push_str(f.path().to_bytes()),
                st.push_str(f.string().to_bytes()),
            );
            module_addrs[i] = ((f.addr() as u64).wrapping_sub(hhdm_offset), f.size());
            st.module_count = i + 1;
        }
    }
    // Base revision 3: the RSDP address is physical (the crate's `usize` is the raw value).
    let rsdp_phys = RSDP
        .get_response()
        .map(|r| r.address() as u64)
        .filter(|&a| a != 0);
    let framebuffer = FRAMEBUFFER
        .get_response()
        .and_then(|r| r.framebuffers().next())
        .map(|fb| Framebuffer {
            phys: (fb.addr() as u64).wrapping_sub(hhdm_offset),
            width: fb.width(),
            height: fb.height(),
            pitch: fb.pitch(),
            bpp: fb.bpp(),
            rgb: [
                (fb.red_mask_size(), fb.red_mask_shift()),
                (fb.green_mask_size(), fb.green_mask_shift()),
                (fb.blue_mask_size(), fb.blue_mask_shift()),
            ],
        });
    let firmware = match FIRMWARE_TYPE.get_response().map(|r| r.firmware_type()) {
        Some(FirmwareType::X86_BIOS) => Firmware::Bios,
        Some(FirmwareType::UEFI_64) => Firmware::Uefi64,
        _ => Firmware::Unknown,
    };

    let st: &'static Storage = STORAGE.call_once(|| st);
    let text = |(start, len): (usize, usize)| -> &'static str {
        // Valid UTF-8 by construction (`push_str` copies whole characters of a `&str`).
        core::str::from_utf8(&st.strings[start..start + len]).unwrap_or("")
    };
    // Modules need their strings, so they are completed in a second, kernel-owned array.
    static MODULE_TABLE: Once<[Module; MAX_MODULES]> = Once::new();
    let modules = MODULE_TABLE.call_once(|| {
        core::array::from_fn(|i| Module {
            phys: module_addrs[i].0,
            len: module_addrs[i].1,
            path: text(module_strs[i].0),
            string: text(module_strs[i].1),
        })
    });
    BOOT_INFO.call_once(|| BootInfo {
        hhdm_offset,
        memory_map: &st.regions[..st.region_count],
        kernel_phys_base: exe.physical_base(),
        kernel_virt_base: exe.virtual_base(),
        cmdline: cmdline.map(text).unwrap_or(""),
        modules: &modules[..st.module_count],
        rsdp_phys,
        framebuffer,
        bootloader: loader
            .map(|(n, v)| (text(n), text(v)))
            .unwrap_or(("unknown", "")),
        firmware,
    })
}
