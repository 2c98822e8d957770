//! In-kernel tests of the arch layer (booted with `test`). User mode, the timer and context
//! switches are tested in `user_tests.rs`.

use core::sync::atomic::Ordering;

use x86_64::instructions::segmentation::{CS, SS, Segment};
use x86_64::instructions::tables::{sgdt, sidt};
use x86_64::registers::control::{Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};

use super::{backtrace, cpu, fpu, gdt, power, probe, time, trap, user_tests};
use crate::ensure;
use crate::ktest::{KTest, TestResult};

const PAGE: u64 = 4096;

/// The arch suite.
pub const TESTS: &[KTest] = &[
    KTest {
        name: "arch::breakpoint_resumes",
        run: breakpoint_resumes,
    },
    KTest {
        name: "arch::page_fault_caught_and_resumed",
        run: page_fault_caught_and_resumed,
    },
    KTest {
        name: "arch::gdt_tss_loaded",
        run: gdt_tss_loaded,
    },
    KTest {
        name: "arch::ist_stacks_guarded",
        run: ist_stacks_guarded,
    },
    KTest {
        name: "arch::idt_gates_point_at_stubs",
        run: idt_gates_point_at_stubs,
    },
    KTest {
        name: "arch::cr4_matches_cpuid",
        run: cr4_matches_cpuid,
    },
    KTest {
        name: "arch::log_timestamp_monotonic",
        run: log_timestamp_monotonic,
    },
    KTest {
        name: "arch::backtrace_walks_own_stack",
        run: backtrace_walks_own_stack,
    },
    KTest {
        name: "arch::acpi_s5_package_scan",
        run: acpi_s5_package_scan,
    },
    KTest {
        name: "arch::percpu_block_through_gs",
        run: user_tests::percpu_block_through_gs,
    },
    KTest {
        name: "arch::context_switch_ping_pong",
        run: user_tests::context_switch_ping_pong,
    },
    KTest {
        name: "arch::apic_timer_ticks",
        run: user_tests::apic_timer_ticks,
    },
    KTest {
        name: "arch::user_mode_round_trip",
        run: user_tests::user_mode_round_trip,
    },
    KTest {
        name: "arch::sysret_hazards_and_ring3_interrupts",
        run: user_tests::sysret_hazards_and_ring3_interrupts,
    },
    KTest {
        name: "arch::smap_blocks_kernel_reads",
        run: user_tests::smap_blocks_kernel_reads,
    },
    KTest {
        name: "arch::pcid_address_space_switch",
        run: user_tests::pcid_address_space_switch,
    },
    KTest {
        name: "arch::lazy_fpu_policy",
        run: lazy_fpu_policy,
    },
];

/// The lazy FPU policy's control bits, and that the ring-3 code of the ktests before this one
/// (syscalls, sysret/iret returns, interrupts and faults in ring 3; no FPU use) never took #NM.
fn lazy_fpu_policy() -> TestResult {
    use x86_64::registers::control::{Cr0, Cr0Flags};
    let f = cpu::features();
    ensure!(
        fpu::enabled() == (f.fxsr && f.sse),
        "lazy FPU {} but CPUID FXSR {} SSE {}",
        fpu::enabled(),
        f.fxsr,
        f.sse
    );
    let (cr0, cr4) = (Cr0::read(), Cr4::read());
    if fpu::enabled() {
        ensure!(
            !cr0.contains(Cr0Flags::EMULATE_COPROCESSOR)
                && cr0.contains(Cr0Flags::MONITOR_COPROCESSOR),
            "CR0 {cr0:?}: want MP on, EM off"
        );
        ensure!(
            cr4.contains(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE)
                && !cr4.contains(Cr4Flags::OSXSAVE),
            "CR4 {cr4:?}: want OSFXSR and OSXMMEXCPT on, OSXSAVE off"
        );
        let me = crate::arch::cpu_local().current();
        ensure!(fpu::owner() != me, "the ktest (kernel) thread owns the FPU");
        ensure!(
            cr0.contains(Cr0Flags::TASK_SWITCHED) && fpu::ts_set(),
            "CR0.TS {} (cached {}) while a non-owner runs",
            cr0.contains(Cr0Flags::TASK_SWITCHED),
            fpu::ts_set()
        );
    } else {
        ensure!(
            cr0.contains(Cr0Flags::EMULATE_COPROCESSOR),
            "no FXSR/SSE but CR0.EM clear"
        );
    }
    let nm = fpu::NM_TRAPS.load(Ordering::Relaxed);
    ensure!(nm == 0, "{nm} #NM traps from FPU-free ring-3 code");
    Ok(())
}

fn breakpoint_resumes() -> TestResult {
    let before = trap::BREAKPOINTS.load(Ordering::Relaxed);
    let marker: u64;
    // SAFETY: `int3` traps to our #BP handler, which logs and returns to the next instruction;
    // the `mov` after it proves execution resumed inside this asm block.
    unsafe { core::arch::asm!("int3", "mov {0}, 0x5a5a", out(reg) marker) };
    let after = trap::BREAKPOINTS.load(Ordering::Relaxed);
    ensure!(
        after == before + 1,
        "breakpoint count went {before} -> {after}"
    );
    ensure!(marker == 0x5a5a, "execution did not resume after int3");
    Ok(())
}

fn page_fault_caught_and_resumed() -> TestResult {
    // The null page is never mapped: a kernel read there is a not-present #PF.
    let addr = 0x18;
    match probe::read_u64(addr) {
        Ok(v) => return Err(alloc::format!("read of {addr:#x} succeeded ({v:#x})")),
        Err(f) => {
            ensure!(f.addr == addr, "CR2 {:#x}, expected {addr:#x}", f.addr);
            ensure!(
                f.code & 0b111 == 0,
                "error code {:#x}: expected a kernel read of a non-present page",
                f.code
            );
        }
    }
    // The probe is disarmed again: a good read works, and reads the right value.
    static SENTINEL: u64 = 0x1234_5678_9abc_def0;
    let good = probe::read_u64(&raw const SENTINEL as u64);
    ensure!(
        good == Ok(SENTINEL),
        "read of a mapped static gave {good:?}"
    );
    Ok(())
}

fn gdt_tss_loaded() -> TestResult {
    let tr = gdt::task_register();
    ensure!(
        tr == gdt::TSS_SEL,
        "TR = {tr:#x}, expected {:#x}",
        gdt::TSS_SEL
    );
    let (cs, ss) = (CS::get_reg().0, SS::get_reg().0);
    ensure!(
        cs == gdt::KERNEL_CS && ss == gdt::KERNEL_SS,
        "CS/SS = {cs:#x}/{ss:#x}"
    );
    let gdtr = sgdt();
    ensure!(
        gdtr.limit == 8 * 8 - 1,
        "GDT limit {} (expected 8 entries)",
        gdtr.limit
    );
    // sysret derives user CS/SS from STAR: check the descriptors sit where STAR says.
    let base = gdt::STAR_SELECTORS >> 16 & !3;
    ensure!(
        base + 16 == u64::from(gdt::USER_CS & !3),
        "user CS not at STAR base + 16"
    );
    ensure!(
        base + 8 == u64::from(gdt::USER_SS & !3),
        "user SS not at STAR base + 8"
    );
    Ok(())
}

fn ist_stacks_guarded() -> TestResult {
    for (i, top) in gdt::ist_tops().into_iter().enumerate() {
        ensure!(
            top != 0 && top % 16 == 0,
            "IST{} top {top:#x} is null or misaligned",
            i + 1
        );
        ensure!(
            probe::read_u64(top - 8).is_ok(),
            "IST{} top {top:#x} is not mapped",
            i + 1
        );
        // The guarded stack is `super::IST_STACK_PAGES` pages; the page under it must fault.
        let guard = top - super::IST_STACK_PAGES as u64 * PAGE - 8;
        match probe::read_u64(guard) {
            Ok(_) => return Err(alloc::format!("IST{} guard {guard:#x} is mapped", i + 1)),
            Err(f) => ensure!(
                f.addr == guard && f.code & 1 == 0,
                "IST{} guard fault {f:?}",
                i + 1
            ),
        }
        let lowest = top - super::IST_STACK_PAGES as u64 * PAGE;
        ensure!(
            probe::read_u64(lowest).is_ok(),
            "IST{} lowest stack page unmapped",
            i + 1
        );
    }
    Ok(())
}

fn idt_gates_point_at_stubs() -> TestResult {
    let (start, end) = trap::stub_block();
    ensure!(
        end - start == 256 * trap::STUB_STRIDE as u64,
        "stub block is {} bytes, expected 256 x {}",
        end - start,
        trap::STUB_STRIDE
    );
    let idtr = sidt();
    ensure!(idtr.limit == 256 * 16 - 1, "IDT limit {}", idtr.limit);
    let gates = idtr.base.as_u64();
    for v in [0u64, 3, 8, 14, 255] {
        let lo = probe::read_u64(gates + v * 16).map_err(|f| alloc::format!("{f:?}"))?;
        let hi = probe::read_u64(gates + v * 16 + 8).map_err(|f| alloc::format!("{f:?}"))?;
        let target = (lo & 0xffff) | (lo >> 48 & 0xffff) << 16 | (hi & 0xffff_ffff) << 32;
        let expected = start + v * trap::STUB_STRIDE as u64;
        ensure!(
            target == expected,
            "vector {v} -> {target:#x}, expected {expected:#x}"
        );
        ensure!(lo >> 40 & 0x80 != 0, "vector {v} gate not present");
    }
    Ok(())
}

fn cr4_matches_cpuid() -> TestResult {
    let f = cpu::features();
    let cr4 = Cr4::read();
    for (name, has, bit) in [
        (
            "SMEP",
            f.smep,
            Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION,
        ),
        ("SMAP", f.smap, Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION),
        ("UMIP", f.umip, Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION),
    ] {
        ensure!(
            cr4.contains(bit) == has,
            "{name}: CPUID says {has}, CR4 says {}",
            cr4.contains(bit)
        );
    }
    let nxe = Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE);
    ensure!(nxe == f.nx, "NX: CPUID says {}, EFER.NXE is {nxe}", f.nx);
    Ok(())
}

fn log_timestamp_monotonic() -> TestResult {
    let hz = time::tsc_hz().ok_or_else(|| alloc::string::String::from("TSC not calibrated"))?;
    ensure!(hz > 1_000_000, "implausible TSC rate {hz} Hz");
    let first = time::uptime_ns();
    let mut last = first;
    for _ in 0..10_000 {
        let now = time::uptime_ns();
        ensure!(now >= last, "time went backwards: {last} -> {now}");
        last = now;
    }
    // Spin until the TSC has advanced by 1 ms worth of ticks; uptime must have moved with it.
    let start = time::rdtsc();
    while time::rdtsc() - start < hz / 1000 {
        core::hint::spin_loop();
    }
    let later = time::uptime_ns();
    ensure!(
        later >= first + 1_000_000,
        "1 ms of TSC ticks moved uptime by {} ns",
        later - first
    );
    Ok(())
}

#[inline(never)]
fn nested_walk(depth: u32) -> usize {
    if depth > 0 {
        // black_box keeps the call out of tail position, so each level keeps its frame.
        return core::hint::black_box(nested_walk(depth - 1));
    }
    let mut frames = 0;
    backtrace::walk(backtrace::current_rbp(), |ret| {
        if backtrace::is_kernel_text(ret) {
            frames += 1;
        }
    });
    frames
}

fn backtrace_walks_own_stack() -> TestResult {
    // Three nested calls plus this test and the runner: at least five frames, all in kernel text.
    let frames = nested_walk(3);
    ensure!(frames >= 5, "backtrace found only {frames} frames");
    Ok(())
}

fn acpi_s5_package_scan() -> TestResult {
    power::scan_s5_self_test().map_err(alloc::string::String::from)
}
