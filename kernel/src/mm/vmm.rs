//! The kernel's address space: its own PML4, the kernel image mapped W^X per section, the HHDM,
//! and the dedicated virtual regions for the heap, kernel stacks and physical windows.
//!
//! Kernel-half layout (4-level paging, one PML4 slot = 512 GiB):
//!
//! | range (start)            | slot | what                                                    |
//! |--------------------------|------|---------------------------------------------------------|
//! | loader's `hhdm_offset`   | 256… | HHDM: RAM regions of the memory map, RW + NX (below)    |
//! | `0xffff_e000_0000_0000`  | 448  | kernel heap, grown page by page on demand               |
//! | `0xffff_e800_0000_0000`  | 464  | kernel stacks, each with an unmapped guard page below   |
//! | `0xffff_f000_0000_0000`  | 480  | [`map_physical`] windows (ACPI tables, MMIO)            |
//! | `0xffff_f800_0000_0000`  | 496  | scratch: short-lived mappings (tests)                   |
//! | `0xffff_ffff_8000_0000`  | 511  | kernel image, per section: text RX, rodata R, data RW   |
//!
//! The HHDM maps the memory-map kinds Usable, BootloaderReclaimable, ExecutableAndModules,
//! AcpiReclaimable and AcpiNvs write-back, and Framebuffer write-combining — all NX. Reserved
//! and bad memory are not mapped (firmware tables there go through [`map_physical`]). The
//! kernel image's own frames are left out of the HHDM, so no writable alias of the kernel's
//! text exists. The lower half is empty: no identity map, no user mappings yet.
//!
//! All 256 upper-half PML4 entries point to tables from the start, so a future per-process
//! PML4 can copy them once and still see every kernel mapping made later.

use hsync_kcore::mem::RegionKind;
use spin::Mutex;
use x86_64::VirtAddr;

use super::memory::Memory;
use super::{MmError, pmm};
use crate::arch::paging::{
    self, Cache, Flags, PAGE_2M, PAGE_4K, PageSize, PageTables, TableFrames, Translation,
};
use crate::boot::BootInfo;

const SLOT: u64 = 1 << 39;
/// Start of the kernel heap region.
pub const HEAP_BASE: u64 = 0xffff_e000_0000_0000;
/// Size of the kernel heap region.
pub const HEAP_SIZE: u64 = SLOT;
/// Start of the kernel stack region.
pub const STACKS_BASE: u64 = 0xffff_e800_0000_0000;
const STACKS_SIZE: u64 = SLOT;
/// Start of the physical-window region.
pub const WINDOW_BASE: u64 = 0xffff_f000_0000_0000;
const WINDOW_SIZE: u64 = SLOT;
/// Start of a region reserved for short-lived mappings (the in-kernel tests use it).
pub const SCRATCH_BASE: u64 = 0xffff_f800_0000_0000;

/// The kernel's page tables plus the bump cursors of its virtual regions.
struct KernelSpace {
    tables: PageTables,
    hhdm: u64,
    /// `GLOBAL` when the CPU has global pages, else empty.
    global: Flags,
    next_stack: u64,
    next_window: u64,
}

static KSPACE: Mutex<Option<KernelSpace>> = Mutex::new(None);

/// Page-table frames straight from the PMM, zeroed through the HHDM.
struct PmmTables {
    hhdm: u64,
}

impl TableFrames for PmmTables {
    fn alloc_zeroed(&mut self) -> Option<u64> {
        let phys = pmm::alloc_frame()?;
        zero_frame(self.hhdm, phys);
        TABLE_FRAMES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        Some(phys)
    }
}

/// Frames the kernel's own page tables took after boot (never freed: kernel-half tables stay
/// for reuse — the heap, stack slots and the image window map into them again).
static TABLE_FRAMES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Frames taken by kernel page tables since boot (for exact leak accounting in tests).
pub fn table_frames() -> u64 {
    TABLE_FRAMES.load(core::sync::atomic::Ordering::Relaxed)
}

fn zero_frame(hhdm: u64, phys: u64) {
    // SAFETY: `phys` is a frame the PMM just handed to us, mapped RW by the HHDM, not yet
    // referenced by anything else.
    unsafe { core::ptr::write_bytes((hhdm + phys) as *mut u8, 0, PAGE_4K as usize) };
}

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// Virtual ranges of the kernel's sections, page-rounded, from the linker script's symbols.
#[derive(Clone, Copy, Debug)]
pub struct KernelSections {
    /// `.text`: mapped read + execute.
    pub text: (u64, u64),
    /// `.rodata` and the unwind tables: read only, NX.
    pub rodata: (u64, u64),
    /// `.data`, `.got`, `.bss`: read-write, NX.
    pub data: (u64, u64),
    /// The whole image.
    pub image: (u64, u64),
}

/// Reads the section symbols of `kernel/linker.ld`.
pub fn kernel_sections() -> KernelSections {
    let up = |a: u64| a.next_multiple_of(PAGE_4K);
    // Only the symbols' addresses are taken; nothing is read through them.
    let text = (
        &raw const __text_start as u64,
        up(&raw const __text_end as u64),
    );
    let rodata = (
        &raw const __rodata_start as u64,
        up(&raw const __rodata_end as u64),
    );
    let data = (
        &raw const __data_start as u64,
        up(&raw const __data_end as u64),
    );
    let image = (
        &raw const __kernel_start as u64,
        up(&raw const __kernel_end as u64),
    );
    KernelSections {
        text,
        rodata,
        data,
        image,
    }
}

fn region_cache(kind: RegionKind) -> Option<Cache> {
    match kind {
        RegionKind::Usable
        | RegionKind::BootloaderReclaimable
        | RegionKind::ExecutableAndModules
        | RegionKind::AcpiReclaimable
        | RegionKind::AcpiNvs => Some(Cache::WriteBack),
        RegionKind::Framebuffer => Some(Cache::WriteCombining),
        RegionKind::Reserved | RegionKind::BadMemory => None,
    }
}

/// Maps `[phys, phys + len)` at `virt`, with 2 MiB pages where both sides are aligned.
fn map_range(
    tables: &mut PageTables,
    frames: &mut PmmTables,
    virt: u64,
    phys: u64,
    len: u64,
    flags: Flags,
    cache: Cache,
) -> Result<(), MmError> {
    let mut off = 0;
    while off < len {
        let (v, p) = (virt + off, phys + off);
        let size = if v % PAGE_2M == 0 && p % PAGE_2M == 0 && len - off >= PAGE_2M {
            PageSize::Size2M
        } else {
            PageSize::Size4K
        };
        tables.map(v, p, size, flags, cache, frames)?;
        off += size.bytes();
    }
    Ok(())
}

/// Builds the kernel's page tables and switches to them.
pub(super) fn init(info: &BootInfo) {
    // NX bits in our entries would be reserved bits (a #PF on every access) without EFER.NXE.
    assert!(
        paging::nx_enabled(),
        "EFER.NXE is off: the loader must enable no-execute"
    );
    let hhdm = info.hhdm_offset;
    let global = if paging::global_pages_supported() {
        Flags::GLOBAL
    } else {
        Flags::empty()
    };
    let mut frames = PmmTables { hhdm };
    let pml4 = frames.alloc_zeroed().expect("out of memory for the PML4");
    // SAFETY: `pml4` is a fresh zeroed frame only this tree uses, and the HHDM maps all RAM
    // the PMM hands out (loader's HHDM now, ours after the switch).
    let mut tables = unsafe { PageTables::new(pml4, hhdm) };
    for slot in 256..512 {
        tables
            .preallocate_pml4_entry(slot, &mut frames)
            .expect("out of memory for kernel PDPTs");
    }

    // The kernel image, per section (W^X).
    let s = kernel_sections();
    let to_phys = |v: u64| v - info.kernel_virt_base + info.kernel_phys_base;
    let sections = [
        (s.text, Flags::empty()),
        (s.rodata, Flags::NO_EXECUTE),
        (s.data, Flags::WRITABLE | Flags::NO_EXECUTE),
    ];
    for ((start, end), flags) in sections {
        map_range(
            &mut tables,
            &mut frames,
            start,
            to_phys(start),
            end - start,
            flags | global,
            Cache::WriteBack,
        )
        .expect("mapping the kernel image");
    }

    // The HHDM, leaving out the kernel image's frames.
    let image_phys = (to_phys(s.image.0), to_phys(s.image.1));
    let mut mapped_to = 0u64; // regions rounded outward may share a page with the previous one
    let mut hhdm_top = 0u64;
    for r in info.memory_map {
        let Some(cache) = region_cache(r.kind) else {
            continue;
        };
        let start = (r.base - r.base % PAGE_4K).max(mapped_to);
        let end = r.end().next_multiple_of(PAGE_4K);
        let pieces = [
            (start, end.min(image_phys.0)),
            (start.max(image_phys.1), end),
        ];
        for (a, b) in pieces.into_iter().filter(|(a, b)| a < b) {
            map_range(
                &mut tables,
                &mut frames,
                hhdm + a,
                a,
                b - a,
                Flags::WRITABLE | Flags::NO_EXECUTE | global,
                cache,
            )
            .expect("mapping the HHDM");
        }
        mapped_to = mapped_to.max(end);
        hhdm_top = hhdm_top.max(hhdm + end);
    }
    assert!(
        hhdm_top <= HEAP_BASE,
        "HHDM reaches into the heap region; move the kernel regions"
    );

    // The CPU is still on the loader's stack and code; both must survive the switch.
    let rsp = paging::stack_pointer();
    assert!(
        tables.translate(rsp).is_some(),
        "the boot stack {rsp:#018x} is not in the new HHDM"
    );
    assert!(
        tables.translate(init as *const () as u64).is_some(),
        "the running code is not in the new tables"
    );

    // SAFETY: the new tree maps the kernel image at its linked addresses, the HHDM at the
    // loader's offset (which holds the boot stack, BootInfo's sources and all page tables), and
    // nothing the kernel still uses lies outside them (checked for the stack just above).
    unsafe { paging::activate(pml4) };
    let pge = paging::enable_global_pages();
    log::info!(
        "vmm: own PML4 at {pml4:#x}; HHDM {hhdm:#018x}..{hhdm_top:#018x}; global pages {}",
        if pge { "on" } else { "unavailable" }
    );
    *KSPACE.lock() = Some(KernelSpace {
        tables,
        hhdm,
        global,
        next_stack: STACKS_BASE,
        next_window: WINDOW_BASE,
    });
}

fn with<R>(f: impl FnOnce(&mut KernelSpace) -> R) -> R {
    let mut guard = KSPACE.lock();
    f(guard.as_mut().expect("mm::init has not run"))
}

/// HHDM offset: physical `p` is at virtual `hhdm_offset() + p` (for RAM kinds, see module docs).
pub fn hhdm_offset() -> u64 {
    with(|k| k.hhdm)
}

/// Resolves `virt` in the kernel's tables with effective permissions.
pub fn translate(virt: u64) -> Option<Translation> {
    with(|k| k.tables.translate(virt))
}

/// Maps one 4 KiB page of the kernel half: `virt` → `phys`, write-back, with `flags`.
pub fn map_page(virt: u64, phys: u64, flags: Flags) -> Result<(), MmError> {
    with(|k| {
        let mut frames = PmmTables { hhdm: k.hhdm };
        let flags = flags | k.global;
        k.tables.map(
            virt,
            phys,
            PageSize::Size4K,
            flags,
            Cache::WriteBack,
            &mut frames,
        )?;
        Ok(())
    })
}

/// Copies the kernel half (PML4 entries 256..512) into a new address space's tree.
pub(super) fn share_kernel_half(tables: &mut PageTables) {
    with(|k| tables.share_upper_half(&k.tables));
}

/// Physical address of the kernel's PML4.
pub fn root() -> u64 {
    with(|k| k.tables.root())
}

/// True when PML4 entry `i` of the kernel's tables is present.
pub fn pml4_entry_present(i: usize) -> bool {
    with(|k| k.tables.pml4_entry_present(i))
}

/// Unmaps one 4 KiB page and returns the frame it mapped (the caller owns it again).
pub fn unmap_page(virt: u64) -> Result<u64, MmError> {
    with(|k| Ok(k.tables.unmap_4k(virt)?))
}

/// Backs `[virt, virt + pages * 4 KiB)` with fresh frames, RW + NX. All-or-nothing: on failure
/// the pages mapped so far are unmapped and their frames freed.
fn map_fresh(k: &mut KernelSpace, virt: u64, pages: u64) -> Result<(), MmError> {
    let mut frames = PmmTables { hhdm: k.hhdm };
    for i in 0..pages {
        let v = virt + i * PAGE_4K;
        let result = match pmm::alloc_frame() {
            Some(phys) => {
                zero_frame(k.hhdm, phys);
                let flags = Flags::WRITABLE | Flags::NO_EXECUTE | k.global;
                let r = k.tables.map(
                    v,
                    phys,
                    PageSize::Size4K,
                    flags,
                    Cache::WriteBack,
                    &mut frames,
                );
                if r.is_err() {
                    let _ = pmm::free_frame(phys);
                }
                r.map_err(MmError::from)
            }
            None => Err(MmError::OutOfMemory),
        };
        if let Err(e) = result {
            for j in 0..i {
                if let Ok(phys) = k.tables.unmap_4k(virt + j * PAGE_4K) {
                    let _ = pmm::free_frame(phys);
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Unmaps `pages` pages mapped by [`map_fresh_locked`] from the top down, freeing their frames
/// (the heap's shrinking); stops at the first page that is not mapped. Returns how many pages
/// (counted from `virt + pages` downwards) were unmapped; the heap keeps the rest.
pub(super) fn unmap_fresh_locked(virt: u64, pages: u64) -> u64 {
    let mut guard = KSPACE.lock();
    let Some(k) = guard.as_mut() else { return 0 };
    let mut done = 0;
    for i in (0..pages).rev() {
        match k.tables.unmap_4k(virt + i * PAGE_4K) {
            Ok(phys) => {
                if let Err(e) = pmm::free_frame(phys) {
                    log::error!("heap: freeing {phys:#x}: {e:?}");
                }
                done += 1;
            }
            Err(_) => break,
        }
    }
    done
}

/// Where `process_create` sees an image: a region of the scratch slot, one image at a time.
const IMAGE_WINDOW: u64 = SCRATCH_BASE + (1 << 38);
/// The largest image the window shows (256 GiB, far beyond any RAM here).
const IMAGE_WINDOW_SIZE: u64 = 1 << 38;
/// Held while the window shows an image.
static IMAGE_LOCK: Mutex<()> = Mutex::new(());

/// Runs `f` on the bytes of RAM `mem`, mapped read-only and contiguous in the image window —
/// the image is parsed in place, page by page through the page tables, without a copy.
/// The window is unmapped again before this returns (its page tables stay, at most one frame
/// per 2 MiB of the largest image seen). Errors: `BadRange` for device memory or an image
/// larger than the window, `OutOfMemory` for page tables.
///
/// With more CPUs, the unmapping needs the same TLB shootdown as a freed kernel stack.
pub fn with_image<R>(mem: &Memory, f: impl FnOnce(&[u8]) -> R) -> Result<R, MmError> {
    let pages = mem.pages() as u64;
    if mem.is_device() || pages == 0 || pages * PAGE_4K > IMAGE_WINDOW_SIZE {
        return Err(MmError::BadRange);
    }
    let _window = IMAGE_LOCK.lock();
    let unmap = |k: &mut KernelSpace, n: u64| {
        for i in 0..n {
            // The frames belong to `mem`: unmapped, never freed here.
            let _ = k.tables.unmap_4k(IMAGE_WINDOW + i * PAGE_4K);
        }
    };
    with(|k| {
        let mut frames = PmmTables { hhdm: k.hhdm };
        let flags = Flags::NO_EXECUTE | k.global;
        for i in 0..pages {
            let mapped = mem
                .phys(i as usize)
                .ok_or(MmError::BadRange)
                .and_then(|phys| {
                    k.tables
                        .map(
                            IMAGE_WINDOW + i * PAGE_4K,
                            phys,
                            PageSize::Size4K,
                            flags,
                            Cache::WriteBack,
                            &mut frames,
                        )
                        .map_err(MmError::from)
                });
            if let Err(e) = mapped {
                unmap(k, i);
                return Err(e);
            }
        }
        Ok(())
    })?;
    // SAFETY: `IMAGE_WINDOW..+pages * 4 KiB` was just mapped read-only over `mem`'s frames,
    // which `mem` keeps alive for this call; the window lock keeps anyone else from remapping
    // it until it is unmapped below, after `f` (which cannot keep the borrow) returned. The
    // bytes do not change while `f` reads them: user mappings of the frame exist, but the one
    // CPU runs kernel code with interrupts off, so no user code runs meanwhile. (With more
    // CPUs a writer elsewhere could race: then `with_image` must copy page by page instead.)
    let image = unsafe {
        core::slice::from_raw_parts(IMAGE_WINDOW as *const u8, (pages * PAGE_4K) as usize)
    };
    let r = f(image);
    with(|k| unmap(k, pages));
    Ok(r)
}

/// [`map_fresh`] taking the lock (for the heap's growth). Fails with `NotReady` before
/// [`init`], so an allocation that early fails cleanly instead of panicking under the heap lock.
pub(super) fn map_fresh_locked(virt: u64, pages: u64) -> Result<(), MmError> {
    KSPACE
        .lock()
        .as_mut()
        .map_or(Err(MmError::NotReady), |k| map_fresh(k, virt, pages))
}

/// A kernel stack with an unmapped guard page below it.
#[derive(Clone, Copy, Debug)]
pub struct KernelStack {
    /// Initial stack pointer (one past the highest byte, 16-byte aligned).
    pub top: u64,
    /// Lowest mapped byte.
    pub bottom: u64,
    /// The unmapped guard page right below `bottom`.
    pub guard: u64,
}

/// Maps `pages` fresh pages in the stack region above an unmapped guard page. Such a stack is
/// permanent (boot and IST stacks); threads use [`alloc_owned_stack`].
pub fn alloc_kernel_stack(pages: usize) -> Option<KernelStack> {
    let pages = pages as u64;
    if pages == 0 {
        return None;
    }
    with(|k| {
        let guard = k.next_stack;
        let bottom = guard + PAGE_4K;
        let top = bottom.checked_add(pages * PAGE_4K)?;
        if top > OWNED_STACKS_BASE {
            return None;
        }
        map_fresh(k, bottom, pages).ok()?;
        // The next stack's guard page sits directly above this stack's top.
        k.next_stack = top;
        Some(KernelStack { top, bottom, guard })
    })
}

/// Makes the physical range `[phys, phys + len)` readable and writable by the kernel (never
/// executable) and returns the virtual address of `phys`.
///
/// Write-back requests for RAM the HHDM already covers return the HHDM address. Everything
/// else (ACPI tables in firmware-reserved memory, MMIO) gets a permanent mapping in the window
/// region with the requested memory type. Mapping RAM uncached while the HHDM maps it
/// write-back would alias memory types; callers use `Uncached` for device registers only.
pub fn map_physical(phys: u64, len: u64, cache: Cache) -> Result<VirtAddr, MmError> {
    let end = phys.checked_add(len).ok_or(MmError::BadRange)?;
    if len == 0 || end > 1 << 52 {
        return Err(MmError::BadRange);
    }
    let first = phys - phys % PAGE_4K;
    let last = end.next_multiple_of(PAGE_4K);
    with(|k| {
        if cache == Cache::WriteBack {
            let covered = (first..last)
                .step_by(PAGE_4K as usize)
                .all(|p| k.tables.translate(k.hhdm + p).is_some_and(|t| t.phys == p));
            if covered {
                return Ok(VirtAddr::new(k.hhdm + phys));
            }
        }
        let pages = (last - first) / PAGE_4K;
        let virt = k.next_window;
        if virt + pages * PAGE_4K > WINDOW_BASE + WINDOW_SIZE {
            return Err(MmError::OutOfVirtualSpace);
        }
        let mut frames = PmmTables { hhdm: k.hhdm };
        let flags = Flags::WRITABLE | Flags::NO_EXECUTE | k.global;
        for i in 0..pages {
            let off = i * PAGE_4K;
            if let Err(e) = k.tables.map(
                virt + off,
                first + off,
                PageSize::Size4K,
                flags,
                cache,
                &mut frames,
            ) {
                for j in 0..i {
                    let _ = k.tables.unmap_4k(virt + j * PAGE_4K);
                }
                return Err(e.into());
            }
        }
        k.next_window = virt + pages * PAGE_4K;
        Ok(VirtAddr::new(virt + phys % PAGE_4K))
    })
}

/// Freeable stacks live in the upper half of the stack region, one fixed-size slot each (guard
/// page + up to [`OWNED_STACK_MAX_PAGES`]), so a freed slot fits any later stack and the region
/// never fragments. A bitmap (no heap: it is used under no other lock) tracks the slots.
const OWNED_STACKS_BASE: u64 = STACKS_BASE + STACKS_SIZE / 2;
/// Virtual size of one slot: 256 KiB.
const OWNED_SLOT_PAGES: u64 = 64;
/// Most pages a freeable stack may have (the slot minus its guard page).
pub const OWNED_STACK_MAX_PAGES: usize = OWNED_SLOT_PAGES as usize - 1;
/// Number of slots: 16384 live thread stacks (4 GiB of virtual space).
const OWNED_SLOTS: usize = 16384;

struct SlotMap {
    used: [u64; OWNED_SLOTS / 64],
    /// Lowest word that may have a free bit.
    hint: usize,
}

static SLOTS: Mutex<SlotMap> = Mutex::new(SlotMap {
    used: [0; OWNED_SLOTS / 64],
    hint: 0,
});

impl SlotMap {
    fn take(&mut self) -> Option<usize> {
        let hint = self.hint;
        let (w, word) = self
            .used
            .iter_mut()
            .enumerate()
            .skip(hint)
            .find(|(_, w)| **w != u64::MAX)?;
        let bit = word.trailing_ones() as usize;
        *word |= 1 << bit;
        self.hint = w;
        Some(w * 64 + bit)
    }

    fn release(&mut self, slot: usize) {
        let w = slot / 64;
        if let Some(word) = self.used.get_mut(w) {
            *word &= !(1 << (slot % 64));
            self.hint = self.hint.min(w);
        }
    }
}

/// A kernel stack that is unmapped and returned to the PMM when dropped. Its guard page stays
/// unmapped for its whole life, so an overflow faults instead of corrupting a neighbour.
#[derive(Debug)]
pub struct OwnedKernelStack {
    stack: KernelStack,
    slot: usize,
    pages: u64,
    /// CPUs that may hold TLB entries for it (bit per CPU): the one that mapped it and every
    /// one that ran on it ([`OwnedKernelStack::note_cpu`]). Its free shoots down only these.
    cpus: core::sync::atomic::AtomicU64,
}

impl OwnedKernelStack {
    /// Initial stack pointer (one past the highest byte, 16-byte aligned).
    pub fn top(&self) -> u64 {
        self.stack.top
    }

    /// The addresses (top, bottom, guard page) as a plain descriptor.
    pub fn stack(&self) -> KernelStack {
        self.stack
    }

    /// Records that the calling CPU uses the stack (may cache its translations).
    #[inline(always)]
    pub fn note_cpu(&self) {
        let bit = 1u64 << (crate::arch::cpu_id() & 63);
        if self.cpus.load(core::sync::atomic::Ordering::Relaxed) & bit == 0 {
            self.cpus
                .fetch_or(bit, core::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Allocates a freeable kernel stack of `pages` pages (1..=[`OWNED_STACK_MAX_PAGES`]).
pub fn alloc_owned_stack(pages: usize) -> Result<OwnedKernelStack, MmError> {
    if pages == 0 || pages > OWNED_STACK_MAX_PAGES {
        return Err(MmError::BadRange);
    }
    let slot = SLOTS.lock().take().ok_or(MmError::OutOfVirtualSpace)?;
    let guard = OWNED_STACKS_BASE + slot as u64 * OWNED_SLOT_PAGES * PAGE_4K;
    let bottom = guard + PAGE_4K;
    let pages = pages as u64;
    if let Err(e) = with(|k| map_fresh(k, bottom, pages)) {
        SLOTS.lock().release(slot);
        return Err(e);
    }
    Ok(OwnedKernelStack {
        stack: KernelStack {
            top: bottom + pages * PAGE_4K,
            bottom,
            guard,
        },
        slot,
        pages,
        cpus: core::sync::atomic::AtomicU64::new(1 << (crate::arch::cpu_id() & 63)),
    })
}

impl Drop for OwnedKernelStack {
    fn drop(&mut self) {
        // Kernel mappings are global: `unmap_4k` invalidates them on this CPU; the shootdown
        // invalidates them on every other CPU before the frames and the slot are reused.
        let mut frames = [0u64; OWNED_STACK_MAX_PAGES];
        with(|k| {
            for (i, f) in frames.iter_mut().enumerate().take(self.pages as usize) {
                match k.tables.unmap_4k(self.stack.bottom + i as u64 * PAGE_4K) {
                    Ok(phys) => *f = phys,
                    Err(e) => log::error!("kernel stack: unmapping: {e:?}"),
                }
            }
        });
        let cpus = self.cpus.load(core::sync::atomic::Ordering::Relaxed);
        crate::arch::shootdown_on(cpus, self.stack.bottom, self.pages);
        for &phys in frames.iter().filter(|&&p| p != 0) {
            if let Err(e) = pmm::free_frame(phys) {
                log::error!("kernel stack: freeing {phys:#x}: {e:?}");
            }
        }
        SLOTS.lock().release(self.slot);
    }
}
