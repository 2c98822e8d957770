//! HSYNC-OS boot shim: Multiboot1, Multiboot2 or PVH in; Limine protocol (base revision 3) out.
//!
//! One ELF at 1 MiB with all three entry headers and one 32-bit entry (`boot.s`). The assembly
//! enters long mode on temporary tables (identity map of the low 4 GiB plus an HHDM alias of it)
//! and calls [`shim_main`], which:
//!
//! 1. parses the loader's boot information and sanitizes its memory map (`hsync-bootcore`);
//! 2. reserves the shim, the boot information and the modules, then copies every module (the
//!    kernel file first) to fresh page-aligned `EXECUTABLE_AND_MODULES` memory;
//! 3. loads the kernel ELF physically contiguous and answers its Limine requests;
//! 4. builds the kernel's page tables (kernel with per-segment permissions, HHDM, no identity
//!    map) and hands over in the machine state the protocol specifies.
//!
//! What it refuses to do: serve base revisions below 3, answer requests it does not implement
//! (SMP, paging mode, EFI tables, ...: left unanswered, as the protocol allows), or allocate
//! above 4 GiB. Everything the kernel receives lives in `BOOTLOADER_RECLAIMABLE` memory.
#![no_std]
#![no_main]

mod paging;
mod serial;

use core::arch::{asm, global_asm};
use core::fmt;

use hsync_bootcore::bootinfo::{self, BootInfo, PhysMem, Protocol, Rsdp};
use hsync_bootcore::limine::{self as lp, Feature};
use hsync_bootcore::memmap::{self, Kind, MemoryMap};
use hsync_bootcore::{PAGE, align_up, elf};
use paging::{NO_EXEC, PageTables, WRITE, WRITE_COMBINING};

#[cfg(feature = "pvh-test")]
global_asm!(".set HSYNC_NO_MB1, 1");
global_asm!(include_str!("boot.s"), options(att_syntax));

/// Where base revision 3 puts the HHDM with 4-level paging.
const HHDM: u64 = 0xffff_8000_0000_0000;
/// The shim only touches memory below this (its identity map).
pub const LOW_LIMIT: u64 = 1 << 32;
/// Minimum kernel stack (the protocol's 64 KiB); a Stack Size request can ask for more.
const MIN_STACK: u64 = 64 * 1024;
/// Responses, strings, `file` structs, the GDT: one bump arena.
const ARENA_SIZE: u64 = 64 * 1024;
/// `IA32_PAT` as the protocol specifies: WB, WT, UC-, UC, WP, WC, then WT, UC- (unused).
const PAT_VALUE: u64 = 0x0007_0105_0007_0406;

unsafe extern "C" {
    static _shim_start: u8;
    static _shim_end: u8;
    static shim_gdt: [u64; 7];
    fn shim_handover(cr3: u64, stack_top: u64, entry: u64, gdtr: u64) -> !;
}

/// Everything that can stop the boot.
#[derive(Debug)]
#[expect(
    dead_code,
    reason = "the payloads are read through `Debug` in the error report"
)]
enum Error {
    BootInfo(bootinfo::Error),
    Memory(memmap::Error),
    Kernel(elf::Error),
    Limine(lp::Error),
    ArenaFull,
    BadEntryPoint(u64),
}

impl From<bootinfo::Error> for Error {
    fn from(e: bootinfo::Error) -> Self {
        Error::BootInfo(e)
    }
}
impl From<memmap::Error> for Error {
    fn from(e: memmap::Error) -> Self {
        Error::Memory(e)
    }
}
impl From<elf::Error> for Error {
    fn from(e: elf::Error) -> Self {
        Error::Kernel(e)
    }
}
impl From<lp::Error> for Error {
    fn from(e: lp::Error) -> Self {
        Error::Limine(e)
    }
}

/// Physical memory below 4 GiB through the boot identity map.
struct Identity;

impl PhysMem for Identity {
    fn bytes(&self, addr: u64, len: u64) -> Option<&[u8]> {
        let end = addr.checked_add(len)?;
        if addr == 0 || end > LOW_LIMIT {
            return None;
        }
        // SAFETY: [0, 4 GiB) is identity-mapped for the shim's whole life. The bytes belong to
        // the firmware/loader; the shim never allocates over them (they are reserved as `InUse`
        // or lie outside usable RAM), so they do not change while borrowed.
        Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) })
    }
}

/// A bump allocator over one zeroed bootloader-reclaimable block. Returns physical addresses;
/// the kernel sees them at `HHDM + phys`.
struct Arena {
    next: u64,
    end: u64,
}

impl Arena {
    fn new(map: &mut MemoryMap, size: u64) -> Result<Self, Error> {
        let base = map.alloc(size, PAGE, LOW_LIMIT, Kind::BootloaderReclaimable)?;
        // SAFETY: freshly allocated, identity-mapped, unshared.
        unsafe { core::ptr::write_bytes(base as *mut u8, 0, size as usize) };
        Ok(Arena {
            next: base,
            end: base + size,
        })
    }

    fn alloc(&mut self, size: u64, align: u64) -> Result<u64, Error> {
        let at = align_up(self.next, align).ok_or(Error::ArenaFull)?;
        let end = at
            .checked_add(size)
            .filter(|&e| e <= self.end)
            .ok_or(Error::ArenaFull)?;
        self.next = end;
        Ok(at)
    }

    /// Moves `value` into the arena; returns its physical address.
    fn put<T>(&mut self, value: T) -> Result<u64, Error> {
        let at = self.alloc(size_of::<T>() as u64, align_of::<T>().max(8) as u64)?;
        // SAFETY: `at` is in the arena, aligned for `T`, with room for it, and unshared.
        unsafe { (at as *mut T).write(value) };
        Ok(at)
    }

    /// The concatenation of `parts` as a NUL-terminated string; returns its physical address.
    fn put_str(&mut self, parts: &[&[u8]]) -> Result<u64, Error> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let at = self.alloc(len as u64 + 1, 1)?;
        let mut p = at;
        for part in parts {
            // SAFETY: [at, at + len + 1) is ours (arena, zeroed, so the NUL is already there).
            unsafe { core::ptr::copy_nonoverlapping(part.as_ptr(), p as *mut u8, part.len()) };
            p += part.len() as u64;
        }
        Ok(at)
    }
}

/// Entered from `boot.s` in long mode with the loader's EAX and EBX.
#[unsafe(no_mangle)]
extern "C" fn shim_main(eax: u32, ebx: u32) -> ! {
    serial::init();
    let Err(err) = boot(eax, ebx);
    println!("shim: cannot boot: {err:?}");
    fail()
}

/// Stops after an error: QEMU's isa-debug-exit (if present) ends the run as a failure.
fn fail() -> ! {
    serial::outb(0xf4, 0x11);
    loop {
        // SAFETY: halting with interrupts off only waits; nothing to uphold.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// The HHDM virtual address of physical `p`.
const fn virt(p: u64) -> u64 {
    HHDM + p
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Multiboot1 => "multiboot1",
        Protocol::Multiboot2 => "multiboot2",
        Protocol::Pvh => "pvh",
    }
}

/// `b"..."` as printable text for the log.
struct Text<'a>(&'a [u8]);
impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|&c| {
            fmt::Write::write_char(
                f,
                if c.is_ascii_graphic() || c == b' ' {
                    c as char
                } else {
                    '?'
                },
            )
        })
    }
}

/// A module after copying: where it is now and its Limine strings.
#[derive(Clone, Copy, Default)]
struct Placed<'a> {
    phys: u64,
    size: u64,
    path: &'a [u8],
    string: &'a [u8],
}

fn boot(eax: u32, ebx: u32) -> Result<core::convert::Infallible, Error> {
    let bi = bootinfo::parse(&Identity, eax, ebx)?;
    let mut map = MemoryMap::from_firmware(bi.memory.as_slice())?;
    reserve(&mut map, &bi)?;

    // Fresh page-aligned copies: each module must own every page it touches, and the loader's
    // placement may share pages with boot information (GRUB-BIOS puts the MBI after the last module).
    let mut placed = [Placed::default(); 16];
    for (slot, m) in placed.iter_mut().zip(bi.modules.as_slice()) {
        let phys = map.alloc(
            m.data.len() as u64,
            PAGE,
            LOW_LIMIT,
            Kind::ExecutableAndModules,
        )?;
        // SAFETY: `phys` is a fresh allocation of at least `len` bytes, disjoint from the source
        // (which is reserved); both identity-mapped.
        unsafe { core::ptr::copy_nonoverlapping(m.data.as_ptr(), phys as *mut u8, m.data.len()) };
        *slot = Placed {
            phys,
            size: m.data.len() as u64,
            path: m.path,
            string: m.string,
        };
    }
    let placed = &placed[..bi.modules.len()];
    let kernel_file = placed[0];

    // Load the kernel physically contiguous.
    // SAFETY: the copy just made, identity-mapped and owned by the shim.
    let file = unsafe {
        core::slice::from_raw_parts(kernel_file.phys as *const u8, kernel_file.size as usize)
    };
    let plan = elf::plan(file)?;
    let kphys = map.alloc(plan.span, PAGE, LOW_LIMIT, Kind::ExecutableAndModules)?;
    // SAFETY: a fresh allocation of `span` bytes; we own it until the jump.
    let image = unsafe { core::slice::from_raw_parts_mut(kphys as *mut u8, plan.span as usize) };
    image.fill(0);
    for s in plan.segments.as_slice() {
        let dst = (s.vaddr - plan.vbase) as usize;
        // `plan` checked the segment lies in the file and in the image.
        image[dst..dst + s.filesz as usize]
            .copy_from_slice(&file[s.offset as usize..(s.offset + s.filesz) as usize]);
    }

    lp::negotiate_base_revision(image)?;
    let requests = lp::find_requests(image)?;
    let stack_size = requests
        .as_slice()
        .iter()
        .find(|r| r.feature == Feature::StackSize)
        .map(|r| lp::read_u64(image, r.offset + lp::ARG_OFFSET))
        .transpose()?
        .map_or(MIN_STACK, |s| {
            align_up(s.max(MIN_STACK), PAGE).unwrap_or(MIN_STACK)
        });

    let mut arena = Arena::new(&mut map, ARENA_SIZE)?;
    let stack = map.alloc(stack_size, PAGE, LOW_LIMIT, Kind::BootloaderReclaimable)?;
    let gdt = arena.put(
        // SAFETY: `shim_gdt` is an immutable table defined in boot.s.
        unsafe { shim_gdt },
    )?;
    let gdtr = arena.alloc(10, 8)?;
    // SAFETY: 10 arena bytes: limit (u16) then base (u64), unaligned as the CPU expects.
    unsafe {
        (gdtr as *mut u16).write((7 * 8 - 1) as u16);
        ((gdtr + 2) as *mut u64).write_unaligned(virt(gdt));
    }

    // Room for the memory map now; it is filled in last, after every allocation.
    let memmap_cap = map.regions().len() as u64 + 32;
    let memmap_entries = arena.alloc(memmap_cap * size_of::<lp::MemmapEntry>() as u64, 8)?;
    let memmap_ptrs = arena.alloc(memmap_cap * 8, 8)?;
    let memmap_resp = arena.put(lp::ListResponse {
        revision: 0,
        count: 0,
        list: virt(memmap_ptrs),
    })?;

    let cmdline = arena.put_str(&[kernel_file.string])?;
    let mut entry = plan.entry;
    let mut answers: [(usize, u64); 32] = [(0, 0); 32];
    let mut n_answers = 0;
    for r in requests.as_slice() {
        let resp = match r.feature {
            Feature::BootloaderInfo => {
                let name = arena.put_str(&[b"HSYNC-OS boot shim"])?;
                let version = arena.put_str(&[
                    env!("CARGO_PKG_VERSION").as_bytes(),
                    b" (",
                    protocol_name(bi.protocol).as_bytes(),
                    b")",
                ])?;
                Some(arena.put(lp::BootloaderInfoResponse {
                    revision: 0,
                    name: virt(name),
                    version: virt(version),
                })?)
            }
            Feature::ExecutableCmdline => Some(arena.put(lp::ValueResponse {
                revision: 0,
                value: virt(cmdline),
            })?),
            Feature::FirmwareType => Some(arena.put(lp::ValueResponse {
                revision: 0,
                value: if bi.efi64 { 2 } else { 0 },
            })?),
            Feature::StackSize => Some(arena.put(lp::EmptyResponse { revision: 0 })?),
            Feature::Hhdm => Some(arena.put(lp::HhdmResponse {
                revision: 0,
                offset: HHDM,
            })?),
            Feature::MemoryMap => Some(memmap_resp),
            Feature::EntryPoint => {
                let wanted = lp::read_u64(image, r.offset + lp::ARG_OFFSET)?;
                let ok = plan
                    .segments
                    .as_slice()
                    .iter()
                    .any(|s| s.executable && (s.vaddr..s.vaddr + s.memsz).contains(&wanted));
                if !ok {
                    return Err(Error::BadEntryPoint(wanted));
                }
                entry = wanted;
                Some(arena.put(lp::EmptyResponse { revision: 0 })?)
            }
            Feature::ExecutableFile => {
                let file = file_struct(&mut arena, &kernel_file, cmdline)?;
                Some(arena.put(lp::ValueResponse {
                    revision: 0,
                    value: virt(file),
                })?)
            }
            Feature::Module if placed.len() > 1 => {
                let ptrs = arena.alloc(8 * (placed.len() as u64 - 1), 8)?;
                for (i, m) in placed[1..].iter().enumerate() {
                    let string = arena.put_str(&[m.string])?;
                    let file = file_struct(&mut arena, m, string)?;
                    // SAFETY: slot `i` of the pointer array just allocated in the arena.
                    unsafe { ((ptrs + 8 * i as u64) as *mut u64).write(virt(file)) };
                }
                Some(arena.put(lp::ListResponse {
                    revision: 0,
                    count: placed.len() as u64 - 1,
                    list: virt(ptrs),
                })?)
            }
            Feature::Rsdp => match rsdp(&bi, &mut arena)? {
                Some(phys) => Some(arena.put(lp::ValueResponse {
                    revision: 0,
                    value: phys,
                })?),
                None => None,
            },
            Feature::ExecutableAddress => Some(arena.put(lp::ExecutableAddressResponse {
                revision: 0,
                physical_base: kphys,
                virtual_base: plan.vbase,
            })?),
            Feature::Framebuffer => match bi.framebuffer {
                Some(fb) => {
                    let raw = arena.put(lp::Framebuffer {
                        address: virt(fb.addr),
                        width: fb.width.into(),
                        height: fb.height.into(),
                        pitch: fb.pitch.into(),
                        bpp: fb.bpp.into(),
                        memory_model: 1,
                        masks: fb.masks,
                        ..lp::Framebuffer::default()
                    })?;
                    let ptrs = arena.put(virt(raw))?;
                    Some(arena.put(lp::ListResponse {
                        revision: 0,
                        count: 1,
                        list: virt(ptrs),
                    })?)
                }
                None => None,
            },
            Feature::Module | Feature::Unknown => None,
        };
        if let Some(resp) = resp {
            answers[n_answers] = (r.offset, virt(resp));
            n_answers += 1;
        }
    }

    let nx = cpu_has_nx();
    let cr3 = build_page_tables(&mut map, &plan, kphys, nx)?;

    // Only now is the map final: every allocation has been made.
    let mut count = 0;
    for (i, (base, length, kind)) in map.limine_entries().enumerate() {
        if i as u64 >= memmap_cap {
            return Err(Error::Memory(memmap::Error::Full));
        }
        let e = memmap_entries + 24 * i as u64;
        // SAFETY: entry `i` and pointer slot `i` are within the arrays reserved above (i < cap).
        unsafe {
            (e as *mut lp::MemmapEntry).write(lp::MemmapEntry { base, length, kind });
            ((memmap_ptrs + 8 * i as u64) as *mut u64).write(virt(e));
        }
        count += 1;
    }
    // SAFETY: `memmap_resp` is the response placed in the arena above.
    unsafe { (*(memmap_resp as *mut lp::ListResponse)).count = count };

    for &(offset, resp) in &answers[..n_answers] {
        lp::write_u64(image, offset + lp::RESPONSE_OFFSET, resp)?;
    }

    println!(
        "shim: {}, {} module(s), kernel {} at {:#x}, entry {:#x}",
        protocol_name(bi.protocol),
        placed.len() - 1,
        Text(kernel_file.path),
        kphys,
        entry
    );
    handover(cr3, virt(stack + stack_size), entry, virt(gdtr))
}

/// Keeps the shim, the boot information and the loader's module copies out of the allocator,
/// and gives the framebuffer its own map type.
fn reserve(map: &mut MemoryMap, bi: &BootInfo<'_>) -> Result<(), Error> {
    // The first page is never handed out (real-mode IVT; a null frame is a trap for bugs).
    map.overwrite(0, PAGE, Kind::Reserved)?;
    // Linker-script symbols: only their addresses are used.
    let (start, end) = (&raw const _shim_start as u64, &raw const _shim_end as u64);
    map.claim(start, end, Kind::BootloaderReclaimable)?;
    for &(base, len) in bi.used.as_slice() {
        map.claim(base, base.saturating_add(len), Kind::InUse)?;
    }
    if let Some(fb) = bi.framebuffer {
        let len = u64::from(fb.pitch) * u64::from(fb.height);
        map.overwrite(
            fb.addr,
            align_up(fb.addr + len, PAGE).unwrap_or(u64::MAX),
            Kind::Framebuffer,
        )?;
    }
    Ok(())
}

/// A Limine `file` for a placed module; `string` is the physical address of its string.
fn file_struct(arena: &mut Arena, m: &Placed<'_>, string: u64) -> Result<u64, Error> {
    let slash: &[u8] = if m.path.first() == Some(&b'/') {
        b""
    } else {
        b"/"
    };
    let path = arena.put_str(&[slash, m.path])?;
    arena.put(lp::File {
        address: virt(m.phys),
        size: m.size,
        path: virt(path),
        string: virt(string),
        ..lp::File::default()
    })
}

/// The RSDP's physical address (base revision 3 reports it physical): given by PVH, copied from
/// Multiboot2's tags into the arena, or found by the BIOS scan.
fn rsdp(bi: &BootInfo<'_>, arena: &mut Arena) -> Result<Option<u64>, Error> {
    Ok(match bi.rsdp {
        Some(Rsdp::Phys(p)) => Some(p),
        Some(Rsdp::Copy(bytes, len)) => {
            let at = arena.alloc(len as u64, 16)?;
            // SAFETY: `len` (≤ 36) fresh arena bytes.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), at as *mut u8, len) };
            Some(at)
        }
        None if !bi.efi64 => bootinfo::scan_rsdp(&Identity),
        None => None,
    })
}

/// Kernel segments at their link addresses with their own permissions, the HHDM over usable,
/// reclaimable, kernel/module and framebuffer memory (write-combining), and nothing else.
fn build_page_tables(
    map: &mut MemoryMap,
    plan: &elf::Plan,
    kphys: u64,
    nx: bool,
) -> Result<u64, Error> {
    let mut pt = PageTables::new(map, nx)?;
    for s in plan.segments.as_slice() {
        let (start, end) = s.pages();
        let flags = if s.writable { WRITE } else { 0 } | if s.executable { 0 } else { NO_EXEC };
        pt.map(
            map,
            start,
            kphys + (start - plan.vbase),
            end - start,
            flags,
            false,
        )?;
    }
    // Table pages come out of usable memory, which is mapped anyway: the snapshot covers them.
    let snapshot = *map;
    let mut regions = snapshot
        .regions()
        .iter()
        .filter(|r| r.kind.in_hhdm())
        .peekable();
    while let Some(first) = regions.next() {
        let (base, mut end) = (first.base, first.end);
        let fb = first.kind == Kind::Framebuffer;
        // Merge neighbours with the same caching so 2 MiB pages fit more often.
        while let Some(next) =
            regions.next_if(|n| n.base == end && (n.kind == Kind::Framebuffer) == fb)
        {
            end = next.end;
        }
        let (base, end) = (
            hsync_bootcore::align_down(base, PAGE),
            align_up(end, PAGE).unwrap_or(u64::MAX),
        );
        let flags = WRITE | NO_EXEC | if fb { WRITE_COMBINING } else { 0 };
        // The page holding the handover code stays executable: the CPU fetches from it right
        // after the switch to these tables. Everything else in the HHDM is NX.
        let exec = handover_page();
        if (base..end).contains(&exec) {
            pt.map(map, virt(base), base, exec - base, flags, true)?;
            pt.map(map, virt(exec), exec, PAGE, WRITE, false)?;
            pt.map(
                map,
                virt(exec + PAGE),
                exec + PAGE,
                end - exec - PAGE,
                flags,
                true,
            )?;
        } else {
            pt.map(map, virt(base), base, end - base, flags, true)?;
        }
    }
    Ok(pt.root)
}

/// Physical (= identity) address of the page holding `shim_handover`.
fn handover_page() -> u64 {
    hsync_bootcore::align_down(shim_handover as *const () as u64, PAGE)
}

fn cpu_has_nx() -> bool {
    // Leaf 0x80000001 exists: boot.s checked it before entering long mode.
    let edx = core::arch::x86_64::__cpuid(0x8000_0001).edx;
    edx & (1 << 20) != 0
}

/// Masks the legacy PICs, programs the PAT and jumps to the kernel.
fn handover(cr3: u64, stack_top: u64, entry: u64, gdtr: u64) -> ! {
    serial::outb(0x21, 0xff);
    serial::outb(0xa1, 0xff);
    // SAFETY: writing IA32_PAT (0x277) with valid memory types; PAT0 stays WB, which is all the
    // shim itself uses, so its own mappings keep their caching.
    unsafe {
        asm!("wrmsr", in("ecx") 0x277u32, in("eax") PAT_VALUE as u32, in("edx") (PAT_VALUE >> 32) as u32, options(nostack))
    };
    // The handover code must stay mapped across the CR3 switch; the kernel's tables have no
    // identity map, so run it at its HHDM alias (mapped in both the boot and the kernel tables).
    let at = virt(shim_handover as *const () as u64);
    // SAFETY: `at` is the HHDM alias of `shim_handover` (same bytes, position-independent code).
    let handover: unsafe extern "C" fn(u64, u64, u64, u64) -> ! =
        unsafe { core::mem::transmute(at as usize) };
    // SAFETY: `cr3` maps the kernel, the HHDM (with the stack, GDT and the handover code) and
    // `entry` is inside the kernel's executable segment.
    unsafe { handover(cr3, stack_top, entry, gdtr) }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("shim: panic: {info}");
    fail()
}
