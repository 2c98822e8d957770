//! The HSYNC-OS microkernel.
//!
//! A small kernel: boot glue (Limine protocol), CPU tables and exceptions, physical and virtual
//! memory, a heap, the scheduler on every CPU, capabilities and IPC. Everything else
//! (drivers, the phase engine) lives in user-space servers. This crate refuses to grow drivers.
//!
//! Boot order lives in [`kmain`]; each step is owned by one module.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot;
mod hw;
mod initfs;
mod ipc;
mod klog;
mod ktest;
mod mm;
mod object;
mod panic;
mod root;
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

    let test = info.cmdline_has("test");
    let panic_test = info.cmdline_value("panic-test").filter(|_| test);
    if let Some(kind) = panic_test.filter(|&k| k != "ap") {
        ktest::panic_test(kind);
    }
    // From here on this CPU holds the big kernel lock whenever it runs kernel code (docs/smp.md).
    arch::bkl_acquire_boot();
    hw::init(info);
    arch::start_aps(info);
    if panic_test == Some("ap") {
        arch::panic_on_ap();
    }
    sched::init();
    if test && !info.cmdline_has("no-ktest") && !ktest::run_all() {
        arch::exit_failure();
    }
    match root::start(info) {
        Ok(p) => {
            let status = root::wait(&p);
            drop(p);
            log::info!("root ended: {status:?}");
            if test {
                if status == hsync_abi::ExitStatus::Exited(0) {
                    arch::exit_success();
                }
                arch::exit_failure();
            }
        }
        Err(root::RootError::Missing) if test => arch::exit_success(),
        Err(root::RootError::Missing) => log::info!("initfs has no root; nothing to run"),
        Err(e) => {
            log::error!("cannot start root: {e:?}");
            if test {
                arch::exit_failure();
            }
        }
    }
    if info.cmdline_has("poweroff") {
        log::info!("poweroff requested on the command line");
        arch::power_off();
    }
    log::info!("boot complete; idling");
    sched::idle_loop()
}
