//! User mode: the user register frame, `syscall`/`sysret`, entering user mode, kernel-thread
//! context switches, per-CPU data through GS, the address-space switch.
//!
//! # Entries from ring 3
//! * `syscall` → `hsync_syscall_entry` (assembly below): `swapgs`, park the user rsp in the
//!   per-CPU block, switch to the per-CPU kernel stack top ([`set_kernel_stack`]), push a
//!   complete [`UserRegs`] (rip = rcx, rflags = r11) and call `crate::syscall::handle`. The
//!   handler may block and switch threads; the frame stays on this thread's kernel stack until
//!   it resumes.
//!   Return is `sysretq` when the (possibly modified) frame is exactly what sysret produces —
//!   canonical rip, `rcx == rip`, `r11 == rflags` — and `iretq` with the full frame otherwise.
//!   A non-canonical rip (which would make `sysretq`/`iretq` raise #GP in ring 0 on the user
//!   stack — the classic sysret hazard) is never returned to: it becomes a #GP fault of the
//!   thread instead.
//! * Interrupts and exceptions: the common trap stub swaps GS when the interrupted CS has RPL 3.
//!   Ring-3 exceptions become a [`UserFault`] for `crate::sched::on_user_fault`.
//!
//! RFLAGS in ring 3 is always `IF=1, IOPL=0`, bit 1 set, VM/VIF/VIP/RF/NT clear: every return path
//! passes the frame through [`sanitize_rflags`]. In the kernel interrupts stay off (the kernel is
//! not preemptible; `syscall` clears IF through IA32_FMASK, interrupt gates clear it too).
//! The syscall stub takes the big kernel lock (`bkl.rs`) after saving the frame and releases
//! it on both exits after `rsp` points at the frame it leaves through.
//!
//! # FPU/SSE policy
//! The kernel is soft-float, and so are user programs by default (built for
//! `x86_64-unknown-none`). User threads that execute x87/MMX/SSE get it lazily (see `fpu.rs`):
//! `init_cpu` sets CR4.OSFXSR/OSXMMEXCPT and CR0.MP, clears CR0.EM (when CPUID has FXSR and
//! SSE; otherwise x87 raises #NM and SSE #UD, faulting the process), and CR0.TS is set whenever
//! the running thread is not the FPU owner. Thread switches and the IPC path never save or
//! restore FPU state; they only flip TS (`fpu::switch_to`). AVX (XSAVE) stays off.
//!
//! # Address spaces and PCID
//! [`load_address_space`] writes CR3 only when it changes. With PCID (CPUID.1:ECX.17) each CPU
//! tags up to [`percpu::PCID_SLOTS`] recently used PML4s with PCIDs 1..=8 (round-robin reuse;
//! a (re)assigned PCID is loaded with a flush, a known one without). Kernel mappings are global,
//! so they are shared by every PCID. Whoever removes user mappings from a space that is not
//! current on this CPU, or frees a PML4, must call [`forget_address_space`] — otherwise stale
//! translations tagged with the old PCID could survive. Without PCID every switch flushes.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::registers::control::{Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, Msr, SFMask};
use x86_64::registers::rflags::RFlags;

use super::percpu::{self, FaultHook, SyscallHook, cpu_local, offset};
use super::{apic, bkl, cpu, gdt};

/// A user thread's registers as saved on kernel entry (syscall or interrupt from ring 3).
/// The syscall path saves all of them too, so `syscall::handle` can read and write any.
///
/// On a syscall, `rcx == rip` and `r11 == rflags` (the instruction put them there). Leave them
/// so if the thread should return with `sysretq`; any other value is honoured via `iretq`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
#[allow(missing_docs, reason = "register names are their own documentation")]
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

impl UserRegs {
    /// All registers zero (a `const` `Default`).
    pub const ZERO: UserRegs = UserRegs {
        rax: 0,
        rbx: 0,
        rcx: 0,
        rdx: 0,
        rsi: 0,
        rdi: 0,
        rbp: 0,
        r8: 0,
        r9: 0,
        r10: 0,
        r11: 0,
        r12: 0,
        r13: 0,
        r14: 0,
        r15: 0,
        rip: 0,
        rsp: 0,
        rflags: 0,
    };
}

// The assembly below addresses `UserRegs` by these offsets.
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(UserRegs, rax) == 0);
    assert!(offset_of!(UserRegs, rdi) == 40);
    assert!(offset_of!(UserRegs, r15) == 112);
    assert!(offset_of!(UserRegs, rip) == 120);
    assert!(offset_of!(UserRegs, rsp) == 128);
    assert!(offset_of!(UserRegs, rflags) == 136);
    assert!(size_of::<UserRegs>() == 144);
};

/// A kernel thread's saved callee-saved state (opaque: just its kernel stack pointer; the
/// callee-saved registers and the resume address are on that stack).
#[repr(C)]
#[derive(Default, Debug)]
pub struct KernelContext {
    rsp: u64,
}

impl KernelContext {
    /// The saved stack pointer: the whole context. A thread may keep it in an `AtomicU64`
    /// and pass `AtomicU64::as_ptr` (cast) to [`switch_context`]: the layouts match.
    pub fn into_rsp(self) -> u64 {
        self.rsp
    }
}

const _: () = assert!(size_of::<KernelContext>() == size_of::<u64>());

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

/// RFLAGS bits a user program may set: CF, PF, AF, ZF, SF, TF, DF, OF, AC, ID.
const USER_RFLAGS: u64 =
    0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000;
/// Always set in ring 3: IF and the reserved bit 1.
const FORCED_RFLAGS: u64 = 0x200 | 0x2;

/// The RFLAGS a thread really runs with: user-controllable bits from `rflags`, IF=1, IOPL=0,
/// reserved bit 1 set, everything else clear.
pub fn sanitize_rflags(rflags: u64) -> u64 {
    rflags & USER_RFLAGS | FORCED_RFLAGS
}

/// True when `addr` is canonical for 4-level paging (bits 63..47 all equal).
pub fn is_canonical(addr: u64) -> bool {
    ((addr << 16) as i64 >> 16) as u64 == addr
}

/// The IA32_STAR MSR.
const IA32_STAR: u32 = 0xc000_0081;

/// SMAP is on (CR4.SMAP): user accesses need `stac`/`clac`.
static SMAP_ON: AtomicBool = AtomicBool::new(false);
/// PCID is on (CR4.PCIDE).
static PCID_ON: AtomicBool = AtomicBool::new(false);

/// True when CR4.PCIDE was turned on by [`init_cpu`].
pub fn pcid_enabled() -> bool {
    PCID_ON.load(Ordering::Relaxed)
}

/// Per-CPU setup for user mode on the calling CPU: syscall MSRs (STAR/LSTAR/FMASK, EFER.SCE),
/// FPU/SSE policy, PCID, the local APIC (timer still off). Called once per CPU (`late_init`,
/// `smp::ap_entry`), after the CR4 protections are on and GS points at the CPU's block.
pub fn init_cpu() {
    let cpu_index = cpu::cpu_id() as usize;

    // sysret with the 64-bit operand size loads CS = STAR[63:48] + 16 and SS = STAR[63:48] + 8
    // (both with RPL 3); syscall loads CS = STAR[47:32] and SS = STAR[47:32] + 8. With
    // STAR[63:48] = 0x1b: CS = 0x2b (user code), SS = 0x23 (user data); STAR[47:32] = 0x08:
    // CS = 0x08, SS = 0x10. `arch::gdt_tss_loaded` checks this against the GDT.
    const _: () = {
        assert!((gdt::STAR_SELECTORS >> 16) + 16 == gdt::USER_CS as u64);
        assert!((gdt::STAR_SELECTORS >> 16) + 8 == gdt::USER_SS as u64);
        assert!((gdt::STAR_SELECTORS & 0xffff) + 8 == gdt::KERNEL_SS as u64);
    };
    let fmask = RFlags::INTERRUPT_FLAG
        | RFlags::DIRECTION_FLAG
        | RFlags::TRAP_FLAG
        | RFlags::ALIGNMENT_CHECK
        | RFlags::NESTED_TASK;
    // SAFETY: the selectors were just checked against the GDT layout, LSTAR points at the
    // entry stub below (which follows the swapgs discipline and never runs on the user stack
    // with interrupts on), and FMASK keeps interrupts off until it switched stacks. Writing
    // STAR as one raw MSR value avoids the x86_64 crate's selector-order checks, which assume a
    // different GDT order.
    unsafe {
        Msr::new(IA32_STAR).write(gdt::STAR_SELECTORS << 32);
        LStar::write(x86_64::VirtAddr::new(
            hsync_syscall_entry as *const () as u64,
        ));
        SFMask::write(fmask);
        Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
    }

    // FPU/SSE policy (see the module header and `fpu.rs`): lazy, when the CPU has FXSR/SSE.
    let fpu_on = super::fpu::init_cpu();

    SMAP_ON.store(
        Cr4::read().contains(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION),
        Ordering::Relaxed,
    );
    let cr3 = read_cr3();
    if cpu::features().pcid && cr3 & 0xfff == 0 {
        // SAFETY: CPUID reports PCID, we are in long mode and CR3[11:0] is 0 (the SDM's
        // conditions for setting PCIDE); the current PML4 becomes PCID 0.
        unsafe { Cr4::update(|c| c.insert(Cr4Flags::PCID)) };
        PCID_ON.store(true, Ordering::Relaxed);
    }
    let mode = apic::init();
    log::info!(
        target: "cpu",
        "cpu{cpu_index}: syscall/sysret on, GS per-CPU block, user FPU/SSE {}, PCID {}, APIC {}",
        if fpu_on { "lazy" } else { "off" },
        if pcid_enabled() { "on" } else { "off" },
        mode.map_or("unavailable", apic::mode_name),
    );
}

// The syscall entry. On entry: rcx = user rip, r11 = user rflags, rsp = user rsp, IF/DF/TF/AC/NT
// cleared by FMASK, GS = the user's.
global_asm!(
    r#"
    .section .text.hsync_syscall, "ax", @progbits
    .globl hsync_syscall_entry
    .type hsync_syscall_entry, @function
    .p2align 4
hsync_syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kernel_rsp}]
    // Build UserRegs from its last field down.
    push r11
    push qword ptr gs:[{user_rsp}]
    push rcx
    push r15
    push r14
    push r13
    push r12
    push r11
    push r10
    push r9
    push r8
    push rbp
    push rdi
    push rsi
    push rdx
    push rcx
    push rbx
    push rax
    // The stack top is 16-aligned and UserRegs is 144 bytes: aligned for the call.
    xor ebp, ebp
    // The big kernel lock (answers remote calls while it waits); it clobbers rax.
    mov edi, {site_syscall}
    call {bkl_acquire}
    mov rax, [rsp]
    mov rdi, rsp
    // The IPC fast paths first: rax = the frame to leave through, or 0 (nothing changed).
    cmp rax, {fast_a}
    je 3f
    cmp rax, {fast_b}
    je 3f
4:
    call {dispatch}
    // rax = the UserRegs frame to leave through (this thread's, or an IPC peer's parked at the
    // top of its own kernel stack), bit 0 set when it needs iretq.
    .globl hsync_exit_to_user
hsync_exit_to_user:
    btr rax, 0
    jc 5f
    // rax = a frame to leave with sysretq (the fast path's results jump straight here).
6:
    mov rsp, rax
    // Release the big kernel lock: after the last stack switch (rsp is the frame we leave
    // through), so no other CPU can resume a thread whose stack this CPU still uses.
    mov dword ptr [rip + {bkl_holder}], -1
    lock add dword ptr [rip + {bkl_lock} + 4], 1
    pop rax
    pop rbx
    pop rcx
    pop rdx
    pop rsi
    pop rdi
    pop rbp
    pop r8
    pop r9
    pop r10
    pop r11
    pop r12
    pop r13
    pop r14
    pop r15
    pop rcx
    mov r11, [rsp + 8]
    mov rsp, [rsp]
    swapgs
    sysretq
5:
    mov rdi, rax
    mov rsp, rax
    jmp hsync_iret_to_user
3:
    call {fast}
    test rax, rax
    jnz 6b
    mov rdi, rsp
    jmp 4b
    .size hsync_syscall_entry, . - hsync_syscall_entry

// rdi -> a sanitized UserRegs (canonical rip, sanitized rflags). Loads it and irets to ring 3.
    .globl hsync_iret_to_user
    .type hsync_iret_to_user, @function
hsync_iret_to_user:
    // Release the big kernel lock (as at label 6 above).
    mov dword ptr [rip + {bkl_holder}], -1
    lock add dword ptr [rip + {bkl_lock} + 4], 1
    push {user_ss}
    push qword ptr [rdi + 128]
    push qword ptr [rdi + 136]
    push {user_cs}
    push qword ptr [rdi + 120]
    mov rax, [rdi]
    mov rbx, [rdi + 8]
    mov rcx, [rdi + 16]
    mov rdx, [rdi + 24]
    mov rsi, [rdi + 32]
    mov rbp, [rdi + 48]
    mov r8, [rdi + 56]
    mov r9, [rdi + 64]
    mov r10, [rdi + 72]
    mov r11, [rdi + 80]
    mov r12, [rdi + 88]
    mov r13, [rdi + 96]
    mov r14, [rdi + 104]
    mov r15, [rdi + 112]
    mov rdi, [rdi + 40]
    swapgs
    iretq
    .size hsync_iret_to_user, . - hsync_iret_to_user

// A saved kernel context, from the stack pointer up: r15, r14, r13, r12, rbx, rbp, the return
// address. `save_callee_saved` pushes it (below a return address already pushed by a call).
.macro save_callee_saved
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
.endm
// ... and `restore_callee_saved` pops it and returns into it.
.macro restore_callee_saved
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
.endm

// rdi = from: *mut KernelContext, rsi = to: *const KernelContext. Saves the callee-saved
// registers on the current stack, parks rsp in `from`, adopts `to`'s stack and pops its set.
    .globl hsync_switch_context
    .type hsync_switch_context, @function
hsync_switch_context:
    save_callee_saved
    mov [rdi], rsp
    mov rsp, [rsi]
    restore_callee_saved
    .size hsync_switch_context, . - hsync_switch_context

// rdi = from: *mut KernelContext, rsi = a parked thread's UserRegs frame (the top of its kernel
// stack), rdx = entry, rcx = arg. Saves like hsync_switch_context, then runs entry(frame, arg)
// on the stack right below the frame. entry never returns.
    .globl hsync_switch_to_frame
    .type hsync_switch_to_frame, @function
hsync_switch_to_frame:
    save_callee_saved
    mov [rdi], rsp
    mov rsp, rsi
    xor ebp, ebp
    mov rdi, rsi
    mov rsi, rcx
    call rdx
    ud2
    .size hsync_switch_to_frame, . - hsync_switch_to_frame

// rdi = a saved kernel stack pointer: resumes that context one way (the current stack is
// abandoned; nothing on it is live).
    .globl hsync_load_context
    .type hsync_load_context, @function
hsync_load_context:
    mov rsp, rdi
    restore_callee_saved
    .size hsync_load_context, . - hsync_load_context

// First code of a fresh context: r12 = arg, r13 = entry; rbp = 0 ends backtraces. The slot
// above holds a 0 "return address", so entry starts with rsp = 8 (mod 16) like any callee.
    .globl hsync_context_start
    .type hsync_context_start, @function
hsync_context_start:
    mov rdi, r12
    jmp r13
    .size hsync_context_start, . - hsync_context_start
    "#,
    user_rsp = const offset::USER_RSP,
    kernel_rsp = const offset::KERNEL_RSP,
    user_ss = const gdt::USER_SS,
    user_cs = const gdt::USER_CS,
    dispatch = sym syscall_dispatch,
    fast = sym syscall_fast,
    site_syscall = const bkl::Site::Syscall as u64,
    bkl_acquire = sym bkl::acquire,
    bkl_holder = sym bkl::HOLDER,
    bkl_lock = sym bkl::LOCK,
    fast_a = const crate::syscall::FAST_SYSCALLS[0],
    fast_b = const crate::syscall::FAST_SYSCALLS[1],
);

unsafe extern "C" {
    fn hsync_syscall_entry();
    fn hsync_exit_to_user();
    fn hsync_iret_to_user();
    fn hsync_switch_context(from: *mut KernelContext, to: *const KernelContext);
    fn hsync_switch_to_frame(
        from: *mut KernelContext,
        frame: *mut UserRegs,
        entry: FrameEntry,
        arg: u64,
    );
    fn hsync_load_context(rsp: u64) -> !;
    fn hsync_context_start();
}

/// How a system call leaves the kernel (what `crate::syscall::handle` returns).
#[derive(Clone, Copy, Debug)]
pub enum SyscallExit {
    /// Back to the calling thread, through its own (updated) `UserRegs`.
    Return,
    /// An IPC fast path handed the CPU to a thread parked at its system call (see
    /// [`parked_frame`]): leave through that thread's frame with `sysretq`. The frame must be
    /// [`sysret_ready`] and hold its results; the calling thread's kernel stack is abandoned,
    /// so nothing on it may still be live.
    Frame(*mut UserRegs),
    /// An IPC fast path handed the CPU to a thread blocked inside the kernel: resume its saved
    /// kernel stack pointer one way (same rule for the abandoned stack).
    Context(u64),
}

/// Where a thread that was parked at its system call starts again when a general context
/// switch picks it: `entry(frame, arg)` runs on its kernel stack right below the frame.
pub type FrameEntry = extern "C" fn(*mut UserRegs, u64) -> !;

/// The syscall entry's fast path (for the numbers in `crate::syscall::FAST_SYSCALLS`): the
/// frame to leave through (bit 0 clear: `sysretq`), or 0 when the fast path did not take the
/// call and changed nothing (the stub then runs [`syscall_dispatch`]).
///
/// The test hooks ([`set_test_hooks`]) are not consulted: they serve ring-3 code run by kernel
/// threads, which have no process, and the fast paths never take a call of such a thread.
extern "C" fn syscall_fast(regs: &mut UserRegs) -> u64 {
    match crate::syscall::fast(regs) {
        Some(SyscallExit::Frame(frame)) => frame as u64,
        // SAFETY: as in `syscall_dispatch`.
        Some(SyscallExit::Context(rsp)) => unsafe { hsync_load_context(rsp) },
        Some(SyscallExit::Return) | None => 0,
    }
}

/// The Rust side of the syscall entry: runs the handler (or a test hook), then says where to
/// leave: a `UserRegs` frame address, bit 0 set when the stub must use `iretq`.
extern "C" fn syscall_dispatch(regs: &mut UserRegs) -> u64 {
    match cpu_local().syscall_hook() {
        Some(hook) => hook(regs),
        None => match crate::syscall::handle(regs) {
            SyscallExit::Return => {}
            SyscallExit::Frame(frame) => return frame as u64,
            // SAFETY: the IPC fast path hands over a context saved by `switch_context` of a
            // thread it just made current (address space, kernel stack and FPU state
            // switched), and nothing on this stack is live: `handle` has returned.
            SyscallExit::Context(rsp) => unsafe { hsync_load_context(rsp) },
        },
    }
    let iret = prepare_return(regs);
    core::ptr::from_mut(regs) as u64 | u64::from(iret)
}

/// The `UserRegs` frame of a user thread whose kernel stack top is `kstack_top`: where the
/// syscall entry saved its registers (the stack top is 16-aligned, the frame 144 bytes).
pub fn parked_frame(kstack_top: u64) -> *mut UserRegs {
    (kstack_top - size_of::<UserRegs>() as u64) as *mut UserRegs
}

/// Prepares a fresh syscall frame (`rcx == rip`, `r11 == rflags`, as the entry saved them) so
/// that `sysretq` can leave through it later with only the result registers changed: rflags
/// sanitized (and `r11`, which a syscall clobbers, set to match). Returns false, having changed
/// nothing, when rip is not canonical (that return needs the general path's #GP). The IPC fast
/// path parks only such threads, so whoever resumes them can `sysretq` without a check.
#[inline(always)]
pub fn make_sysret_ready(regs: &mut UserRegs) -> bool {
    debug_assert!(regs.rcx == regs.rip && regs.r11 == regs.rflags);
    if !is_canonical(regs.rip) {
        return false;
    }
    regs.rflags = sanitize_rflags(regs.rflags);
    regs.r11 = regs.rflags;
    true
}

/// Leaves the kernel through `frame` (a syscall frame at the top of the current thread's
/// kernel stack): sanitizes it like every syscall return, then `sysretq` or `iretq`.
///
/// # Safety
/// `frame` must be the running thread's own syscall frame, below which the caller's stack
/// lives (it is abandoned); the thread's address space and kernel stack are current.
pub unsafe fn exit_to_user(frame: *mut UserRegs) -> ! {
    // SAFETY: the caller passes the running thread's frame, which nothing else references.
    let regs = unsafe { &mut *frame };
    let iret = prepare_return(regs);
    let word = frame as u64 | u64::from(iret);
    // SAFETY: the exit stub pops the frame and leaves ring 0 (GS swapped back there); the
    // stack below the frame is given up, per the contract.
    unsafe {
        asm!(
            "jmp {exit}",
            exit = sym hsync_exit_to_user,
            in("rax") word,
            options(noreturn),
        )
    }
}

/// Saves the current kernel context into `from` and starts `entry(frame, arg)` on the stack
/// right below `frame`: how a general switch resumes a thread parked at its system call.
///
/// # Safety
/// As [`switch_context`]; `frame` is the parked thread's [`parked_frame`], whose stack below
/// the frame holds nothing live, and whose address space and kernel stack are current.
pub unsafe fn switch_to_frame(
    from: *mut KernelContext,
    frame: *mut UserRegs,
    entry: FrameEntry,
    arg: u64,
) {
    // SAFETY: forwarded contract; the routine saves every callee-saved register into `from`
    // like `switch_context`, and `entry` never returns.
    unsafe { hsync_switch_to_frame(from, frame, entry, arg) }
}

/// Makes `regs` safe to return to ring 3 and says whether `iretq` is needed (true) or the frame
/// is exactly what `sysretq` produces (false). A non-canonical rip faults the thread here.
fn prepare_return(regs: &mut UserRegs) -> bool {
    regs.rflags = sanitize_rflags(regs.rflags);
    if !is_canonical(regs.rip) {
        deliver_user_fault(&UserFault {
            vector: 13,
            error_code: 0,
            cr2: 0,
            regs: *regs,
        });
    }
    regs.rcx != regs.rip || regs.r11 != regs.rflags
}

/// Hands a ring-3 fault to the scheduler (or to the test hook). Never returns.
pub(super) fn deliver_user_fault(fault: &UserFault) -> ! {
    match cpu_local().fault_hook() {
        Some(hook) => hook(fault),
        None => crate::sched::on_user_fault(fault),
    }
}

/// Test-only: routes this CPU's syscalls to `syscall` instead of `crate::syscall::handle`,
/// and ring-3 faults to `fault` instead of `crate::sched::on_user_fault`. `None` restores the
/// real handlers. Used by the arch ktests only.
pub fn set_test_hooks(syscall: Option<SyscallHook>, fault: Option<FaultHook>) {
    cpu_local().set_hooks(syscall, fault);
}

/// A fresh context that starts running `entry(arg)` on the stack whose top is `stack_top`.
///
/// `stack_top` must be 16-byte aligned (it is rounded down otherwise). The context's first
/// switch-in pops six zeroed callee-saved slots (r12 = arg, r13 = entry) and "returns" into a
/// trampoline that calls `entry` with a correctly aligned stack and rbp = 0.
pub fn init_context(stack_top: u64, entry: extern "C" fn(u64) -> !, arg: u64) -> KernelContext {
    let top = stack_top & !15;
    // Layout, from `top` down: 0 (entry's return address), trampoline, rbp, rbx, r12, r13,
    // r14, r15 — the order `hsync_switch_context` pops.
    let frame: [u64; 8] = [
        0,                                       // r15
        0,                                       // r14
        entry as *const () as u64,               // r13
        arg,                                     // r12
        0,                                       // rbx
        0,                                       // rbp
        hsync_context_start as *const () as u64, // return address of hsync_switch_context
        0,                                       // return address of `entry` (never used)
    ];
    let rsp = top - size_of_val(&frame) as u64;
    // SAFETY: the caller hands us the top of a mapped kernel stack it owns that is not in use
    // (a context is only initialized before it first runs); 64 bytes below it are writable.
    unsafe { core::ptr::write(rsp as *mut [u64; 8], frame) };
    KernelContext { rsp }
}

/// Saves the current kernel context into `from` and resumes `to`. Returns when someone
/// switches back to `from`.
///
/// # Safety
/// Interrupts off; `from`/`to` valid for the duration; `to` was produced by `init_context` or
/// a previous `switch_context`; its stack is mapped.
#[inline]
pub unsafe fn switch_context(from: *mut KernelContext, to: *const KernelContext) {
    // SAFETY: forwarded contract; the routine saves/restores every callee-saved register and
    // is an ordinary `extern "C"` call for the caller-saved ones.
    unsafe { hsync_switch_context(from, to) }
}

/// Enters ring 3 with `regs` (iretq path; sysret only when safe). Never returns.
///
/// RFLAGS is sanitized (IF=1, IOPL=0); a non-canonical rip is delivered as a #GP fault of the
/// thread (through `sched::on_user_fault`) instead of faulting inside the kernel.
///
/// # Safety
/// The current address space must map the user code/stack `regs` points at (or the thread
/// faults, which is fine); `set_kernel_stack` must hold this thread's kernel stack top.
pub unsafe fn return_to_user(regs: *const UserRegs) -> ! {
    // SAFETY: the caller passes a valid pointer.
    let mut r = unsafe { *regs };
    r.rflags = sanitize_rflags(r.rflags);
    if !is_canonical(r.rip) {
        deliver_user_fault(&UserFault {
            vector: 13,
            error_code: 0,
            cr2: 0,
            regs: r,
        });
    }
    // SAFETY: `r` is a sanitized frame on this stack (the iret stub pushes below it, then
    // leaves ring 0 for good); GS is the kernel's, and the stub swaps it for the user's.
    unsafe {
        asm!(
            "jmp {iret}",
            iret = sym hsync_iret_to_user,
            in("rdi") &raw const r,
            options(noreturn),
        )
    }
}

/// Where ring-3 entries (syscall, interrupts) land on this CPU: TSS.rsp0 and the per-CPU
/// syscall stack pointer. Called on every thread switch.
pub fn set_kernel_stack(top: u64) {
    // SAFETY: called with interrupts off (kernel code); the TSS slot is only read by the CPU
    // on a ring 3 → 0 transition, which cannot happen while we run in ring 0.
    unsafe { gdt::set_rsp0(top) };
    cpu_local().set_kernel_rsp(top);
}

/// The kernel stack top ring-3 entries currently use on this CPU.
pub fn kernel_stack() -> u64 {
    cpu_local().kernel_rsp()
}

fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Physical address bits of CR3.
const CR3_ADDR: u64 = 0x000f_ffff_ffff_f000;
/// CR3 bit 63 with PCIDE: keep the TLB entries of the PCID being loaded.
const CR3_NOFLUSH: u64 = 1 << 63;

/// Loads an address space's root table (no-op if already current; PCID when the CPU has it).
///
/// # Safety
/// `cr3` must be a PML4 that maps the kernel's upper half.
#[inline]
pub unsafe fn load_address_space(cr3: u64) {
    let cr3 = cr3 & CR3_ADDR;
    if read_cr3() & CR3_ADDR == cr3 {
        cpu_local().set_loaded_cr3(cr3);
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { switch_address_space(cr3) }
}

/// Like [`load_address_space`] for a caller that knows `cr3` is not the loaded root (the
/// scheduler tracks it): skips reading CR3 back.
///
/// # Safety
/// As [`load_address_space`].
#[inline(always)]
pub unsafe fn switch_address_space(cr3: u64) {
    let cr3 = cr3 & CR3_ADDR;
    let value = if pcid_enabled() {
        let (pcid, keep) = cpu_local().pcid_for(cr3);
        cr3 | pcid | if keep { CR3_NOFLUSH } else { 0 }
    } else {
        cr3
    };
    // SAFETY: per the contract the new PML4 maps the kernel half (including this code and
    // stack) identically; PCID bits are only set with CR4.PCIDE on.
    unsafe { asm!("mov cr3, {}", in(reg) value, options(nostack, preserves_flags)) };
    cpu_local().set_loaded_cr3(cr3);
}

/// The PML4 this CPU has loaded (as published by the address-space switches).
#[inline(always)]
pub fn loaded_cr3() -> u64 {
    cpu_local().loaded_cr3()
}

/// The CPUs (a mask, this one excluded) that may hold translations of address space `cr3`:
/// those that have it loaded; with PCID every other CPU (tags outlive the load); for the
/// kernel half (`cr3 == 0`, global mappings) every other CPU.
fn holders(cr3: u64) -> u64 {
    let others = super::smp::others();
    if cr3 == 0 || pcid_enabled() {
        return others;
    }
    (0..percpu::MAX_CPUS)
        .filter(|&i| others & (1 << i) != 0)
        .filter(|&i| percpu::cpu_block(i).is_some_and(|b| b.loaded_cr3() == cr3 & CR3_ADDR))
        .fold(0, |m, i| m | 1 << i)
}

/// TLB shootdown: after this CPU changed or removed the mappings of `pages` pages at `va` in
/// address space `cr3` (0: the kernel half) and flushed its own TLB, invalidates them on every
/// other CPU that may hold them and waits until all did. Call with the big kernel lock held,
/// before the frames are reused.
pub fn shootdown(cr3: u64, va: u64, pages: u64) {
    let cpus = holders(cr3);
    if cpus != 0 {
        super::smp::call_many(cpus, super::smp::Call::Flush { cr3, va, pages });
    }
}

/// Like [`shootdown`] for kernel-half pages that only the CPUs in `cpus` (a mask) may have
/// cached (a kernel stack: the CPUs that mapped or ran on it).
pub fn shootdown_on(cpus: u64, va: u64, pages: u64) {
    let cpus = cpus & super::smp::others();
    if cpus != 0 {
        super::smp::call_many(cpus, super::smp::Call::Flush { cr3: 0, va, pages });
    }
}

/// Before address space `cr3` is freed: every other CPU that has it loaded loads the kernel's
/// PML4 (and with PCID drops its tag); waits until all did.
pub fn leave_everywhere(cr3: u64) {
    let cpus = holders(cr3);
    if cpus != 0 {
        super::smp::call_many(cpus, super::smp::Call::Leave { cr3 });
    }
}

/// A remote call's flush on this CPU (see [`shootdown`]).
pub(super) fn flush_local(cr3: u64, va: u64, pages: u64) {
    const FULL_FLUSH_PAGES: u64 = 64;
    let cr3 = cr3 & CR3_ADDR;
    if cr3 != 0 && read_cr3() & CR3_ADDR != cr3 {
        // Not loaded: only a PCID tag can hold it.
        forget_address_space(cr3);
        return;
    }
    if pages > FULL_FLUSH_PAGES && cr3 != 0 {
        forget_address_space(cr3);
        if !pcid_enabled() {
            let current = read_cr3();
            // SAFETY: reloading the same PML4 only flushes the non-global TLB entries.
            unsafe { asm!("mov cr3, {}", in(reg) current, options(nostack, preserves_flags)) };
        }
        return;
    }
    for i in 0..pages {
        super::paging::flush(va + i * 4096);
    }
}

/// A remote call's leave on this CPU (see [`leave_everywhere`]).
pub(super) fn leave_local(cr3: u64) {
    let cr3 = cr3 & CR3_ADDR;
    if read_cr3() & CR3_ADDR == cr3 {
        let root = crate::mm::vmm::root();
        // SAFETY: the kernel's PML4 maps the kernel half, all this CPU uses until it picks a
        // thread again (a user thread of the freed space has been killed).
        unsafe { switch_address_space(root) };
    }
    forget_address_space(cr3);
}

/// Drops this CPU's cached translations for the address space `cr3`: call it after removing
/// or downgrading user mappings of a space that is not current, and before freeing a PML4.
/// (With PCID, its next load flushes; if it is current, its TLB entries are flushed now.
/// Without PCID, a non-current space has no cached translations and this does nothing.)
pub fn forget_address_space(cr3: u64) {
    let cr3 = cr3 & CR3_ADDR;
    if !pcid_enabled() {
        return;
    }
    let current = read_cr3();
    if current & CR3_ADDR == cr3 {
        // Reloading without the no-flush bit flushes the current PCID's non-global entries.
        // SAFETY: same PML4, same PCID: only the TLB changes.
        unsafe {
            asm!("mov cr3, {}", in(reg) current & !CR3_NOFLUSH, options(nostack, preserves_flags))
        };
    } else {
        cpu_local().pcid_forget(cr3);
    }
}

/// Runs `f` with user-memory access allowed (stac/clac under SMAP; plain call otherwise).
///
/// Not nestable (the inner call's `clac` ends the outer window), and `f` must not block or
/// switch threads (the AC flag would travel with the switch). An exception taken inside `f`
/// (e.g. a caught probe fault) runs its handler with AC still set; the trap stubs do not `clac`
/// because they cannot know cheaply whether the CPU has the instruction.
pub fn user_access<R>(f: impl FnOnce() -> R) -> R {
    if !SMAP_ON.load(Ordering::Relaxed) {
        return f();
    }
    // SAFETY: `stac` only sets RFLAGS.AC (allowed: SMAP is on, so the CPU has the
    // instruction). No `nomem`, so the compiler keeps `f`'s accesses between the two.
    unsafe { asm!("stac", options(nostack)) };
    let r = f();
    // SAFETY: clears RFLAGS.AC again.
    unsafe { asm!("clac", options(nostack)) };
    r
}

/// Starts the periodic scheduler tick on this CPU (local APIC timer: x2APIC when the CPU has
/// it, xAPIC otherwise; calibrated against the TSC/PIT). Each tick calls
/// `crate::sched::on_timer_tick()`. Vector [`apic::TIMER_VECTOR`]. Calling it again
/// reprograms the period.
pub fn timer_start(period_ns: u64) {
    if !apic::start_timer(period_ns) {
        log::error!(target: "apic", "no local APIC timer; the scheduler will not preempt");
    }
}
