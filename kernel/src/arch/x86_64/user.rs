//! User mode: the user register frame, `syscall`/`sysret`, entering user mode, kernel-thread
//! context switches, per-CPU data through GS, the address-space switch.
//!
//! OWNER: karch2 (kernel-core wave). The items below are the contract with `sched`/`syscall`
//! (kcore2) — keep names and signatures, add what you need.

/// A user thread's registers as saved on kernel entry (syscall or interrupt from ring 3).
/// The syscall path saves all of them too, so `syscall::handle` can read and write any.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct UserRegs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
}

/// A kernel thread's saved callee-saved state (opaque: just its kernel stack pointer).
#[derive(Default, Debug)]
pub struct KernelContext {
    rsp: u64,
}

/// What a ring-3 exception tells the scheduler.
#[derive(Clone, Copy, Debug)]
pub struct UserFault {
    /// Exception vector.
    pub vector: u8,
    /// Error code (0 when the vector has none).
    pub error_code: u64,
    /// CR2 for page faults, else 0.
    pub cr2: u64,
    /// The user registers at the fault.
    pub regs: UserRegs,
}

/// Per-CPU setup for user mode on the calling CPU: syscall MSRs (STAR/LSTAR/FMASK, EFER.SCE),
/// GS base → per-CPU block, FPU/SSE policy. Called once from `late_init`.
pub fn init_cpu() {
    todo!("karch2")
}

/// A fresh context that starts running `entry(arg)` on the stack whose top is `stack_top`.
pub fn init_context(_stack_top: u64, _entry: extern "C" fn(u64) -> !, _arg: u64) -> KernelContext {
    let _ = KernelContext { rsp: 0 }.rsp;
    todo!("karch2")
}

/// Saves the current kernel context into `from` and resumes `to`. Returns when someone
/// switches back to `from`.
///
/// # Safety
/// Interrupts off; `from`/`to` valid for the duration; `to` was produced by `init_context` or
/// a previous `switch_context`; its stack is mapped.
pub unsafe fn switch_context(_from: *mut KernelContext, _to: *const KernelContext) {
    todo!("karch2")
}

/// Enters ring 3 with `regs` (iretq path; sysret only when safe). Never returns.
///
/// # Safety
/// The current address space must map the user code/stack `regs` points at (or the thread
/// faults, which is fine); `set_kernel_stack` must hold this thread's kernel stack top.
pub unsafe fn return_to_user(_regs: *const UserRegs) -> ! {
    todo!("karch2")
}

/// Where ring-3 entries (syscall, interrupts) land on this CPU: TSS.rsp0 and the per-CPU
/// syscall stack pointer. Called on every thread switch.
pub fn set_kernel_stack(_top: u64) {
    todo!("karch2")
}

/// Loads an address space's root table (no-op if already current; PCID when the CPU has it).
///
/// # Safety
/// `cr3` must be a PML4 that maps the kernel's upper half.
pub unsafe fn load_address_space(_cr3: u64) {
    todo!("karch2")
}

/// Runs `f` with user-memory access allowed (stac/clac under SMAP; plain call otherwise).
pub fn user_access<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Starts the periodic scheduler tick on this CPU (local APIC timer: x2APIC when the CPU has
/// it, xAPIC otherwise; calibrated against the TSC/PIT). Each tick calls
/// `crate::sched::on_timer_tick()`.
pub fn timer_start(_period_ns: u64) {
    todo!("karch2")
}
