//! Per-CPU data, reached through the GS base.
//!
//! Each CPU owns one [`CpuLocal`] block. While the CPU runs kernel code, IA32_GS_BASE points at
//! it (and the block's first word points at itself, so `mov rax, gs:[0]` yields a normal
//! pointer); while it runs user code, the pointer sits in IA32_KERNEL_GS_BASE and GS belongs to
//! the user (base 0: user programs get no GS base of their own yet). Every entry from ring 3 —
//! `syscall`, and each interrupt/exception stub when the interrupted CS has RPL 3 — starts with
//! `swapgs`, and every return to ring 3 ends with one. Kernel→kernel traps never swap.
//!
//! The one hole in that discipline is an NMI/#MC that lands between `syscall` and its `swapgs`
//! (CS already says ring 0, GS still the user's): those handlers run on IST stacks and only
//! panic, never touching GS, so it does not matter yet.
//!
//! The fields the assembly stubs use sit at fixed offsets (checked at compile time). All fields
//! are atomics, so the blocks are plain `Sync` statics without `unsafe impl`; every access is
//! made by the owning CPU with interrupts off, so `Relaxed` suffices and compiles to plain moves.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::model_specific::{GsBase, KernelGsBase};

use super::user::{UserFault, UserRegs};

/// CPUs the kernel has per-CPU blocks for.
pub const MAX_CPUS: usize = 64;

/// Number of address spaces each CPU keeps a PCID for (PCIDs 1..=N; 0 is the kernel's own).
pub const PCID_SLOTS: usize = 8;

/// A test-only hook that replaces `crate::syscall::handle` (see `user::set_test_hooks`).
pub type SyscallHook = fn(&mut UserRegs);
/// A test-only hook that replaces `crate::sched::on_user_fault`.
pub type FaultHook = fn(&UserFault) -> !;

/// One CPU's block. `#[repr(C)]`: the entry stubs address the first fields by offset.
#[repr(C)]
pub struct CpuLocal {
    /// `gs:[0]`: this block's own address.
    self_ptr: AtomicU64,
    /// `gs:[8]`: the kernel stack top `syscall` switches to (= TSS.rsp0).
    kernel_rsp: AtomicU64,
    /// `gs:[16]`: the user rsp, parked by the syscall stub while it switches stacks.
    user_rsp: AtomicU64,
    /// `gs:[24]`: this CPU's index (0 = boot CPU).
    cpu_id: AtomicU64,
    /// `gs:[32]`: a slot the scheduler owns ("current thread"); the arch layer never reads it.
    current: AtomicUsize,
    /// Test-only syscall hook (0 = none). Kept here because the syscall path touches this cache
    /// line anyway, so checking it costs no extra memory access.
    syscall_hook: AtomicUsize,
    /// Test-only ring-3 fault hook (0 = none).
    fault_hook: AtomicUsize,
    /// PCID cache: `pcid_cr3[i]` is the PML4 that owns PCID `i + 1` on this CPU (0 = free).
    pcid_cr3: [AtomicU64; PCID_SLOTS],
    /// Next PCID slot to recycle (round robin).
    pcid_next: AtomicUsize,
    /// This CPU's local APIC id (set when its LAPIC is enabled).
    apic_id: AtomicU32,
    /// The PML4 loaded in CR3 (published for TLB shootdowns; read by other CPUs).
    loaded_cr3: AtomicU64,
    /// The idle thread sits in its `sti; hlt` window without the big kernel lock: an interrupt
    /// taken there must take the lock (and give it back before returning into the window).
    idle_window: AtomicBool,
}

/// Offsets used by the assembly stubs.
pub mod offset {
    /// `gs:[KERNEL_RSP]`: the kernel stack top for `syscall`.
    pub const KERNEL_RSP: usize = 8;
    /// `gs:[USER_RSP]`: scratch for the user rsp.
    pub const USER_RSP: usize = 16;
}

const _: () = {
    assert!(core::mem::offset_of!(CpuLocal, self_ptr) == 0);
    assert!(core::mem::offset_of!(CpuLocal, kernel_rsp) == offset::KERNEL_RSP);
    assert!(core::mem::offset_of!(CpuLocal, user_rsp) == offset::USER_RSP);
    assert!(core::mem::offset_of!(CpuLocal, cpu_id) == 24);
    assert!(core::mem::offset_of!(CpuLocal, current) == 32);
};

impl CpuLocal {
    const fn new() -> Self {
        Self {
            self_ptr: AtomicU64::new(0),
            kernel_rsp: AtomicU64::new(0),
            user_rsp: AtomicU64::new(0),
            cpu_id: AtomicU64::new(0),
            current: AtomicUsize::new(0),
            syscall_hook: AtomicUsize::new(0),
            fault_hook: AtomicUsize::new(0),
            pcid_cr3: [const { AtomicU64::new(0) }; PCID_SLOTS],
            pcid_next: AtomicUsize::new(0),
            apic_id: AtomicU32::new(0),
            loaded_cr3: AtomicU64::new(0),
            idle_window: AtomicBool::new(false),
        }
    }

    /// The PML4 this CPU has loaded.
    pub fn loaded_cr3(&self) -> u64 {
        self.loaded_cr3.load(Ordering::Acquire)
    }

    pub(super) fn set_loaded_cr3(&self, cr3: u64) {
        self.loaded_cr3.store(cr3, Ordering::Release);
    }

    /// Marks (`true`) or unmarks the idle thread's `hlt` window.
    pub(super) fn set_idle_window(&self, on: bool) {
        self.idle_window.store(on, Ordering::Relaxed);
    }

    /// Whether the CPU was in the idle window; leaves it.
    pub(super) fn take_idle_window(&self) -> bool {
        self.idle_window.swap(false, Ordering::Relaxed)
    }

    /// This CPU's local APIC id.
    pub fn apic_id(&self) -> u32 {
        self.apic_id.load(Ordering::Relaxed)
    }

    pub(super) fn set_apic_id(&self, id: u32) {
        self.apic_id.store(id, Ordering::Relaxed);
    }

    /// This CPU's index (0 = boot CPU).
    pub fn cpu_id(&self) -> u32 {
        self.cpu_id.load(Ordering::Relaxed) as u32
    }

    /// The scheduler's "current thread" slot (0 until the scheduler stores something).
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// Sets the scheduler's "current thread" slot.
    pub fn set_current(&self, value: usize) {
        self.current.store(value, Ordering::Relaxed);
    }

    /// The kernel stack top used for entries from ring 3.
    pub(super) fn kernel_rsp(&self) -> u64 {
        self.kernel_rsp.load(Ordering::Relaxed)
    }

    pub(super) fn set_kernel_rsp(&self, top: u64) {
        self.kernel_rsp.store(top, Ordering::Relaxed);
    }

    pub(super) fn syscall_hook(&self) -> Option<SyscallHook> {
        match self.syscall_hook.load(Ordering::Relaxed) {
            0 => None,
            // SAFETY: non-zero values are only ever stored from a `SyscallHook` by `set_hooks`.
            f => Some(unsafe { core::mem::transmute::<usize, SyscallHook>(f) }),
        }
    }

    pub(super) fn fault_hook(&self) -> Option<FaultHook> {
        match self.fault_hook.load(Ordering::Relaxed) {
            0 => None,
            // SAFETY: non-zero values are only ever stored from a `FaultHook` by `set_hooks`.
            f => Some(unsafe { core::mem::transmute::<usize, FaultHook>(f) }),
        }
    }

    pub(super) fn set_hooks(&self, syscall: Option<SyscallHook>, fault: Option<FaultHook>) {
        self.syscall_hook
            .store(syscall.map_or(0, |f| f as usize), Ordering::Relaxed);
        self.fault_hook
            .store(fault.map_or(0, |f| f as usize), Ordering::Relaxed);
    }

    /// The PCID for `cr3` on this CPU and whether its TLB entries may be kept (`true`) or must
    /// be flushed because the PCID was just (re)assigned (`false`).
    pub(super) fn pcid_for(&self, cr3: u64) -> (u64, bool) {
        for (i, slot) in self.pcid_cr3.iter().enumerate() {
            if slot.load(Ordering::Relaxed) == cr3 {
                return (i as u64 + 1, true);
            }
        }
        let i = self.pcid_next.load(Ordering::Relaxed) % PCID_SLOTS;
        self.pcid_next.store(i + 1, Ordering::Relaxed);
        if let Some(slot) = self.pcid_cr3.get(i) {
            slot.store(cr3, Ordering::Relaxed);
        }
        (i as u64 + 1, false)
    }

    /// Forgets `cr3`'s PCID, so that its next load flushes. True if it had one.
    pub(super) fn pcid_forget(&self, cr3: u64) -> bool {
        let mut found = false;
        for slot in &self.pcid_cr3 {
            if slot.load(Ordering::Relaxed) == cr3 {
                slot.store(0, Ordering::Relaxed);
                found = true;
            }
        }
        found
    }
}

static CPUS: [CpuLocal; MAX_CPUS] = [const { CpuLocal::new() }; MAX_CPUS];

/// Points this CPU's GS base at block `cpu` and clears KERNEL_GS_BASE (the user's GS base).
///
/// # Safety
/// Once per CPU, with interrupts off, before anything uses [`cpu_local`]; `cpu` is this CPU's
/// unique index.
pub unsafe fn init(cpu: usize) {
    let Some(block) = CPUS.get(cpu) else {
        panic!("cpu index {cpu} exceeds MAX_CPUS ({MAX_CPUS})");
    };
    let addr = block as *const CpuLocal as u64;
    block.self_ptr.store(addr, Ordering::Relaxed);
    block.cpu_id.store(cpu as u64, Ordering::Relaxed);
    GsBase::write(VirtAddr::new(addr));
    KernelGsBase::write(VirtAddr::new(0));
}

/// Block `cpu` (any CPU's), for code that reads another CPU's published fields.
pub fn cpu_block(cpu: usize) -> Option<&'static CpuLocal> {
    CPUS.get(cpu)
}

/// This CPU's index, from `gs:[24]` (0 = boot CPU; valid from the first lines of boot on, see
/// `arch::early_init`).
#[inline]
pub fn cpu_index() -> u32 {
    let id: u64;
    // SAFETY: reads gs:[24], the `cpu_id` field of this CPU's block (`init` ran first).
    unsafe {
        core::arch::asm!("mov {}, gs:[24]", out(reg) id, options(nostack, readonly, preserves_flags))
    };
    id as u32
}

/// This CPU's block (kernel mode only: GS must be the kernel's, which holds everywhere except
/// the few instructions around `swapgs` in the entry stubs).
#[inline]
pub fn cpu_local() -> &'static CpuLocal {
    let ptr: *const CpuLocal;
    // SAFETY: reads gs:[0], which `init` set to the block's own address; the block is a static.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags))
    };
    // SAFETY: the pointer is to an element of `CPUS`, a `'static` array of `Sync` blocks.
    unsafe { &*ptr }
}
