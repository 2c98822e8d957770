//! In-kernel tests of user address spaces, `Memory`, checked user copies, ELF loading and
//! freeable kernel stacks. Leak checks compare the PMM's free count with a baseline taken after
//! one warm-up round (the heap and the shared kernel page tables grow once and then stay).

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use hsync_abi::startup::{MAIN_IPC_BUFFER, MAIN_STACK_PAGES, MAIN_STACK_TOP, USER_END, USER_MIN};
use hsync_abi::{Error, MapFlags};
use hsync_kcore::elf::build::{Phdr, headers_len, image};

use super::aspace::AddressSpace;
use super::elf::{self, ElfError};
use super::memory::Memory;
use super::{MmError, OwnedKernelStack, pmm, vmm};
use crate::arch::paging::{Flags, PAGE_4K, PagingError};
use crate::ensure;
use crate::ktest::TestResult;

const R: MapFlags = MapFlags::READ;
const RW: MapFlags = MapFlags::READ.union(MapFlags::WRITE);
const RX: MapFlags = MapFlags::READ.union(MapFlags::EXECUTE);
const BASE: u64 = 0x40_0000;

fn free() -> u64 {
    pmm::stats().free
}

fn space() -> Result<AddressSpace, alloc::string::String> {
    AddressSpace::new().map_err(|e| alloc::format!("AddressSpace::new: {e:?}"))
}

fn mem(pages: usize) -> Result<Arc<Memory>, alloc::string::String> {
    Memory::new_zeroed(pages).map_err(|e| alloc::format!("Memory::new_zeroed: {e:?}"))
}

/// One create/map/drop round: two regions far apart (distinct page-table subtrees).
fn aspace_round() -> TestResult {
    let mut a = space()?;
    let m = mem(3)?;
    ensure!(a.map(BASE, &m, 0, 3, RW).is_ok(), "map low");
    ensure!(a.map(0x7f00_0000_0000, &m, 1, 2, R).is_ok(), "map high");
    ensure!(Arc::strong_count(&m) == 3, "regions hold the memory");
    drop(a);
    ensure!(Arc::strong_count(&m) == 1, "teardown dropped the regions");
    Ok(())
}

pub(super) fn aspace_create_map_drop_baseline() -> TestResult {
    aspace_round()?;
    let before = free();
    for i in 0..100 {
        aspace_round().map_err(|e| alloc::format!("round {i}: {e}"))?;
    }
    let after = free();
    ensure!(
        after == before,
        "PMM free {before} -> {after} after 100 spaces"
    );
    // The tables themselves were used: a space with a mapping costs its PML4 + 3 tables.
    let a = space()?;
    let m = mem(1)?;
    let mut a = a;
    ensure!(a.map(BASE, &m, 0, 1, R).is_ok(), "map");
    ensure!(
        free() == before - 1 - 4,
        "one page + PML4/PDPT/PD/PT: {} frames used",
        before - free()
    );
    drop((a, m));
    ensure!(free() == before, "baseline after the last space");
    Ok(())
}

pub(super) fn aspace_shares_kernel_half() -> TestResult {
    let a = space()?;
    let read = |pml4: u64, i: u64| {
        // SAFETY: both PML4s are live page-table frames the HHDM maps; reading entries races
        // with nothing (upper-half entries never change after boot, `a` is ours).
        unsafe { (super::phys_to_virt(pml4 + i * 8) as *const u64).read_volatile() }
    };
    let kernel = vmm::root();
    for i in 0..512 {
        let (mine, theirs) = (read(a.cr3(), i), read(kernel, i));
        if i < 256 {
            ensure!(mine == 0, "fresh space has lower-half entry {i}: {mine:#x}");
        } else {
            ensure!(
                mine == theirs && mine & 1 == 1,
                "entry {i}: {mine:#x} vs kernel {theirs:#x}"
            );
        }
    }
    ensure!(!a.is_current(), "a new space is not loaded");
    let b = space()?;
    ensure!(
        a.id() != b.id() && a.cr3() != b.cr3(),
        "two spaces share an id or PML4"
    );
    Ok(())
}

pub(super) fn aspace_map_permissions() -> TestResult {
    let mut a = space()?;
    let m = mem(3)?;
    let cases = [(BASE, 0, R), (BASE + 0x1000, 1, RW), (BASE + 0x2000, 2, RX)];
    for (va, page, flags) in cases {
        ensure!(
            a.map(va, &m, page, 1, flags).is_ok(),
            "map {va:#x} {flags:?}"
        );
    }
    for (va, page, flags) in cases {
        let Some(t) = a.translate(va + 0x123) else {
            return Err(alloc::format!("{va:#x} not mapped"));
        };
        ensure!(
            Some(t.phys) == m.phys(page).map(|p| p + 0x123),
            "{va:#x} maps {:#x}",
            t.phys
        );
        let f = t.flags;
        ensure!(f.contains(Flags::USER_ACCESSIBLE), "{va:#x}: no U bit");
        ensure!(
            f.contains(Flags::WRITABLE) == flags.contains(MapFlags::WRITE),
            "{va:#x}: W {f:?}"
        );
        ensure!(
            f.contains(Flags::NO_EXECUTE) != flags.contains(MapFlags::EXECUTE),
            "{va:#x}: NX {f:?}"
        );
        ensure!(
            !f.contains(Flags::WRITABLE) || f.contains(Flags::NO_EXECUTE),
            "{va:#x}: W+X"
        );
        ensure!(!f.contains(Flags::GLOBAL), "{va:#x}: user page is global");
    }
    ensure!(a.translate(BASE + 0x3000).is_none(), "next page unmapped");

    let m1 = mem(1)?;
    let refused: &[(u64, usize, usize, MapFlags, MmError)] = &[
        (
            BASE + 0x10000,
            0,
            1,
            MapFlags::READ | MapFlags::WRITE | MapFlags::EXECUTE,
            MmError::InvalidArgument,
        ),
        (
            BASE + 0x10000,
            0,
            1,
            MapFlags::WRITE,
            MmError::InvalidArgument,
        ),
        (BASE + 0x10000, 0, 0, R, MmError::InvalidArgument),
        (0, 0, 1, R, MmError::BadRange),
        (USER_MIN - 0x1000, 0, 1, R, MmError::BadRange),
        (USER_END, 0, 1, R, MmError::BadRange),
        (0xffff_8000_0000_0000, 0, 1, R, MmError::BadRange),
        (vmm::HEAP_BASE, 0, 1, RW, MmError::BadRange),
        (
            BASE + 0x10010,
            0,
            1,
            R,
            MmError::Paging(PagingError::Misaligned(BASE + 0x10010)),
        ),
        (BASE + 0x10000, 1, 1, R, MmError::BadRange),
        (BASE + 0x10000, usize::MAX, 2, R, MmError::BadRange),
        (
            BASE + 0x1000,
            0,
            1,
            R,
            MmError::Paging(PagingError::AlreadyMapped(BASE + 0x1000)),
        ),
    ];
    for &(va, first, pages, flags, want) in refused {
        let got = a.map(va, &m1, first, pages, flags);
        ensure!(
            got == Err(want),
            "map({va:#x}, {first}, {pages}, {flags:?}) = {got:?}, want {want:?}"
        );
    }
    // Overlap from below: a 2-page mapping ending inside an existing one.
    let m2 = mem(2)?;
    let got = a.map(BASE - 0x1000, &m2, 0, 2, R);
    ensure!(
        matches!(got, Err(MmError::Paging(PagingError::AlreadyMapped(_)))),
        "overlap from below: {got:?}"
    );
    ensure!(
        a.translate(BASE - 0x1000).is_none(),
        "refused map left a page"
    );
    ensure!(
        Arc::strong_count(&m1) == 1 && Arc::strong_count(&m2) == 1,
        "refused maps kept references"
    );
    // The top page of the user half is mappable.
    ensure!(a.map(USER_END - 0x1000, &m1, 0, 1, R).is_ok(), "top page");
    Ok(())
}

pub(super) fn aspace_unmap_splits() -> TestResult {
    let mut a = space()?;
    let m = mem(4)?;
    ensure!(a.map(BASE, &m, 0, 4, RW).is_ok(), "map");
    ensure!(a.unmap(BASE + 0x1000, 2).is_ok(), "unmap middle");
    for (i, mapped) in [(0, true), (1, false), (2, false), (3, true)] {
        let t = a.translate(BASE + i * 0x1000);
        ensure!(t.is_some() == mapped, "page {i}: {t:?}");
        if let Some(t) = t {
            ensure!(Some(t.phys) == m.phys(i as usize), "page {i} moved");
        }
    }
    ensure!(a.mapping_count() == 2, "split into {}", a.mapping_count());
    ensure!(Arc::strong_count(&m) == 3, "two regions + ours");
    let got = a.unmap(BASE + 0x1000, 2);
    ensure!(
        got == Err(MmError::Paging(PagingError::NotMapped(BASE + 0x1000))),
        "unmap of a hole: {got:?}"
    );
    ensure!(
        a.unmap(BASE + 0x10, 1) == Err(MmError::Paging(PagingError::Misaligned(BASE + 0x10))),
        "misaligned unmap"
    );
    ensure!(
        a.unmap(0xffff_8000_0000_0000, 1) == Err(MmError::BadRange),
        "kernel-half unmap"
    );
    // Spanning both pieces and the hole, and beyond.
    ensure!(a.unmap(BASE, 8).is_ok(), "unmap all");
    ensure!(a.mapping_count() == 0, "regions left");
    ensure!(Arc::strong_count(&m) == 1, "references left");
    for i in 0..4 {
        ensure!(a.translate(BASE + i * 0x1000).is_none(), "page {i} mapped");
    }
    // Remapping after unmap works.
    ensure!(a.map(BASE, &m, 0, 4, RX).is_ok(), "remap");
    Ok(())
}

pub(super) fn copy_user_checks() -> TestResult {
    let mut a = space()?;
    let rw = mem(2)?;
    let ro = mem(1)?;
    ensure!(a.map(BASE, &rw, 0, 2, RW).is_ok(), "map rw");
    ensure!(a.map(BASE + 0x2000, &ro, 0, 1, R).is_ok(), "map ro");
    ensure!(ro.write(0, &[7; 16]).is_ok(), "fill ro");

    // Good: a write straddling the two RW pages, read back from user and from the frames.
    let data: Vec<u8> = (0..100u8).collect();
    ensure!(a.copy_to_user(BASE + 0xfd0, &data).is_ok(), "copy_to_user");
    let mut back = vec![0u8; 100];
    ensure!(
        a.copy_from_user(BASE + 0xfd0, &mut back).is_ok(),
        "copy_from_user"
    );
    ensure!(back == data, "round trip");
    let mut direct = vec![0u8; 100];
    ensure!(
        rw.read(0xfd0, &mut direct).is_ok() && direct == data,
        "frames hold the bytes"
    );
    // Reading read-only memory, and a range straddling RW and RO, is fine.
    let mut b = [0u8; 32];
    ensure!(
        a.copy_from_user(BASE + 0x1ff0, &mut b).is_ok(),
        "read rw|ro"
    );
    ensure!(b[16..] == [7; 16], "ro bytes");
    ensure!(a.copy_to_user(BASE + 0x1000, &[]).is_ok(), "empty copy");

    let unmapped = BASE + 0x3000;
    let bad_reads: &[(u64, usize)] = &[
        (unmapped, 8),
        (unmapped - 4, 8), // straddles mapped RO and unmapped
        (0, 8),
        (8, 8),
        (super::phys_to_virt(rw.phys(0).unwrap_or(0)), 8), // the same frame, via the HHDM
        (vmm::HEAP_BASE, 8),
        (0x0000_8000_0000_0000, 8), // first non-canonical
        (0xdead_beef_0000_0000, 8),
        (u64::MAX - 3, 8), // wraps
        (USER_END - 4, 8), // crosses into non-canonical
    ];
    for &(addr, len) in bad_reads {
        let mut buf = vec![0u8; len];
        let got = a.copy_from_user(addr, &mut buf);
        ensure!(
            got == Err(Error::BadAddress),
            "read {addr:#x}+{len}: {got:?}"
        );
        let got = a.copy_to_user(addr, &buf);
        ensure!(
            got == Err(Error::BadAddress),
            "write {addr:#x}+{len}: {got:?}"
        );
    }
    // Read-only for writes; a write straddling RW -> RO changes nothing.
    let got = a.copy_to_user(BASE + 0x2000, &[1]);
    ensure!(got == Err(Error::BadAddress), "write ro: {got:?}");
    let got = a.copy_to_user(BASE + 0x1ffc, &[9; 8]);
    ensure!(got == Err(Error::BadAddress), "write rw|ro: {got:?}");
    let mut tail = [0u8; 4];
    ensure!(
        rw.read(0x1ffc, &mut tail).is_ok() && tail == [0; 4],
        "partial write happened"
    );

    // Device memory (the local APIC page: not RAM, not in the HHDM) is mappable but never
    // copied through.
    let dev = Memory::from_physical(0xfee0_0000, 1).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(dev.is_device(), "LAPIC page taken for RAM");
    ensure!(a.map(BASE + 0x10000, &dev, 0, 1, R).is_ok(), "map device");
    let t = a.translate(BASE + 0x10000);
    ensure!(
        t.is_some_and(|t| t.flags.contains(Flags::NO_CACHE)),
        "device page cached: {t:?}"
    );
    let got = a.copy_from_user(BASE + 0x10000, &mut b);
    ensure!(got == Err(Error::BadAddress), "copy from device: {got:?}");
    Ok(())
}

pub(super) fn memory_objects() -> TestResult {
    let m = mem(1)?;
    drop(m); // warm-up
    let before = free();
    let m = mem(3)?;
    ensure!(m.pages() == 3 && m.is_owned(), "pages");
    ensure!(free() == before - 3, "3 frames taken");
    let mut buf = vec![0xffu8; 3 * 4096];
    ensure!(m.read(0, &mut buf).is_ok(), "read");
    ensure!(buf.iter().all(|&b| b == 0), "not zeroed");
    ensure!(m.write(4090, b"straddle").is_ok(), "write across pages");
    let mut s = [0u8; 8];
    ensure!(
        m.read(4090, &mut s).is_ok() && &s == b"straddle",
        "read back"
    );
    ensure!(
        m.write(3 * 4096 - 1, &[1, 2]) == Err(MmError::BadRange),
        "past end"
    );
    ensure!(
        m.read(usize::MAX, &mut s) == Err(MmError::BadRange),
        "offset overflow"
    );
    ensure!(m.phys(3).is_none(), "phys past end");
    drop(m);
    ensure!(free() == before, "frames back");

    // Too big for the PMM: refused without taking anything.
    let got = Memory::new_zeroed(usize::MAX / 8);
    ensure!(matches!(got, Err(MmError::OutOfMemory)), "huge: {got:?}");
    let got = Memory::new_zeroed(before as usize + 1);
    ensure!(matches!(got, Err(MmError::OutOfMemory)), "free+1: {got:?}");
    ensure!(
        matches!(Memory::new_zeroed(0), Err(MmError::BadRange)),
        "zero pages"
    );
    ensure!(free() == before, "failed allocations leaked");

    // A borrowed range is not freed on drop.
    let Some(frame) = pmm::alloc_frame() else {
        return Err("alloc_frame".into());
    };
    let b = Memory::from_physical(frame, 1).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(
        !b.is_owned() && !b.is_device(),
        "RAM range taken for a device"
    );
    ensure!(b.write(0, b"ok").is_ok(), "write borrowed RAM");
    drop(b);
    ensure!(!pmm::is_free(frame), "borrowed frame freed");
    ensure!(pmm::free_frame(frame).is_ok(), "free");
    ensure!(
        matches!(Memory::from_physical(0x1001, 1), Err(MmError::BadRange)),
        "unaligned"
    );
    ensure!(
        matches!(
            Memory::from_physical(0xffff_ffff_ffff_f000, 2),
            Err(MmError::BadRange)
        ),
        "wrapping"
    );
    Ok(())
}

/// A small image: text (RX, 1 page), rodata (R), data+bss (RW, file bytes then 2 pages of
/// zeros). Returns the image and the offsets of each segment's bytes.
fn tiny_elf() -> Vec<u8> {
    let off = headers_len(3) as u64;
    let phdrs = [
        Phdr::load(5, off, BASE, 0x40, 0x40),
        Phdr::load(4, off + 0x40, BASE + 0x1000, 0x20, 0x20),
        Phdr::load(6, off + 0x60, BASE + 0x2010, 0x30, 0x2000),
    ];
    let mut img = vec![0u8; off as usize + 0x90];
    let _ = image(&mut img, BASE + 0x8, &phdrs);
    for (i, b) in img.iter_mut().enumerate().skip(off as usize) {
        *b = (i as u8) | 1; // non-zero file bytes
    }
    img
}

fn elf_check_loaded(a: &AddressSpace, img: &[u8]) -> TestResult {
    let off = headers_len(3);
    let pages = [
        (BASE, RX),
        (BASE + 0x1000, R),
        (BASE + 0x2000, RW),
        (BASE + 0x3000, RW),
        (BASE + 0x4000, RW),
    ];
    for (va, want) in pages {
        let Some(t) = a.translate(va) else {
            return Err(alloc::format!("{va:#x} unmapped"));
        };
        let f = t.flags;
        ensure!(f.contains(Flags::USER_ACCESSIBLE), "{va:#x} not user");
        ensure!(
            f.contains(Flags::WRITABLE) == want.contains(MapFlags::WRITE)
                && f.contains(Flags::NO_EXECUTE) != want.contains(MapFlags::EXECUTE),
            "{va:#x}: {f:?}, want {want:?}"
        );
    }
    ensure!(a.translate(BASE + 0x5000).is_none(), "past bss mapped");
    let mut text = [0u8; 0x40];
    ensure!(a.copy_from_user(BASE, &mut text).is_ok(), "read text");
    ensure!(text[..] == img[off..off + 0x40], "text bytes");
    let mut data = vec![0u8; 0x2010 + 0x40];
    ensure!(
        a.copy_from_user(BASE + 0x2000, &mut data).is_ok(),
        "read data"
    );
    ensure!(data[..0x10].iter().all(|&b| b == 0), "slack before data");
    ensure!(
        data[0x10..0x40] == img[off + 0x60..off + 0x90],
        "data bytes"
    );
    ensure!(data[0x40..].iter().all(|&b| b == 0), "bss not zero");
    // Stack: RW + NX, 32 pages, guard below unmapped; IPC buffer RW.
    let bottom = MAIN_STACK_TOP - MAIN_STACK_PAGES * PAGE_4K;
    for va in [bottom, MAIN_STACK_TOP - PAGE_4K, MAIN_IPC_BUFFER] {
        let t = a.translate(va);
        ensure!(
            t.is_some_and(|t| t
                .flags
                .contains(Flags::USER_ACCESSIBLE | Flags::WRITABLE | Flags::NO_EXECUTE)),
            "{va:#x}: {t:?}"
        );
    }
    ensure!(
        a.translate(bottom - PAGE_4K).is_none(),
        "stack guard mapped"
    );
    ensure!(
        a.is_guard_page(bottom - 8) && a.is_guard_page(bottom - PAGE_4K),
        "stack guard not recognised"
    );
    ensure!(
        !a.is_guard_page(bottom) && !a.is_guard_page(bottom - 2 * PAGE_4K),
        "guard page misplaced"
    );
    // Below a read-only or executable mapping there is no stack.
    ensure!(!a.is_guard_page(BASE - 8), "guard under text");
    ensure!(!a.is_guard_page(0), "page 0");
    ensure!(a.translate(MAIN_STACK_TOP).is_none(), "above stack mapped");
    ensure!(
        a.copy_to_user(MAIN_STACK_TOP - 8, &[1; 8]).is_ok(),
        "stack writable"
    );
    ensure!(
        a.copy_to_user(MAIN_IPC_BUFFER, &[1; 64]).is_ok(),
        "IPC buffer writable"
    );
    Ok(())
}

pub(super) fn elf_load_tiny() -> TestResult {
    let img = tiny_elf();
    ensure!(
        elf::check(&img).is_ok_and(|p| p.total_pages() == 5),
        "plan of the tiny image"
    );
    let round = || -> TestResult {
        let mut a = space()?;
        let loaded = elf::load(&mut a, &img).map_err(|e| alloc::format!("load: {e:?}"))?;
        ensure!(loaded.entry == BASE + 0x8, "entry {:#x}", loaded.entry);
        ensure!(
            loaded.stack_top == MAIN_STACK_TOP && loaded.ipc_buffer == MAIN_IPC_BUFFER,
            "{loaded:?}"
        );
        ensure!(a.mapping_count() == 5, "{} mappings", a.mapping_count());
        elf_check_loaded(&a, &img)
    };
    round()?;
    let before = free();
    for _ in 0..10 {
        round()?;
    }
    ensure!(free() == before, "PMM free {before} -> {}", free());
    Ok(())
}

pub(super) fn elf_malformed_refused() -> TestResult {
    let good = tiny_elf();
    let off = headers_len(3);
    let phdr = |i: usize, field: usize| off - (3 - i) * 56 + field;
    let patch = |at: usize, bytes: &[u8]| {
        let mut img = good.clone();
        img[at..at + bytes.len()].copy_from_slice(bytes);
        img
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated header", good[..40].to_vec()),
        ("truncated phdrs", good[..off - 1].to_vec()),
        ("bad magic", patch(0, b"\x7fELX")),
        ("32-bit", patch(4, &[1])),
        ("big-endian", patch(5, &[2])),
        ("aarch64", patch(18, &183u16.to_le_bytes())),
        ("shared object", patch(16, &3u16.to_le_bytes())),
        ("W+X text", patch(phdr(0, 4), &7u32.to_le_bytes())),
        (
            "kernel-half vaddr",
            patch(phdr(1, 16), &0xffff_8000_0000_0000u64.to_le_bytes()),
        ),
        ("null-page vaddr", patch(phdr(1, 16), &0u64.to_le_bytes())),
        ("overlap", patch(phdr(1, 16), &(BASE + 0x800).to_le_bytes())),
        ("file range", patch(phdr(2, 32), &0x1000u64.to_le_bytes())),
        (
            "huge memsz",
            patch(phdr(2, 40), &(1u64 << 40).to_le_bytes()),
        ),
        (
            "onto the stack",
            patch(phdr(2, 16), &(MAIN_STACK_TOP - 0x1000).to_le_bytes()),
        ),
        ("entry in data", patch(24, &(BASE + 0x2010).to_le_bytes())),
    ];
    // Warm-up: one refused and one good load.
    let _ = elf::load(&mut space()?, &cases[0].1);
    let _ = elf::load(&mut space()?, &good);
    let before = free();
    for (name, img) in &cases {
        ensure!(elf::check(img).is_err(), "{name}: planned");
        let mut a = space()?;
        let got = elf::load(&mut a, img);
        ensure!(matches!(got, Err(ElfError::Malformed)), "{name}: {got:?}");
        ensure!(a.mapping_count() == 0, "{name}: mappings left");
    }
    // A collision with an existing mapping fails late (after segments were mapped) and rolls
    // every mapping back.
    let mut a = space()?;
    let m = mem(1)?;
    ensure!(a.map(MAIN_IPC_BUFFER, &m, 0, 1, R).is_ok(), "pre-map");
    let got = elf::load(&mut a, &good);
    ensure!(
        matches!(got, Err(ElfError::Malformed)),
        "collision: {got:?}"
    );
    ensure!(
        a.mapping_count() == 1,
        "rollback left {} mappings",
        a.mapping_count()
    );
    ensure!(a.translate(BASE).is_none(), "text still mapped");
    drop((a, m));
    ensure!(free() == before, "PMM free {before} -> {}", free());
    Ok(())
}

pub(super) fn kernel_stacks_freed() -> TestResult {
    const N: usize = 1000;
    let round = || -> Result<Vec<OwnedKernelStack>, alloc::string::String> {
        let mut v = Vec::with_capacity(N);
        for i in 0..N {
            let s = super::new_kernel_stack(4).map_err(|e| alloc::format!("stack {i}: {e:?}"))?;
            v.push(s);
        }
        Ok(v)
    };
    drop(round()?); // warm-up: stack-region page tables
    let mut v: Vec<OwnedKernelStack> = Vec::with_capacity(N);
    let before = free();
    v.extend(round()?);
    ensure!(
        free() == before - 4 * N as u64,
        "{} frames for {N} stacks",
        before - free()
    );
    for s in v.iter().step_by(97) {
        let k = s.stack();
        ensure!(k.top - k.bottom == 4 * PAGE_4K, "size");
        ensure!(
            vmm::translate(k.guard).is_none(),
            "guard {:#x} mapped",
            k.guard
        );
        // SAFETY: the stack's pages are mapped RW and owned by this test.
        unsafe {
            ((k.top - 8) as *mut u64).write_volatile(k.top);
            (k.bottom as *mut u64).write_volatile(k.bottom);
        }
    }
    let tops: Vec<u64> = v.iter().map(|s| s.top()).collect();
    v.clear();
    ensure!(
        free() == before,
        "PMM free {before} -> {} after freeing",
        free()
    );
    ensure!(
        tops.iter().all(|&t| vmm::translate(t - 8).is_none()),
        "a freed stack is still mapped"
    );
    // Alloc/free one at a time reuses the same slot.
    for _ in 0..N {
        drop(super::new_kernel_stack(4).map_err(|e| alloc::format!("{e:?}"))?);
    }
    ensure!(
        free() == before,
        "sequential: PMM free {before} -> {}",
        free()
    );
    ensure!(
        matches!(super::new_kernel_stack(0), Err(MmError::BadRange))
            && matches!(super::new_kernel_stack(64), Err(MmError::BadRange)),
        "bad sizes accepted"
    );
    Ok(())
}

pub(super) fn copy_words_and_between() -> TestResult {
    let mut a = space()?;
    let mut b = space()?;
    let ma = mem(2)?;
    let mb = mem(1)?;
    ensure!(a.map(BASE, &ma, 0, 2, RW).is_ok(), "map a");
    ensure!(b.map(BASE, &mb, 0, 1, RW).is_ok(), "map b");

    // Words straddling a page boundary.
    let words: Vec<u64> = (0..8)
        .map(|i| 0x1111_0000_0000_0000 * (i + 1) + i)
        .collect();
    let at = BASE + 0x1000 - 24;
    ensure!(a.copy_words_to_user(at, &words).is_ok(), "words to user");
    let mut back = [0u64; 8];
    ensure!(
        a.copy_words_from_user(at, &mut back).is_ok(),
        "words from user"
    );
    ensure!(back[..] == words[..], "word round trip");
    let mut bytes = [0u8; 8];
    ensure!(
        a.copy_from_user(at + 8, &mut bytes).is_ok() && u64::from_le_bytes(bytes) == words[1],
        "little-endian layout"
    );
    let got = a.copy_words_from_user(at + 4, &mut back);
    ensure!(got == Err(Error::Misaligned), "misaligned read: {got:?}");
    let got = a.copy_words_to_user(at + 1, &words);
    ensure!(got == Err(Error::Misaligned), "misaligned write: {got:?}");
    let got = a.copy_words_from_user(0xffff_8000_0000_0004, &mut back);
    ensure!(
        got == Err(Error::BadAddress),
        "kernel address first: {got:?}"
    );
    // Running off the end of the mapping: nothing written.
    let got = a.copy_words_to_user(BASE + 0x2000 - 16, &words);
    ensure!(got == Err(Error::BadAddress), "past the end: {got:?}");
    let mut tail = [0u8; 16];
    ensure!(
        ma.read(0x2000 - 16, &mut tail).is_ok() && tail == [0; 16],
        "partial word write"
    );

    // Space to space, unaligned on both sides, crossing a page in the source.
    let msg: Vec<u8> = (0..200u8).collect();
    ensure!(a.copy_to_user(BASE + 0xf9d, &msg).is_ok(), "fill source");
    ensure!(
        AddressSpace::copy_between(&a, BASE + 0xf9d, &b, BASE + 0x13, 200).is_ok(),
        "copy_between"
    );
    let mut got = vec![0u8; 200];
    ensure!(
        b.copy_from_user(BASE + 0x13, &mut got).is_ok() && got == msg,
        "bytes moved"
    );
    // Destination too short: refused before anything moves.
    let got = AddressSpace::copy_between(&a, BASE, &b, BASE + 0xf00, 0x200);
    ensure!(got == Err(Error::BadAddress), "dst overflow: {got:?}");
    let mut untouched = [0u8; 0x100];
    ensure!(
        mb.read(0xf00, &mut untouched).is_ok() && untouched.iter().all(|&x| x == 0),
        "partial copy_between"
    );
    // Source unmapped, destination read-only.
    let got = AddressSpace::copy_between(&a, BASE + 0x2000, &b, BASE, 8);
    ensure!(got == Err(Error::BadAddress), "src unmapped: {got:?}");
    let ro = mem(1)?;
    ensure!(b.map(BASE + 0x1000, &ro, 0, 1, R).is_ok(), "map ro");
    let got = AddressSpace::copy_between(&a, BASE, &b, BASE + 0x1000, 8);
    ensure!(got == Err(Error::BadAddress), "dst read-only: {got:?}");
    // Within one space, overlapping.
    ensure!(
        AddressSpace::copy_between(&a, BASE + 0xf9d, &a, BASE + 0xfa0, 100).is_ok(),
        "overlapping copy"
    );
    let mut o = vec![0u8; 100];
    ensure!(
        a.copy_from_user(BASE + 0xfa0, &mut o).is_ok() && o[..] == msg[..100],
        "memmove up"
    );
    ensure!(
        AddressSpace::copy_between(&a, BASE + 0xfa0, &a, BASE + 0xf9d, 100).is_ok(),
        "overlapping copy down"
    );
    ensure!(
        a.copy_from_user(BASE + 0xf9d, &mut o).is_ok() && o[..] == msg[..100],
        "memmove down"
    );
    Ok(())
}

/// Not a timed assertion: logs what the memory paths cost here (TCG or KVM), for the reports.
pub(super) fn costs_logged() -> TestResult {
    let now = crate::arch::uptime_ns;
    const N: u64 = 200;
    let t = now();
    for _ in 0..N {
        aspace_round()?;
    }
    let space_ns = (now() - t) / N;

    let img = tiny_elf();
    let t = now();
    for _ in 0..N / 4 {
        let mut a = space()?;
        elf::load(&mut a, &img).map_err(|e| alloc::format!("{e:?}"))?;
    }
    let elf_ns = (now() - t) / (N / 4);

    let mut a = space()?;
    let m = mem(2)?;
    ensure!(a.map(BASE, &m, 0, 2, RW).is_ok(), "map");
    let mut small = [0u64; 16];
    let t = now();
    for _ in 0..N * 10 {
        ensure!(
            a.copy_words_from_user(BASE + 0x100, &mut small).is_ok(),
            "copy"
        );
    }
    let words_ns = (now() - t) / (N * 10);
    let mut page = vec![0u8; 4096];
    let t = now();
    for _ in 0..N * 10 {
        ensure!(a.copy_from_user(BASE + 0x800, &mut page).is_ok(), "copy");
    }
    let page_ns = (now() - t) / (N * 10);

    let t = now();
    for _ in 0..N {
        drop(super::new_kernel_stack(4).map_err(|e| alloc::format!("{e:?}"))?);
    }
    let stack_ns = (now() - t) / N;
    log::info!(
        "mm costs: space+2 maps+drop {space_ns} ns, tiny ELF load+drop {elf_ns} ns, \
         128-byte word copy {words_ns} ns, 4 KiB copy (2 pages) {page_ns} ns, \
         4-page kernel stack alloc+free {stack_ns} ns"
    );
    Ok(())
}
