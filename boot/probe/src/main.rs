//! HSYNC-OS boot probe: a tiny Limine-protocol kernel that checks what the boot shim promised.
//!
//! Booted instead of the kernel, it inspects the responses, the memory map, the live page tables
//! and the machine state captured by its entry stub, reports each check in the ktest wire format
//! on COM1 and exits QEMU through isa-debug-exit (0x10 = all passed, 0x11 = a failure).
//!
//! Contract with the runner (see the shim's report / `cargo xtask test`):
//! * kernel command line exactly [`EXPECTED_CMDLINE`];
//! * one module with string `pattern`, [`PATTERN_LEN`] bytes, byte `i` = `(i * 7 + 3) mod 256`.
//!
//! Runs (`S` = hsync-shim ELF, `P` = this ELF, `pattern.bin` = the pattern module):
//! * Multiboot1: `qemu-system-x86_64 -kernel S -initrd "P probe a=1 b=two,pattern.bin pattern"`;
//! * PVH: shim built with `--features pvh-test`, `-initrd bundle -append "probe a=1 b=two"`, where
//!   `bundle` is an initfs archive with entries `kernel` = P and `pattern` (see
//!   `cargo run -p hsync-bootcore --example mkbundle`);
//! * Multiboot2: a GRUB ISO with `module2 /boot/P /boot/P probe a=1 b=two` and
//!   `module2 /boot/pattern.bin /boot/pattern.bin pattern` (it then also expects a WC framebuffer).
//!
//! It refuses to be anything more: no allocator, no interrupts, no recovery.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::fmt::{self, Write};

use limine::BaseRevision;
use limine::memory_map::EntryType;
use limine::request::{
    BootloaderInfoRequest, ExecutableAddressRequest, ExecutableCmdlineRequest,
    ExecutableFileRequest, FirmwareTypeRequest, FramebufferRequest, HhdmRequest, MemoryMapRequest,
    ModuleRequest, RequestsEndMarker, RequestsStartMarker, RsdpRequest, StackSizeRequest,
};

/// The kernel command line the runner passes.
const EXPECTED_CMDLINE: &[u8] = b"probe a=1 b=two";
/// Length of the `pattern` module.
const PATTERN_LEN: u64 = 12345;
/// Stack the probe asks for (more than the 64 KiB default, to see the request honoured).
const STACK_SIZE: u64 = 128 * 1024;

#[used]
#[unsafe(link_section = ".requests_start_marker")]
static START: RequestsStartMarker = RequestsStartMarker::new();
#[used]
#[unsafe(link_section = ".requests")]
static BASE_REVISION: BaseRevision = BaseRevision::new();
#[used]
#[unsafe(link_section = ".requests")]
static HHDM: HhdmRequest = HhdmRequest::new();
#[used]
#[unsafe(link_section = ".requests")]
static MEMMAP: MemoryMapRequest = MemoryMapRequest::new();
#[used]
#[unsafe(link_section = ".requests")]
static EXEC_ADDR: ExecutableAddressRequest = ExecutableAddressRequest::new();
#[used]
#[unsafe(link_section = ".requests")]
static EXEC_FILE: ExecutableFileRequest = ExecutableFileRequest::new();
#[used]
#[unsafe(link_section = ".requests")]
static EXEC_CMDLINE: ExecutableCmdlineRequest = ExecutableCmdlineRequest::new();
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
#[unsafe(link_section = ".requests")]
static FIRMWARE: FirmwareTypeRequest = FirmwareTypeRequest::new();
#[used]
#[unsafe(link_section = ".requests")]
static BOOTLOADER: BootloaderInfoRequest = BootloaderInfoRequest::new();
#[used]
#[unsafe(link_section = ".requests")]
static STACK: StackSizeRequest = StackSizeRequest::new().with_size(STACK_SIZE);
#[used]
#[unsafe(link_section = ".requests_end_marker")]
static END: RequestsEndMarker = RequestsEndMarker::new();

// The entry stub records the machine state before any Rust code can disturb it.
// ENTRY_STATE: [0] OR of all GPRs but rsp, [1] rsp, [2] [rsp], [3] rflags, [4] cr0, [5] cr4,
// [6] efer, [7] cs, [8] ss, [9] ds, [10] pat, [11] cr3.
global_asm!(
    r#"
    .section .text._start, "ax"
    .global _start
_start:
    pushfq
    pop qword ptr [rip + ENTRY_STATE + 24]
    mov [rip + ENTRY_STATE], rax
    or [rip + ENTRY_STATE], rbx
    or [rip + ENTRY_STATE], rcx
    or [rip + ENTRY_STATE], rdx
    or [rip + ENTRY_STATE], rsi
    or [rip + ENTRY_STATE], rdi
    or [rip + ENTRY_STATE], rbp
    or [rip + ENTRY_STATE], r8
    or [rip + ENTRY_STATE], r9
    or [rip + ENTRY_STATE], r10
    or [rip + ENTRY_STATE], r11
    or [rip + ENTRY_STATE], r12
    or [rip + ENTRY_STATE], r13
    or [rip + ENTRY_STATE], r14
    or [rip + ENTRY_STATE], r15
    mov [rip + ENTRY_STATE + 8], rsp
    mov rax, [rsp]
    mov [rip + ENTRY_STATE + 16], rax
    mov rax, cr0
    mov [rip + ENTRY_STATE + 32], rax
    mov rax, cr4
    mov [rip + ENTRY_STATE + 40], rax
    mov ecx, 0xC0000080
    rdmsr
    shl rdx, 32
    or rax, rdx
    mov [rip + ENTRY_STATE + 48], rax
    mov ax, cs
    movzx eax, ax
    mov [rip + ENTRY_STATE + 56], rax
    mov ax, ss
    movzx eax, ax
    mov [rip + ENTRY_STATE + 64], rax
    mov ax, ds
    movzx eax, ax
    mov [rip + ENTRY_STATE + 72], rax
    mov ecx, 0x277
    rdmsr
    shl rdx, 32
    or rax, rdx
    mov [rip + ENTRY_STATE + 80], rax
    mov rax, cr3
    mov [rip + ENTRY_STATE + 88], rax
    and rsp, -16
    call probe_main
    ud2

    .section .bss.entry_state, "aw", @nobits
    .balign 8
    .global ENTRY_STATE
ENTRY_STATE:
    .skip 12 * 8
"#
);

unsafe extern "C" {
    static ENTRY_STATE: [u64; 12];
    static __probe_start: u8;
    static __probe_end: u8;
    static __rodata_start: u8;
    static __data_start: u8;
}

// ---- Output ----------------------------------------------------------------------------------

fn outb(port: u16, value: u8) {
    // SAFETY: COM1 and the isa-debug-exit port; no memory effects.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

struct Serial;
impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(|b| outb(0x3f8, b));
        Ok(())
    }
}

macro_rules! say {
    ($($arg:tt)*) => {{ let _ = writeln!(Serial, $($arg)*); }};
}

/// `&[u8]` shown as text in failure reasons.
struct Text<'a>(&'a [u8]);
impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|&c| {
            f.write_char(if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            })
        })
    }
}

/// A check's failure reason, formatted into a fixed buffer.
struct Reason {
    buf: [u8; 112],
    len: usize,
}
impl Write for Reason {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

type Check = Result<(), Reason>;
type CheckFn = fn() -> Check;

macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            let mut r = Reason { buf: [0; 112], len: 0 };
            let _ = write!(r, $($arg)*);
            return Err(r);
        }
    };
}

// ---- Page-table walking ----------------------------------------------------------------------

/// What the live page tables say about one virtual address.
#[derive(Clone, Copy)]
struct Mapping {
    phys: u64,
    writable: bool,
    executable: bool,
    /// PAT index bits (PAT, PCD, PWT) of the leaf.
    pat_index: u8,
}

fn hhdm() -> u64 {
    HHDM.get_response().map_or(0, |r| r.offset())
}

fn read_phys(phys: u64) -> u64 {
    // SAFETY: only page-table pages are read this way; they are bootloader-reclaimable, which the
    // HHDM maps (the `hhdm` check guards that a response exists before walks are trusted).
    unsafe { ((hhdm() + phys) as *const u64).read_volatile() }
}

fn translate(virt: u64) -> Option<Mapping> {
    let cr3 = entry_state(11) & 0x000f_ffff_ffff_f000;
    let (mut table, mut writable, mut nx) = (cr3, true, false);
    for (level, shift) in [(4, 39u32), (3, 30), (2, 21), (1, 12)] {
        let e = read_phys(table + ((virt >> shift) & 511) * 8);
        if e & 1 == 0 {
            return None;
        }
        writable &= e & 2 != 0;
        nx |= e & (1 << 63) != 0;
        let huge = level > 1 && level < 4 && e & 0x80 != 0;
        if level == 1 || huge {
            let size = 1u64 << shift;
            let pat_bit = if level == 1 { e >> 7 & 1 } else { e >> 12 & 1 };
            return Some(Mapping {
                phys: (e & 0x000f_ffff_ffff_f000 & !(size - 1)) + (virt & (size - 1)),
                writable,
                executable: !nx,
                pat_index: ((pat_bit << 2) | (e >> 3 & 3)) as u8,
            });
        }
        table = e & 0x000f_ffff_ffff_f000;
    }
    None
}

fn entry_state(i: usize) -> u64 {
    // SAFETY: written once by `_start` before Rust runs; read-only afterwards.
    unsafe {
        (&raw const ENTRY_STATE)
            .cast::<u64>()
            .add(i)
            .read_volatile()
    }
}

// ---- Checks ----------------------------------------------------------------------------------

fn check_base_revision() -> Check {
    ensure!(BASE_REVISION.is_supported(), "base revision 3 not accepted");
    ensure!(
        BASE_REVISION.loaded_revision() == Some(3),
        "loaded revision {:?}",
        BASE_REVISION.loaded_revision()
    );
    Ok(())
}

fn check_hhdm() -> Check {
    let r = HHDM.get_response();
    ensure!(r.is_some(), "no HHDM response");
    let off = hhdm();
    ensure!(
        off >= 0xffff_8000_0000_0000 && off.is_multiple_of(0x4000_0000),
        "odd HHDM offset {off:#018x}"
    );
    Ok(())
}

fn kernel_range() -> (u64, u64) {
    let size = &raw const __probe_end as u64 - &raw const __probe_start as u64;
    let phys = EXEC_ADDR.get_response().map_or(0, |r| r.physical_base());
    (phys, phys + size)
}

fn inside(kind: EntryType, base: u64, end: u64) -> bool {
    MEMMAP.get_response().is_some_and(|m| {
        m.entries()
            .iter()
            .any(|e| e.entry_type == kind && e.base <= base && end <= e.base + e.length)
    })
}

fn check_memmap() -> Check {
    let Some(m) = MEMMAP.get_response() else {
        ensure!(false, "no memory map response");
        return Ok(());
    };
    let entries = m.entries();
    ensure!(entries.len() >= 3, "only {} entries", entries.len());
    for w in entries.windows(2) {
        ensure!(
            w[0].base + w[0].length <= w[1].base,
            "unsorted or overlapping at {:#x}",
            w[1].base
        );
    }
    for e in entries {
        let strict = [EntryType::USABLE, EntryType::BOOTLOADER_RECLAIMABLE].contains(&e.entry_type);
        ensure!(
            !strict || (e.base | e.length).is_multiple_of(4096),
            "unaligned {:#x}+{:#x}",
            e.base,
            e.length
        );
        ensure!(e.length > 0, "empty entry at {:#x}", e.base);
    }
    let (kb, ke) = kernel_range();
    ensure!(
        inside(EntryType::EXECUTABLE_AND_MODULES, kb, ke),
        "kernel {kb:#x}..{ke:#x} not in EXECUTABLE_AND_MODULES"
    );
    let usable: u64 = entries
        .iter()
        .filter(|e| e.entry_type == EntryType::USABLE)
        .map(|e| e.length)
        .sum();
    ensure!(usable > 64 << 20, "only {usable:#x} bytes usable");
    Ok(())
}

fn check_executable_address() -> Check {
    let Some(r) = EXEC_ADDR.get_response() else {
        ensure!(false, "no executable address response");
        return Ok(());
    };
    let link = &raw const __probe_start as u64;
    ensure!(
        r.virtual_base() == link,
        "virtual base {:#x}, linked at {link:#x}",
        r.virtual_base()
    );
    ensure!(
        r.physical_base().is_multiple_of(4096),
        "physical base {:#x} unaligned",
        r.physical_base()
    );
    let m = translate(link);
    ensure!(
        m.is_some_and(|m| m.phys == r.physical_base()),
        "link address maps elsewhere"
    );
    Ok(())
}

fn check_executable_file() -> Check {
    let Some(f) = EXEC_FILE.get_response().map(|r| r.file()) else {
        ensure!(false, "no executable file response");
        return Ok(());
    };
    ensure!(
        (f.addr() as u64).is_multiple_of(4096),
        "file not page-aligned"
    );
    ensure!(f.size() > 64, "file size {}", f.size());
    // SAFETY: the response promises `size` bytes at `addr` (HHDM, executable-and-modules).
    let bytes = unsafe { core::slice::from_raw_parts(f.addr(), f.size() as usize) };
    let entry = u64::from_le_bytes(bytes[24..32].try_into().unwrap_or_default());
    ensure!(
        bytes.starts_with(b"\x7fELF") && entry == _start as *const () as u64,
        "file is not this executable"
    );
    ensure!(
        f.path().to_bytes().starts_with(b"/"),
        "path {} lacks a leading slash",
        Text(f.path().to_bytes())
    );
    ensure!(
        f.string().to_bytes() == EXPECTED_CMDLINE,
        "file string {:?}",
        Text(f.string().to_bytes()).to_str()
    );
    let cmdline = EXEC_CMDLINE.get_response().map(|r| r.cmdline().to_bytes());
    ensure!(
        cmdline == Some(EXPECTED_CMDLINE),
        "cmdline response {}",
        Text(cmdline.unwrap_or(b"<none>"))
    );
    Ok(())
}

impl Text<'_> {
    fn to_str(&self) -> &str {
        core::str::from_utf8(self.0).unwrap_or("<non-utf8>")
    }
}

fn check_modules() -> Check {
    let Some(r) = MODULES.get_response() else {
        ensure!(false, "no module response");
        return Ok(());
    };
    let Some(m) = r
        .modules()
        .iter()
        .find(|m| m.string().to_bytes() == b"pattern")
    else {
        ensure!(
            false,
            "no module with string `pattern` among {}",
            r.modules().len()
        );
        return Ok(());
    };
    ensure!(m.size() == PATTERN_LEN, "pattern size {}", m.size());
    ensure!(
        (m.addr() as u64).is_multiple_of(4096),
        "module not page-aligned"
    );
    ensure!(
        m.path().to_bytes().starts_with(b"/"),
        "path {}",
        Text(m.path().to_bytes())
    );
    // SAFETY: the response promises `size` bytes at `addr`.
    let bytes = unsafe { core::slice::from_raw_parts(m.addr(), m.size() as usize) };
    let bad = bytes
        .iter()
        .enumerate()
        .position(|(i, &b)| b != (i * 7 + 3) as u8);
    ensure!(bad.is_none(), "content differs at byte {:?}", bad);
    let phys = m.addr() as u64 - hhdm();
    ensure!(
        inside(EntryType::EXECUTABLE_AND_MODULES, phys, phys + m.size()),
        "module outside EXECUTABLE_AND_MODULES"
    );
    Ok(())
}

/// Maps the page holding `phys` at `hhdm + phys` if the HHDM does not already cover it, using
/// page-table pages from the probe's own `.bss` (they are part of the image, so their physical
/// address is known).
fn map_for_reading(phys: u64) -> Check {
    #[repr(C, align(4096))]
    struct Pages([[u64; 512]; 3]);
    static mut SPARE: Pages = Pages([[0; 512]; 3]);
    let virt = hhdm() + (phys & !0xfff);
    if translate(virt).is_some() {
        return Ok(());
    }
    let (kphys, _) = kernel_range();
    let to_phys = |v: u64| v - &raw const __probe_start as u64 + kphys;
    let spare = (&raw mut SPARE).cast::<[u64; 512]>();
    let mut table = entry_state(11) & 0x000f_ffff_ffff_f000;
    for (i, shift) in [39u32, 30, 21].into_iter().enumerate() {
        let slot = (hhdm() + table + ((virt >> shift) & 511) * 8) as *mut u64;
        // SAFETY: `slot` is an entry of a live table page (reclaimable memory, HHDM-mapped);
        // nothing else runs. A present huge entry would have made `translate` succeed.
        let e = unsafe { slot.read_volatile() };
        table = if e & 1 != 0 {
            e & 0x000f_ffff_ffff_f000
        } else {
            // SAFETY: spare page `i` is probe-owned, used once, for this one walk.
            let new = to_phys(unsafe { spare.add(i) } as u64);
            // SAFETY: as above for `slot`.
            unsafe { slot.write_volatile(new | 3) };
            new
        };
    }
    let leaf = (hhdm() + table + ((virt >> 12) & 511) * 8) as *mut u64;
    // SAFETY: a page-table entry reached by the walk above; then flush the stale translation.
    unsafe {
        leaf.write_volatile((phys & !0xfff) | 1 | (1 << 63));
        asm!("invlpg [{}]", in(reg) virt, options(nostack));
    }
    ensure!(translate(virt).is_some(), "could not map {phys:#x}");
    Ok(())
}

fn check_rsdp() -> Check {
    let Some(r) = RSDP.get_response() else {
        ensure!(false, "no RSDP response");
        return Ok(());
    };
    let phys = r.address() as u64;
    ensure!(
        phys != 0 && phys < hhdm(),
        "RSDP {phys:#x} is not a physical address (rev 3)"
    );
    map_for_reading(phys)?;
    // SAFETY: mapped just above (or already by the HHDM); an RSDP is at least 20 bytes, and 20
    // bytes from a 16-byte-aligned address stay within its page unless it starts in the last 16.
    let sig = unsafe { ((hhdm() + phys) as *const [u8; 8]).read_volatile() };
    ensure!(&sig == b"RSD PTR ", "no RSDP signature at {phys:#x}");
    Ok(())
}

fn check_entry_state() -> Check {
    let s = |i| entry_state(i);
    ensure!(
        s(0) == 0,
        "general-purpose registers not zero (OR = {:#x})",
        s(0)
    );
    ensure!(s(1) % 16 == 8, "rsp {:#x} not 8 mod 16", s(1));
    ensure!(s(2) == 0, "return address {:#x}, not 0", s(2));
    ensure!(s(3) == 0x2, "rflags {:#x}", s(3));
    ensure!(s(4) == 0x8001_0011, "cr0 {:#x}", s(4));
    ensure!(s(5) == 0x20, "cr4 {:#x}", s(5));
    ensure!(s(6) == 0xd00, "efer {:#x}", s(6));
    ensure!(
        (s(7), s(8), s(9)) == (0x28, 0x30, 0x30),
        "cs/ss/ds {:#x}/{:#x}/{:#x}",
        s(7),
        s(8),
        s(9)
    );
    ensure!(s(10) == 0x0007_0105_0007_0406, "PAT {:#018x}", s(10));
    Ok(())
}

fn check_stack() -> Check {
    ensure!(
        STACK.get_response().is_some(),
        "stack size request unanswered"
    );
    let top = entry_state(1) + 8;
    let mut page = top - STACK_SIZE;
    while page < top {
        let m = translate(page);
        ensure!(
            m.is_some_and(|m| m.writable && !m.executable),
            "stack page {page:#x} not RW/NX"
        );
        page += 4096;
    }
    let phys = translate(top - 8).map_or(0, |m| m.phys);
    ensure!(
        inside(EntryType::BOOTLOADER_RECLAIMABLE, phys & !0xfff, phys),
        "stack not reclaimable memory"
    );
    Ok(())
}

fn check_permissions() -> Check {
    let text = translate(_start as *const () as u64);
    ensure!(
        text.is_some_and(|m| !m.writable && m.executable),
        "text is writable or NX"
    );
    let rodata = translate(&raw const __rodata_start as u64);
    ensure!(
        rodata.is_some_and(|m| !m.writable && !m.executable),
        "rodata is writable or executable"
    );
    let data = translate(&raw const __data_start as u64);
    ensure!(
        data.is_some_and(|m| m.writable && !m.executable),
        "data is read-only or executable"
    );
    ensure!(
        translate(0x100000).is_none(),
        "identity map present (0x100000 mapped)"
    );
    ensure!(translate(0).is_none(), "virtual 0 mapped");
    Ok(())
}

fn check_hhdm_coverage() -> Check {
    let Some(m) = MEMMAP.get_response() else {
        return Ok(());
    };
    for e in m.entries() {
        let mapped = [
            EntryType::USABLE,
            EntryType::BOOTLOADER_RECLAIMABLE,
            EntryType::EXECUTABLE_AND_MODULES,
            EntryType::FRAMEBUFFER,
        ]
        .contains(&e.entry_type);
        let (first, last) = (e.base & !0xfff, (e.base + e.length - 1) & !0xfff);
        for p in [first, last] {
            let t = translate(hhdm() + p);
            if mapped {
                ensure!(
                    t.is_some_and(|t| t.phys == p && t.writable),
                    "HHDM misses {p:#x}"
                );
            } else if e.entry_type == EntryType::RESERVED && e.length >= 0x200000 {
                // A large reserved range (e.g. the 4 GiB hole) must not be in the rev-3 HHDM.
                ensure!(
                    t.is_none() || !e.base.is_multiple_of(0x200000),
                    "reserved {p:#x} is HHDM-mapped"
                );
            }
        }
    }
    Ok(())
}

fn check_info() -> Check {
    let info = BOOTLOADER.get_response();
    ensure!(
        info.is_some_and(|i| i.name() == "HSYNC-OS boot shim"),
        "bootloader name"
    );
    let via_mb2 = info.is_some_and(|i| i.version().contains("multiboot2"));
    let fw = FIRMWARE.get_response().map(|f| f.firmware_type());
    ensure!(fw.is_some(), "no firmware type response");
    if !via_mb2 {
        ensure!(
            fw == Some(limine::firmware_type::FirmwareType::X86_BIOS),
            "firmware type is not BIOS"
        );
    }
    Ok(())
}

fn check_framebuffer() -> Check {
    let via_mb2 = BOOTLOADER
        .get_response()
        .is_some_and(|i| i.version().contains("multiboot2"));
    match FRAMEBUFFER.get_response() {
        None => ensure!(!via_mb2, "no framebuffer under multiboot2"),
        Some(r) => {
            let Some(fb) = r.framebuffers().next() else {
                ensure!(false, "empty framebuffer response");
                return Ok(());
            };
            ensure!(via_mb2, "framebuffer reported without one being set up");
            let m = translate(fb.addr() as u64);
            ensure!(
                m.is_some_and(|m| m.pat_index == 5 && m.writable),
                "framebuffer not mapped WC (PAT5)"
            );
            ensure!(
                fb.bpp() == 32 && fb.width() > 0,
                "framebuffer {}x{}x{}",
                fb.width(),
                fb.height(),
                fb.bpp()
            );
        }
    }
    Ok(())
}

#[unsafe(no_mangle)]
extern "C" fn probe_main() -> ! {
    let checks: [(&str, CheckFn); 13] = [
        ("base_revision", check_base_revision),
        ("hhdm", check_hhdm),
        ("entry_state", check_entry_state),
        ("memmap", check_memmap),
        ("executable_address", check_executable_address),
        ("executable_file", check_executable_file),
        ("modules", check_modules),
        ("rsdp", check_rsdp),
        ("stack", check_stack),
        ("segment_permissions", check_permissions),
        ("hhdm_coverage", check_hhdm_coverage),
        ("bootloader_info", check_info),
        ("framebuffer", check_framebuffer),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, check) in checks {
        say!("[ktest] start boot.{name}");
        // Without the HHDM, page walks would fault: report instead of crashing.
        let result = if name != "base_revision" && name != "hhdm" && HHDM.get_response().is_none() {
            Err(Reason {
                buf: [0; 112],
                len: 0,
            })
        } else {
            check()
        };
        match result {
            Ok(()) => {
                passed += 1;
                say!("[ktest] pass boot.{name}");
            }
            Err(r) => {
                failed += 1;
                say!("[ktest] fail boot.{name}: {}", Text(&r.buf[..r.len]));
            }
        }
    }
    say!("[ktest] done passed={passed} failed={failed}");
    outb(0xf4, if failed == 0 { 0x10 } else { 0x11 });
    loop {
        // SAFETY: halting with interrupts off; nothing to uphold.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    say!("KERNEL PANIC (boot probe): {info}");
    outb(0xf4, 0x11);
    loop {
        core::hint::spin_loop();
    }
}

unsafe extern "C" {
    fn _start() -> !;
}
