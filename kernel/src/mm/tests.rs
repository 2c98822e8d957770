//! In-kernel tests of the memory managers, run in QEMU by the ktest runner. They check the live
//! state the CPU uses: PMM counters, the active page tables, the heap's mapped size.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use hsync_kcore::frame::{FRAME_SIZE, FrameError};

use super::vmm::{self, SCRATCH_BASE};
use super::{Cache, heap, pmm};
use crate::arch::paging::{Flags, PAGE_4K};
use crate::ensure;
use crate::ktest::{KTest, TestResult};

pub(super) const TESTS: &[KTest] = &[
    KTest {
        name: "mm::pmm_alloc_free_baseline",
        run: pmm_alloc_free_baseline,
    },
    KTest {
        name: "mm::pmm_contiguous_baseline",
        run: pmm_contiguous_baseline,
    },
    KTest {
        name: "mm::pmm_misuse_refused",
        run: pmm_misuse_refused,
    },
    KTest {
        name: "mm::map_write_read_unmap",
        run: map_write_read_unmap,
    },
    KTest {
        name: "mm::heap_grows_on_demand",
        run: heap_grows_on_demand,
    },
    KTest {
        name: "mm::kernel_sections_wx",
        run: kernel_sections_wx,
    },
    KTest {
        name: "mm::no_identity_or_user_mappings",
        run: no_identity_or_user_mappings,
    },
    KTest {
        name: "mm::kernel_stack_guard_unmapped",
        run: kernel_stack_guard_unmapped,
    },
    KTest {
        name: "mm::map_physical_reads_rsdp",
        run: map_physical_reads_rsdp,
    },
    KTest {
        name: "mm::aspace_create_map_drop_baseline",
        run: super::user_tests::aspace_create_map_drop_baseline,
    },
    KTest {
        name: "mm::aspace_shares_kernel_half",
        run: super::user_tests::aspace_shares_kernel_half,
    },
    KTest {
        name: "mm::aspace_map_permissions",
        run: super::user_tests::aspace_map_permissions,
    },
    KTest {
        name: "mm::aspace_unmap_splits",
        run: super::user_tests::aspace_unmap_splits,
    },
    KTest {
        name: "mm::copy_user_checks",
        run: super::user_tests::copy_user_checks,
    },
    KTest {
        name: "mm::memory_objects",
        run: super::user_tests::memory_objects,
    },
    KTest {
        name: "mm::elf_load_tiny",
        run: super::user_tests::elf_load_tiny,
    },
    KTest {
        name: "mm::elf_malformed_refused",
        run: super::user_tests::elf_malformed_refused,
    },
    KTest {
        name: "mm::kernel_stacks_freed",
        run: super::user_tests::kernel_stacks_freed,
    },
    KTest {
        name: "mm::copy_words_and_between",
        run: super::user_tests::copy_words_and_between,
    },
    KTest {
        name: "mm::costs_logged",
        run: super::user_tests::costs_logged,
    },
];

fn hhdm_ptr(phys: u64) -> *mut u64 {
    super::phys_to_virt(phys) as *mut u64
}

fn pmm_alloc_free_baseline() -> TestResult {
    let before = pmm::stats();
    ensure!(
        before.total > 0 && before.free > 0,
        "PMM is empty: {before:?}"
    );
    let mut frames = Vec::with_capacity(64);
    for i in 0..64u64 {
        let Some(f) = pmm::alloc_frame() else {
            return Err(alloc::format!("alloc {i} failed"));
        };
        ensure!(f != 0 && f % FRAME_SIZE == 0, "bad frame {f:#x}");
        ensure!(!pmm::is_free(f), "allocated frame {f:#x} still marked free");
        ensure!(!frames.contains(&f), "frame {f:#x} handed out twice");
        // The frame is usable RAM: write a tag through the HHDM and read it back.
        // SAFETY: we own the frame; the HHDM maps it RW.
        unsafe { hhdm_ptr(f).write_volatile(f ^ 0x5a5a) };
        frames.push(f);
    }
    let mid = pmm::stats();
    ensure!(
        mid.free == before.free - 64 && mid.total == before.total,
        "{before:?} -> {mid:?}"
    );
    for &f in &frames {
        // SAFETY: as above, still ours.
        let v = unsafe { hhdm_ptr(f).read_volatile() };
        ensure!(v == f ^ 0x5a5a, "frame {f:#x} lost its contents");
        pmm::free_frame(f).map_err(|e| alloc::format!("free {f:#x}: {e:?}"))?;
    }
    let after = pmm::stats();
    ensure!(
        after == before,
        "counters not back to baseline: {before:?} -> {after:?}"
    );
    Ok(())
}

fn pmm_contiguous_baseline() -> TestResult {
    let before = pmm::stats();
    let run = pmm::alloc_contiguous(32, 16).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(
        run % (16 * FRAME_SIZE) == 0,
        "run {run:#x} not 64 KiB aligned"
    );
    ensure!(
        (0..32).all(|i| !pmm::is_free(run + i * FRAME_SIZE)),
        "run frames still free"
    );
    ensure!(
        pmm::stats().free == before.free - 32,
        "free did not drop by 32"
    );
    pmm::free_contiguous(run, 32).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(pmm::stats() == before, "counters not back to baseline");
    Ok(())
}

fn pmm_misuse_refused() -> TestResult {
    let f = pmm::alloc_frame().ok_or("out of frames")?;
    pmm::free_frame(f).map_err(|e| alloc::format!("{e:?}"))?;
    let before = pmm::stats();
    ensure!(
        pmm::free_frame(f) == Err(FrameError::DoubleFree(f)),
        "double free not detected"
    );
    ensure!(
        pmm::free_frame(0) == Err(FrameError::NotManaged(0)),
        "frame 0 accepted"
    );
    ensure!(
        pmm::free_frame(f + 8) == Err(FrameError::Misaligned(f + 8)),
        "misaligned accepted"
    );
    // The kernel image is ExecutableAndModules memory, never the PMM's.
    let text = vmm::translate(vmm::kernel_sections().text.0)
        .ok_or("text unmapped")?
        .phys;
    ensure!(
        pmm::free_frame(text) == Err(FrameError::NotManaged(text)),
        "kernel frame accepted"
    );
    ensure!(
        pmm::stats() == before,
        "a refused free changed the counters"
    );
    Ok(())
}

fn map_write_read_unmap() -> TestResult {
    let virt = SCRATCH_BASE + 0x1000;
    let frame = pmm::alloc_frame().ok_or("out of frames")?;
    ensure!(
        vmm::translate(virt).is_none(),
        "scratch page already mapped"
    );
    vmm::map_page(virt, frame, Flags::WRITABLE | Flags::NO_EXECUTE)
        .map_err(|e| alloc::format!("{e:?}"))?;
    let t = vmm::translate(virt).ok_or("mapping not visible")?;
    ensure!(
        t.phys == frame,
        "translates to {:#x}, not {frame:#x}",
        t.phys
    );
    ensure!(
        t.flags.contains(Flags::WRITABLE | Flags::NO_EXECUTE),
        "flags {:?}",
        t.flags
    );
    // Write through the new mapping, read through the HHDM, and the other way round.
    // SAFETY: `virt` maps our frame RW; the HHDM aliases the same frame (both write-back).
    unsafe {
        (virt as *mut u64).write_volatile(0x1234_5678_9abc_def0);
        ensure!(
            hhdm_ptr(frame).read_volatile() == 0x1234_5678_9abc_def0,
            "HHDM does not see the write"
        );
        hhdm_ptr(frame).add(1).write_volatile(0x0fed_cba9);
        ensure!(
            (virt as *const u64).add(1).read_volatile() == 0x0fed_cba9,
            "mapping does not see the write"
        );
    }
    ensure!(
        vmm::map_page(virt, frame, Flags::WRITABLE).is_err(),
        "double map accepted"
    );
    let back = vmm::unmap_page(virt).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(back == frame, "unmap returned {back:#x}");
    ensure!(vmm::translate(virt).is_none(), "translation survives unmap");
    ensure!(vmm::unmap_page(virt).is_err(), "second unmap accepted");
    pmm::free_frame(frame).map_err(|e| alloc::format!("{e:?}"))?;
    Ok(())
}

fn heap_grows_on_demand() -> TestResult {
    let mapped_before = heap::mapped_bytes();
    let pmm_before = pmm::stats();
    let allocated_before = heap::counters().allocated_bytes;
    // More than the whole initial heap in one block: talc must call the OOM handler.
    let words = (2 * heap::INITIAL_SIZE / 8) as usize;
    let mut v: Vec<u64> = Vec::new();
    v.try_reserve_exact(words)
        .map_err(|e| alloc::format!("{e:?}"))?;
    v.extend((0..words as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let mapped_after = heap::mapped_bytes();
    ensure!(
        mapped_after >= mapped_before + heap::INITIAL_SIZE,
        "heap did not grow: {mapped_before} -> {mapped_after} bytes"
    );
    let grown_frames = (mapped_after - mapped_before) / PAGE_4K;
    let used_more = pmm::stats().used() - pmm_before.used();
    ensure!(
        used_more >= grown_frames,
        "heap grew {grown_frames} pages but PMM used only {used_more} more"
    );
    // The new top of the heap is real, mapped, non-executable memory.
    let top = vmm::HEAP_BASE + mapped_after - 8;
    let t = vmm::translate(top).ok_or("heap top unmapped")?;
    ensure!(
        t.flags.contains(Flags::WRITABLE | Flags::NO_EXECUTE),
        "heap flags {:?}",
        t.flags
    );
    ensure!(
        v.iter()
            .enumerate()
            .all(|(i, &x)| x == (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        "heap data corrupted"
    );
    drop(v);
    let allocated_after = heap::counters().allocated_bytes;
    ensure!(
        allocated_after == allocated_before,
        "heap bytes leaked: {allocated_before} -> {allocated_after}"
    );
    // Growth is kept for reuse: the mapped size never shrinks, and the PMM counters agree.
    ensure!(heap::mapped_bytes() == mapped_after, "heap shrank");
    ensure!(pmm::stats().total == pmm_before.total, "PMM total changed");
    Ok(())
}

fn kernel_sections_wx() -> TestResult {
    let s = vmm::kernel_sections();
    let pages = |(a, b): (u64, u64)| (a..b).step_by(PAGE_4K as usize);
    for v in pages(s.text) {
        let t = vmm::translate(v).ok_or_else(|| alloc::format!("text {v:#018x} unmapped"))?;
        ensure!(
            !t.flags.contains(Flags::WRITABLE),
            "text {v:#018x} writable"
        );
        ensure!(
            !t.flags.contains(Flags::NO_EXECUTE),
            "text {v:#018x} not executable"
        );
    }
    for v in pages(s.rodata) {
        let t = vmm::translate(v).ok_or_else(|| alloc::format!("rodata {v:#018x} unmapped"))?;
        ensure!(
            !t.flags.contains(Flags::WRITABLE),
            "rodata {v:#018x} writable"
        );
        ensure!(
            t.flags.contains(Flags::NO_EXECUTE),
            "rodata {v:#018x} executable"
        );
    }
    for v in pages(s.data) {
        let t = vmm::translate(v).ok_or_else(|| alloc::format!("data {v:#018x} unmapped"))?;
        ensure!(
            t.flags.contains(Flags::WRITABLE),
            "data {v:#018x} read-only"
        );
        ensure!(
            t.flags.contains(Flags::NO_EXECUTE),
            "data {v:#018x} executable"
        );
    }
    // Nothing in the image's 2 MiB-rounded neighbourhood is both writable and executable.
    let lo = s.image.0 & !(2 * 1024 * 1024 - 1);
    let hi = s.image.1.next_multiple_of(2 * 1024 * 1024);
    let mut checked = 0;
    for v in pages((lo, hi)) {
        if let Some(t) = vmm::translate(v) {
            checked += 1;
            let wx = t.flags.contains(Flags::WRITABLE) && !t.flags.contains(Flags::NO_EXECUTE);
            ensure!(!wx, "{v:#018x} is writable and executable");
        }
    }
    ensure!(
        checked as u64 == (s.image.1 - s.image.0) / PAGE_4K,
        "stray mappings near the image"
    );
    // The image's physical frames have no (writable) alias in the HHDM.
    let text_phys = vmm::translate(s.text.0).ok_or("text unmapped")?.phys;
    ensure!(
        vmm::translate(super::phys_to_virt(text_phys)).is_none(),
        "kernel text aliased in the HHDM"
    );
    Ok(())
}

fn no_identity_or_user_mappings() -> TestResult {
    let cr3 = crate::arch::paging::active_pml4();
    ensure!(
        cr3 == vmm::root(),
        "CR3 {cr3:#x} is not the kernel's PML4 {:#x}",
        vmm::root()
    );
    for i in 0..256 {
        ensure!(
            !vmm::pml4_entry_present(i),
            "lower-half PML4 entry {i} is present"
        );
    }
    for i in 256..512 {
        ensure!(
            vmm::pml4_entry_present(i),
            "upper-half PML4 entry {i} not preallocated"
        );
    }
    let text_phys = vmm::translate(vmm::kernel_sections().text.0)
        .ok_or("text unmapped")?
        .phys;
    for a in [0, 0x1000, 0x7c00, 0xb8000, 0x10_0000, text_phys] {
        ensure!(vmm::translate(a).is_none(), "low address {a:#x} is mapped");
    }
    Ok(())
}

fn kernel_stack_guard_unmapped() -> TestResult {
    let a = super::alloc_kernel_stack(4).ok_or("stack allocation failed")?;
    let b = super::alloc_kernel_stack(2).ok_or("stack allocation failed")?;
    for s in [a, b] {
        ensure!(s.top % 16 == 0, "top {:#x} misaligned", s.top);
        ensure!(
            s.guard + PAGE_4K == s.bottom,
            "guard not directly below the stack"
        );
        ensure!(
            vmm::translate(s.guard).is_none(),
            "guard page {:#018x} is mapped",
            s.guard
        );
        ensure!(
            vmm::translate(s.guard + PAGE_4K - 1).is_none(),
            "guard page end is mapped"
        );
        for v in (s.bottom..s.top).step_by(PAGE_4K as usize) {
            let t =
                vmm::translate(v).ok_or_else(|| alloc::format!("stack page {v:#x} unmapped"))?;
            ensure!(
                t.flags.contains(Flags::WRITABLE | Flags::NO_EXECUTE),
                "stack flags {:?}",
                t.flags
            );
        }
        // SAFETY: both ends are inside the freshly mapped, otherwise unused stack.
        unsafe {
            (s.bottom as *mut u64).write_volatile(1);
            ((s.top - 8) as *mut u64).write_volatile(2);
        }
    }
    ensure!(
        b.guard == a.top,
        "second stack does not start with its own guard"
    );
    Ok(())
}

fn map_physical_reads_rsdp() -> TestResult {
    // The HHDM shortcut: RAM the HHDM covers comes back as its HHDM address.
    let f = pmm::alloc_frame().ok_or("out of frames")?;
    let v =
        super::map_physical(f + 16, 64, Cache::WriteBack).map_err(|e| alloc::format!("{e:?}"))?;
    pmm::free_frame(f).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(
        v.as_u64() == super::phys_to_virt(f + 16),
        "RAM not served from the HHDM"
    );
    ensure!(
        super::map_physical(0, 0, Cache::WriteBack).is_err(),
        "empty range accepted"
    );

    // A firmware table outside the HHDM (SeaBIOS keeps the RSDP in reserved memory).
    let rsdp = super::RSDP_PHYS.load(Ordering::Relaxed);
    ensure!(rsdp != 0, "the loader reported no RSDP");
    let v = super::map_physical(rsdp, 20, Cache::WriteBack).map_err(|e| alloc::format!("{e:?}"))?;
    // SAFETY: `map_physical` mapped these 20 bytes readable.
    let bytes = unsafe { core::slice::from_raw_parts(v.as_ptr::<u8>(), 20) };
    ensure!(
        &bytes[..8] == b"RSD PTR ",
        "no RSDP signature at {rsdp:#x}: {:?}",
        &bytes[..8]
    );
    let sum = bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    ensure!(sum == 0, "RSDP checksum {sum:#x} != 0");

    // The same bytes through an uncached window (firmware memory has no write-back alias in
    // our tables, so this creates no conflicting memory types); the entry carries PCD + PWT.
    let uc = super::map_physical(rsdp, 20, Cache::Uncached).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(uc != v, "uncached request reused the write-back mapping");
    let t = vmm::translate(uc.as_u64()).ok_or("uncached window unmapped")?;
    ensure!(
        t.flags.contains(Flags::NO_CACHE | Flags::WRITE_THROUGH),
        "not uncached: {:?}",
        t.flags
    );
    // SAFETY: `map_physical` mapped these 20 bytes readable.
    let uc_bytes = unsafe { core::slice::from_raw_parts(uc.as_ptr::<u8>(), 20) };
    ensure!(
        uc_bytes == bytes,
        "uncached view differs from the write-back view"
    );
    Ok(())
}
