//! x86_64 implementation of the arch facade.
//!
//! Boot sequence on the boot CPU: [`early_init`] (serial, logger, GDT/TSS with static IST
//! stacks, IDT, PIC masked, TSC calibrated) → the memory manager → [`late_init`] (guarded IST
//! stacks, SMEP/SMAP/UMIP, per-CPU block + syscall MSRs + FPU policy + PCID + local APIC
//! (`user::init_cpu`), switch to a guarded kernel stack). The rest of the kernel sees only the
//! functions re-exported here.
//!
//! User mode, `syscall` and context switches are described in `user.rs`; lazy user FPU/SSE
//! (CR0.TS, #NM) in `fpu.rs`; per-CPU data and the `swapgs` discipline in `percpu.rs`; the APIC
//! timer (vector 0x30) in `apic.rs`.

use core::arch::asm;

use spin::Once;

use crate::boot::BootInfo;
use crate::ktest::KTest;

mod apic;
mod backtrace;
mod bkl;
mod cpu;
mod fpu;
mod gdt;
mod ioapic;
pub mod paging;
mod percpu;
mod pic;
mod power;
mod probe;
mod serial;
pub mod smp;
mod start;
mod tests;
mod time;
mod trap;
mod user;
mod user_tests;

pub use self::backtrace::{current_rbp, walk as walk_frames};
pub use self::cpu::cpu_id;
pub use self::fpu::{
    FxArea, claim as fpu_claim, release as fpu_release, switch_to as fpu_switch_to,
    traps as fpu_traps,
};
pub use self::ioapic::{
    init as init_irq_routing, mask as mask_irq, resolve as resolve_irq, route as route_irq,
    unmask as unmask_irq,
};
#[allow(
    unused_imports,
    reason = "facade API: the per-CPU scheduler slot and SMAP windows for code not written yet"
)]
pub use self::percpu::{CpuLocal, cpu_local};
pub use self::power::halt_forever;
pub use self::serial::{lock as console, lock_for_panic as panic_console};
pub use self::time::uptime_ns;
pub use self::trap::take_panic_frame;
pub use self::user::{
    KernelContext, SyscallExit, UserFault, UserRegs, exit_to_user, forget_address_space,
    init_context, leave_everywhere, load_address_space, loaded_cr3, make_sysret_ready,
    parked_frame, return_to_user, set_kernel_stack, shootdown, shootdown_on, switch_address_space,
    switch_context, switch_to_frame, timer_start,
};
#[allow(unused_imports, reason = "facade API: see above")]
pub use self::user::{is_canonical, user_access};

/// Pages per guarded IST stack (double fault, NMI, machine check).
const IST_STACK_PAGES: usize = 4;
/// Pages of the boot CPU's kernel stack (debug builds are stack-hungry).
const BOOT_STACK_PAGES: usize = 16;

/// IA32_PAT as the loader left it on the boot CPU (the Limine layout), copied to every AP.
static BSP_PAT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
const IA32_PAT: u32 = 0x277;

/// Gives this AP the boot CPU's page-attribute table, so memory types (the framebuffer's WC
/// through PAT5) mean the same on every CPU.
fn copy_pat_from_bsp() {
    let pat = BSP_PAT.load(core::sync::atomic::Ordering::Relaxed);
    if pat != 0 {
        // SAFETY: IA32_PAT exists on every x86_64 CPU; the value is the one the boot CPU runs
        // with, which every mapping was made for.
        unsafe { x86_64::registers::model_specific::Msr::new(IA32_PAT).write(pat) };
    }
}

/// The boot information, for `power_off` (which takes no arguments).
static BOOT_INFO: Once<&'static BootInfo> = Once::new();

/// Serial + logger, GDT/TSS, IDT.
pub fn early_init() {
    // SAFETY: first lines of boot on the boot CPU, interrupts off, before any IDT gate is used.
    unsafe { gdt::init_bsp() };
    // SAFETY: as above; after the GDT load (which nulls GS, and with it the GS base) and before
    // anything reads the CPU index: GS → CPU 0's block.
    unsafe { percpu::init(0) };
    time::mark_boot();
    // SAFETY: IA32_PAT exists on every x86_64 CPU; reading it has no side effects.
    let pat = unsafe { x86_64::registers::model_specific::Msr::new(IA32_PAT).read() };
    BSP_PAT.store(pat, core::sync::atomic::Ordering::Relaxed);
    serial::init();
    crate::klog::init();
    cpu::enable_nx();
    trap::init();
    pic::remap_and_mask();
    match time::calibrate() {
        Some(hz) => {
            log::debug!(target: "time", "TSC {}.{:03} MHz (PIT-calibrated)", hz / 1_000_000, hz / 1000 % 1000)
        }
        None => log::warn!(target: "time", "no PIT answered; log timestamps stay 0"),
    }
}

/// Logs the CPU features found by CPUID, once.
pub fn log_cpu_features() {
    let mut buf = [0; 48];
    log::info!(target: "cpu", "cpu0: {}", cpu::brand(&mut buf));
    let features = cpu::features();
    log::info!(target: "cpu", "features: {}", FeatureList(features));
    match time::tsc_hz() {
        Some(hz) => {
            log::info!(target: "cpu", "TSC {}.{:03} MHz (PIT-calibrated)", hz / 1_000_000, hz / 1000 % 1000)
        }
        None => log::warn!(target: "cpu", "TSC not calibrated (no PIT); log timestamps stay 0"),
    }
    if !features.invariant_tsc {
        log::warn!(target: "cpu", "TSC is not invariant; timestamps may drift");
    }
}

/// `x2apic+ pcid- ...`: every feature with `+` (present) or `-` (absent), on one line.
struct FeatureList<'a>(&'a cpu::Features);

impl core::fmt::Display for FeatureList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, (name, on)) in self.0.list().into_iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{name}{}", if on { '+' } else { '-' })?;
        }
        Ok(())
    }
}

/// Guarded IST/kernel stacks, SMEP/SMAP/UMIP; continues in `next` on a guarded stack.
pub fn late_init(info: &'static BootInfo, next: fn(&'static BootInfo) -> !) -> ! {
    BOOT_INFO.call_once(|| info);
    for ist in [gdt::IST_DOUBLE_FAULT, gdt::IST_NMI, gdt::IST_MACHINE_CHECK] {
        let Some(stack) = crate::mm::alloc_kernel_stack(IST_STACK_PAGES) else {
            panic!("out of memory for IST stack {ist}");
        };
        // SAFETY: boot CPU, interrupts off; the stack is freshly mapped, ours, and never freed.
        unsafe { gdt::set_ist(ist, stack.top) };
    }
    let on = cpu::enable_protections();
    log::info!(target: "cpu", "guarded IST stacks installed; CR4 protections on: {on:?}");
    user::init_cpu();
    let Some(stack) = crate::mm::alloc_kernel_stack(BOOT_STACK_PAGES) else {
        panic!("out of memory for the boot kernel stack");
    };
    BOOT_STACK_GUARD.store(stack.guard, core::sync::atomic::Ordering::Relaxed);
    // SAFETY: a fresh guarded stack that nothing else uses and that is never freed.
    unsafe { start::switch_stack(stack.top, info, next) }
}

/// The guard page under the boot thread's kernel stack (0 until `late_init`).
static BOOT_STACK_GUARD: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The guard page under the boot thread's kernel stack, for the double-fault report.
pub fn boot_stack_guard() -> u64 {
    BOOT_STACK_GUARD.load(core::sync::atomic::Ordering::Relaxed)
}

/// ACPI S5 where available, else QEMU isa-debug-exit (success), else halt forever.
pub fn power_off() -> ! {
    power::power_off(BOOT_INFO.get().copied())
}

/// Resets the machine (0xCF9, keyboard controller, triple fault).
pub fn reboot() -> ! {
    power::reboot()
}

/// Allows (`allow`) or denies ring-3 `in`/`out` on ports `first..first + count` on this CPU
/// (the TSS I/O permission bitmap; IOPL stays 0).
pub fn set_io_ports(first: u16, count: u32, allow: bool) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: boot CPU (the only one running), interrupts disabled for the duration.
        unsafe { gdt::set_io_ports(first, count, allow) }
    });
}

/// Ends a run that failed (panic, failed tests): QEMU exits with status 35; hardware halts.
pub fn exit_failure() -> ! {
    power::qemu_exit(power::EXIT_FAILURE);
    halt_forever()
}

/// Ends a successful test run: QEMU exits with status 33 (deterministic, unlike ACPI).
pub fn exit_success() -> ! {
    power::qemu_exit(power::EXIT_SUCCESS);
    power_off()
}

/// Stops every other CPU for a panic report (an NMI makes them halt).
pub fn stop_other_cpus() {
    smp::stop_others();
}

/// `panic-test=ap`: makes the last AP panic (a remote call it answers by panicking); its
/// report must be the only one. Without an AP, panics here saying so.
pub fn panic_on_ap() -> ! {
    let n = smp::online();
    if n < 2 {
        panic!("panic-test=ap: no AP is online");
    }
    smp::call_many(1 << (n - 1), smp::Call::Panic);
    halt_forever()
}

/// Starts the application processors (see `smp.rs`); logs the `smp:` line.
pub fn start_aps(info: &BootInfo) {
    smp::start_aps(info);
}

/// One pass of the idle thread: gives up the big kernel lock, waits for an interrupt
/// (`sti; hlt`, interrupts handled in the window take the lock themselves), takes the lock
/// again with interrupts off.
pub fn idle_wait() {
    cpu_local().set_idle_window(true);
    bkl::release();
    x86_64::instructions::interrupts::enable_and_hlt();
    x86_64::instructions::interrupts::disable();
    cpu_local().set_idle_window(false);
    bkl::acquire(bkl::Site::Idle);
}

/// Takes the big kernel lock for boot code (the boot CPU before the scheduler, an AP
/// joining it).
pub fn bkl_acquire_boot() {
    bkl::acquire(bkl::Site::Boot);
}

/// Asks CPU `cpu` to run its scheduler (reschedule IPI; nothing for this CPU).
pub fn kick_cpu(cpu: usize) {
    smp::kick(cpu);
}

/// Stops this CPU's scheduler tick (an idle AP with nothing to wake: the reschedule IPI
/// wakes it); [`timer_start`] restarts it.
pub fn timer_stop() {
    apic::stop_timer();
}

/// CPUs running.
pub fn cpus_online() -> u32 {
    smp::online()
}

/// CPU `cpu`'s local APIC id.
pub fn apic_id(cpu: usize) -> u32 {
    percpu::cpu_block(cpu).map_or(0, |b| b.apic_id())
}

/// CPU `cpu`'s TSC offset from CPU 0 in cycles (measured at boot).
pub fn tsc_offset(cpu: usize) -> i64 {
    smp::tsc_offset(cpu)
}

/// Lets the APs join the scheduler: each runs `main` with interrupts off, without the lock.
pub fn release_aps(main: fn() -> !) {
    smp::release_aps(main);
}

/// The CPUs per-CPU structures exist for.
pub const MAX_CPUS: usize = percpu::MAX_CPUS;

/// Deliberately crashes for `panic-test=fault|overflow` (test mode), so the exception report
/// and the double-fault path can be checked end to end. Never returns.
pub fn provoke_fault(kind: &str) -> ! {
    match kind {
        // A kernel read of an unmapped higher-half page: #PF -> exception report -> panic.
        "fault" => {
            // SAFETY: deliberately faults; the #PF handler panics and never returns here. The
            // load happens in asm, so no Rust-level reference to the address exists.
            unsafe {
                core::arch::asm!("mov rax, [{}]", in(reg) 0xffff_f800_dead_0000u64, out("rax") _)
            };
            unreachable!("the read of an unmapped page returned")
        }
        // Unbounded recursion into the guard page: the #PF cannot be pushed on the dead
        // stack, so the CPU raises #DF, which runs on its own IST stack.
        _ => {
            #[allow(unconditional_recursion, reason = "the point: run into the guard page")]
            fn recurse(depth: u64) -> u64 {
                // Opaque register operations (not `black_box`, which stores to the stack, nor
                // library helpers, which inline): the only stack writes are this function's own
                // call and prologue, so the report's frame #0 is `recurse` itself.
                let mut d = depth;
                // SAFETY: increments a register; no memory, no flags the compiler relies on.
                unsafe { asm!("inc {0}", inout(reg) d, options(nomem, nostack)) };
                let mut r = recurse(d);
                // SAFETY: as above, for the result (so the recursion cannot become a loop).
                unsafe {
                    asm!("/* {0} */", inout(reg) r, options(nomem, nostack, preserves_flags))
                };
                r
            }
            recurse(0);
            unreachable!("infinite recursion returned")
        }
    }
}

/// In-kernel tests of the arch layer.
pub const TESTS: &[KTest] = tests::TESTS;
