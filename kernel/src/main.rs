//! The HSYNC-OS microkernel.
//!
//! A small kernel: boot glue (Limine protocol), CPU tables and exceptions, physical and virtual
//! memory, a heap, and — in later milestones — scheduler, capabilities and IPC. Everything else
//! (drivers, the phase engine) lives in user-space servers. This crate refuses to grow drivers.
//!
//! Boot order lives in [`kmain`]; each step is owned by one module.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot;
mod initfs;
mod klog;
mod ktest;
mod mm;
mod panic;
mod sched;
mod syscall;

/// Kernel entry after the arch `_start` stub: interrupts off, on the loader's stack.
pub fn kmain() -> ! {
    // 1. Serial + logger, GDT/TSS, IDT: from here on faults are reported.
    arch::early_init();
    // 2. Copy everything we need out of the loader's responses.
    let info = boot::collect();
    klog::configure(info);
    klog::banner(info);
    arch::log_cpu_features();
    // 3. PMM, our own page tables, heap.
    mm::init(info);
    // 4. Guarded stacks for IST and the boot CPU, SMEP/SMAP/UMIP; then continue on the new stack.
    arch::late_init(info, kmain_on_kernel_stack)
}

/// Second half of boot, on a guarded kernel stack: the loader's memory may now be reclaimed.
fn kmain_on_kernel_stack(info: &'static boot::BootInfo) -> ! {
    mm::reclaim_bootloader_memory(info);
    mm::log_summary();
    initfs::log_contents(info);

    if info.cmdline_has("test") {
        if let Some(kind) = info.cmdline_value("panic-test") {
            ktest::panic_test(kind);
        }
        ktest::run_all_and_exit();
    }
    if info.cmdline_has("poweroff") {
        log::info!("poweroff requested on the command line");
        arch::power_off();
    }
    log::info!("boot complete; idling");
    arch::idle()
}
