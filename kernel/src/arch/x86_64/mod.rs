//! x86_64 implementation of the arch facade.

use crate::boot::BootInfo;
use crate::ktest::KTest;

pub mod paging;

/// Serial + logger, GDT/TSS, IDT.
pub fn early_init() {
    todo!("kernel-arch helper")
}

/// Logs the CPU features found by CPUID, once.
pub fn log_cpu_features() {
    todo!("kernel-arch helper")
}

/// Guarded IST/kernel stacks, SMEP/SMAP/UMIP; continues in `next` on a guarded stack.
pub fn late_init(_info: &'static BootInfo, _next: fn(&'static BootInfo) -> !) -> ! {
    todo!("kernel-arch helper")
}

/// ACPI S5 where available, else QEMU isa-debug-exit (success), else halt forever.
pub fn power_off() -> ! {
    todo!("kernel-arch helper")
}

/// Halts the CPU forever with interrupts enabled.
pub fn idle() -> ! {
    todo!("kernel-arch helper")
}

/// In-kernel tests of the arch layer.
pub const TESTS: &[KTest] = &[];

/// Skeleton entry point (kernel-arch helper replaces it with the real `_start`).
#[unsafe(no_mangle)]
extern "C" fn _start() -> ! {
    crate::kmain()
}
