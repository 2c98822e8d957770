//! In-kernel tests of user mode, the APIC timer, context switches, SMAP and PCID.
//!
//! The user-mode tests build a tiny address space by hand (a fresh PML4 sharing the kernel's
//! upper half, one code page and one data/stack page at [`CODE_VA`]/[`DATA_VA`]) so they do not
//! depend on `mm::AddressSpace`. The user program is assembled below into kernel text and copied
//! into the code page; it runs on a kernel context of its own, and the test-only fault hook
//! switches back to the test when its final `ud2` faults.

use alloc::format;
use alloc::string::String;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use spin::Mutex;
use x86_64::registers::control::{Cr4, Cr4Flags};
use x86_64::registers::model_specific::{GsBase, KernelGsBase};

use super::percpu::{CpuLocal, SyscallHook, cpu_local};
use super::user::{
    KernelContext, UserFault, UserRegs, forget_address_space, init_context, kernel_stack,
    load_address_space, pcid_enabled, return_to_user, set_kernel_stack, set_test_hooks,
    switch_context, timer_start, user_access,
};
use super::{apic, cpu, gdt, probe, time};
use crate::ensure;
use crate::ktest::TestResult;

const PAGE: u64 = 4096;
/// Where the test program's code page is mapped (user, read + execute).
const CODE_VA: u64 = 0x40_0000;
/// Where its data/stack page is mapped (user, read + write, no execute).
const DATA_VA: u64 = 0x40_1000;
/// A value planted in the data page for the SMAP test.
const DATA_MARKER: u64 = 0x5eed_f00d_cafe_0042;

// ---------------------------------------------------------------------------------------------
// Context switches.

/// Two contexts passing a value back and forth.
struct PingPong {
    main: KernelContext,
    other: KernelContext,
    value: u64,
    /// Lowest/highest stack address seen by the other context, and whether a 16-aligned local
    /// really was 16-aligned there.
    other_rsp: u64,
    aligned: bool,
}

#[repr(align(16))]
struct Aligned16([u8; 16]);

extern "C" fn pong(arg: u64) -> ! {
    let pp = arg as *mut PingPong;
    loop {
        let local = Aligned16([0; 16]);
        let addr = core::hint::black_box(&raw const local) as u64;
        let rsp: u64;
        // SAFETY: reads rsp.
        unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
        // SAFETY: `pp` points at the test's `PingPong`, which outlives every switch into this
        // context; the two contexts never run at the same time.
        unsafe {
            (*pp).value = (*pp).value.wrapping_mul(3).wrapping_add(1);
            (*pp).other_rsp = rsp;
            (*pp).aligned = addr.is_multiple_of(16) && local.0[15] == 0;
            switch_context(&raw mut (*pp).other, &raw const (*pp).main);
        }
    }
}

pub fn context_switch_ping_pong() -> TestResult {
    let stack = crate::mm::alloc_kernel_stack(4).ok_or_else(|| String::from("no stack"))?;
    let mut pp = alloc::boxed::Box::new(PingPong {
        main: KernelContext::default(),
        other: KernelContext::default(),
        value: 0,
        other_rsp: 0,
        aligned: false,
    });
    let ptr: *mut PingPong = &raw mut *pp;
    pp.other = init_context(stack.top, pong, ptr as u64);
    // Values the compiler keeps in callee-saved registers across the switches.
    let keep = core::hint::black_box([0x1111u64, 0x2222, 0x3333, 0x4444, 0x5555]);
    for i in 0..100u64 {
        // SAFETY: interrupts are off in kernel tests; both contexts and the stack stay valid.
        unsafe {
            (*ptr).value = i;
            switch_context(&raw mut (*ptr).main, &raw const (*ptr).other);
        }
        // SAFETY: the other context is parked again.
        let (value, rsp, aligned) = unsafe { ((*ptr).value, (*ptr).other_rsp, (*ptr).aligned) };
        ensure!(
            value == i * 3 + 1,
            "round {i}: got {value}, expected {}",
            i * 3 + 1
        );
        ensure!(
            rsp < stack.top && rsp >= stack.bottom,
            "other context ran on rsp {rsp:#x}, outside its stack {:#x}..{:#x}",
            stack.bottom,
            stack.top
        );
        ensure!(
            aligned,
            "a 16-aligned local was misaligned in the new context"
        );
    }
    let keep = core::hint::black_box(keep);
    ensure!(
        keep == [0x1111, 0x2222, 0x3333, 0x4444, 0x5555],
        "locals changed across switches: {keep:x?}"
    );
    // The other context stays parked forever; its (never freed) stack is leaked on purpose.
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The APIC timer.

/// Test tick period.
const TEST_PERIOD_NS: u64 = 2_000_000;

pub fn apic_timer_ticks() -> TestResult {
    let hz = time::tsc_hz().ok_or_else(|| String::from("TSC not calibrated"))?;
    let previous = apic::period_ns();
    timer_start(TEST_PERIOD_NS);
    let result = timer_ticks_while_idle(hz);
    if previous != 0 {
        timer_start(previous);
    }
    result
}

fn timer_ticks_while_idle(hz: u64) -> TestResult {
    let mode = apic::mode().ok_or_else(|| String::from("no APIC mode after timer_start"))?;
    let x2 = cpu::features().x2apic;
    ensure!(
        (mode == apic::Mode::X2Apic) == x2,
        "APIC mode {mode:?}, CPUID x2APIC = {x2}"
    );
    let extd = apic::base_msr() & (1 << 10) != 0;
    ensure!(
        extd == x2,
        "IA32_APIC_BASE.EXTD = {extd}, CPUID x2APIC = {x2}"
    );

    // Phase 1, bounded: interrupts on, spin until the first tick (proves the timer fires, so
    // that phase 2 may `hlt` without risking a hang). 2 s of TSC time is >= 1000 periods.
    let deadline = time::rdtsc() + 2 * hz;
    let t0 = crate::sched::ticks();
    while crate::sched::ticks() == t0 {
        ensure!(
            time::rdtsc() < deadline,
            "no timer tick within 2 s ({} mode)",
            apic::mode_name(mode)
        );
        // SAFETY: a window for the pending tick; the handler only counts.
        unsafe { asm!("sti", "nop", "nop", "cli", options(nomem, nostack)) };
    }
    // Phase 2: idle with `sti; hlt` until 10 more ticks arrived (each wake-up is an interrupt),
    // again under a generous deadline.
    let start = crate::sched::ticks();
    let tsc_start = time::rdtsc();
    while crate::sched::ticks() < start + 10 {
        ensure!(
            time::rdtsc() < tsc_start + 4 * hz,
            "only {} ticks in 4 s",
            crate::sched::ticks() - start
        );
        // SAFETY: `sti; hlt` sleeps until the next interrupt (the periodic tick); `cli` again.
        unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    }
    let elapsed = time::rdtsc() - tsc_start;
    let per_tick_us = elapsed * 1_000_000 / hz / 10;
    log::info!(
        target: "apic",
        "timer test: {} mode, 10 ticks of {} us took {} us each (TSC)",
        apic::mode_name(mode),
        TEST_PERIOD_NS / 1000,
        per_tick_us
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A hand-built user address space.

/// PML4 → PDPT → PD → PT → {code, data}, all frames owned by this struct.
struct TestSpace {
    /// Physical frames: pml4, pdpt, pd, pt, code, data.
    frames: [u64; 6],
}

fn table(phys: u64) -> *mut u64 {
    crate::mm::phys_to_virt(phys) as *mut u64
}

const P: u64 = 1;
const W: u64 = 2;
const U: u64 = 4;

impl TestSpace {
    fn new(code: &[u8]) -> Result<Self, String> {
        let mut frames = [0u64; 6];
        for i in 0..frames.len() {
            let Some(f) = crate::mm::pmm::alloc_frame() else {
                for &f in &frames[..i] {
                    let _ = crate::mm::pmm::free_frame(f);
                }
                return Err(String::from("out of frames"));
            };
            // SAFETY: a fresh frame we own, mapped by the HHDM.
            unsafe { core::ptr::write_bytes(table(f), 0, 512) };
            frames[i] = f;
        }
        let [pml4, pdpt, pd, pt, code_f, data_f] = frames;
        let nx = if cpu::features().nx { 1 << 63 } else { 0 };
        let kernel = table(crate::mm::vmm::root());
        // SAFETY: all tables are our fresh frames (HHDM-mapped); the kernel PML4's upper half
        // is read-only here. The user half gets one chain of tables; `code` fits in a page.
        unsafe {
            for i in 256..512 {
                *table(pml4).add(i) = *kernel.add(i);
            }
            *table(pml4) = pdpt | P | W | U;
            *table(pdpt) = pd | P | W | U;
            *table(pd).add((CODE_VA >> 21) as usize & 511) = pt | P | W | U;
            *table(pt).add((CODE_VA >> 12) as usize & 511) = code_f | P | U;
            *table(pt).add((DATA_VA >> 12) as usize & 511) = data_f | P | W | U | nx;
            let len = code.len().min(PAGE as usize);
            core::ptr::copy_nonoverlapping(code.as_ptr(), table(code_f).cast::<u8>(), len);
            *table(data_f) = DATA_MARKER;
        }
        Ok(Self { frames })
    }

    fn cr3(&self) -> u64 {
        self.frames[0]
    }
}

impl Drop for TestSpace {
    fn drop(&mut self) {
        // SAFETY: the kernel's own PML4 maps the kernel half.
        unsafe { load_address_space(crate::mm::vmm::root()) };
        forget_address_space(self.cr3());
        for &f in &self.frames {
            let _ = crate::mm::pmm::free_frame(f);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The user program and the round trip.

// Position-independent; copied to CODE_VA. Registers at the final `ud2` tell the story:
// r12/r13/r14 = rcx/r11/rax after the null syscall, rbp = rax after the invalid one, r9 = an
// argument that must survive 1002 syscalls, r15 = TSC cycles of 1000 null syscalls.
global_asm!(
    r#"
    .section .rodata.hsync_test_user, "a", @progbits
    .globl hsync_test_user_start
hsync_test_user_start:
    mov eax, {null}
    mov edi, 0x11
    mov esi, 0x22
    mov edx, 0x33
    mov r10d, 0x44
    mov r8d, 0x55
    mov r9d, 0x66
    mov rbx, 0x7777
    syscall
    .globl hsync_test_user_after_null
hsync_test_user_after_null:
    mov r12, rcx
    mov r13, r11
    mov r14, rax
    mov eax, 999
    syscall
    mov rbp, rax
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r15, rax
    mov ebx, 1000
3:
    mov eax, {null}
    syscall
    dec ebx
    jnz 3b
    rdtsc
    shl rdx, 32
    or rax, rdx
    sub rax, r15
    mov r15, rax
    .globl hsync_test_user_ud2
hsync_test_user_ud2:
    ud2
    .globl hsync_test_user_end
hsync_test_user_end:
    "#,
    null = const hsync_abi::Sysnum::Null as u64,
);

unsafe extern "C" {
    static hsync_test_user_start: u8;
    static hsync_test_user_after_null: u8;
    static hsync_test_user_ud2: u8;
    static hsync_test_user_end: u8;
}

/// Offset of a label in the user program.
fn user_offset(label: *const u8) -> u64 {
    label as u64 - (&raw const hsync_test_user_start) as u64
}

/// Syscalls seen by the hook, and the registers of the first two.
static SYSCALLS: AtomicU64 = AtomicU64::new(0);
static FIRST_CALLS: Mutex<[UserRegs; 2]> = Mutex::new([UserRegs::ZERO; 2]);
/// The fault that ended the program.
static FAULT: Mutex<Option<UserFault>> = Mutex::new(None);
/// The test's context, resumed by the fault hook.
static RESUME: AtomicPtr<KernelContext> = AtomicPtr::new(core::ptr::null_mut());

fn syscall_hook(regs: &mut UserRegs) {
    let n = SYSCALLS.fetch_add(1, Ordering::Relaxed);
    if n < 2
        && let Some(slot) = FIRST_CALLS.lock().get_mut(n as usize)
    {
        *slot = *regs;
    }
    crate::syscall::handle(regs);
}

fn fault_hook(fault: &UserFault) -> ! {
    *FAULT.lock() = Some(*fault);
    let resume = RESUME.load(Ordering::Relaxed);
    let mut dead = KernelContext::default();
    // SAFETY: `resume` is the test's parked context (set before entering user mode); this
    // context is abandoned and never switched to again.
    unsafe { switch_context(&raw mut dead, resume) };
    unreachable!("the abandoned user-test context was resumed")
}

/// What the user thread's kernel context starts with.
struct Launch {
    regs: UserRegs,
    kstack_top: u64,
}

extern "C" fn enter_user(arg: u64) -> ! {
    // SAFETY: `arg` points at the test's `Launch`, alive until the test resumes.
    let launch = unsafe { &*(arg as *const Launch) };
    set_kernel_stack(launch.kstack_top);
    // SAFETY: the test loaded the address space mapping CODE_VA/DATA_VA; our kernel stack top
    // was just installed.
    unsafe { return_to_user(&raw const launch.regs) }
}

/// Runs `program` in ring 3 in a fresh space until it faults; returns the fault.
fn run_user(space: &TestSpace, hook: SyscallHook) -> Result<UserFault, String> {
    let stack = crate::mm::alloc_kernel_stack(4).ok_or_else(|| String::from("no stack"))?;
    let launch = Launch {
        regs: UserRegs {
            rip: CODE_VA,
            rsp: DATA_VA + PAGE,
            // Deliberately dirty flags: IOPL=3 and NT must be stripped, IF forced on.
            rflags: 0x3000 | 0x4000,
            ..UserRegs::ZERO
        },
        kstack_top: stack.top,
    };
    let previous_kstack = kernel_stack();
    let mut here = KernelContext::default();
    let user = init_context(stack.top, enter_user, &raw const launch as u64);
    RESUME.store(&raw mut here, Ordering::Relaxed);
    SYSCALLS.store(0, Ordering::Relaxed);
    *FAULT.lock() = None;
    set_test_hooks(Some(hook), Some(fault_hook));
    // SAFETY: the space maps the kernel half; interrupts are off; `here`/`user` stay valid
    // until the fault hook switches back.
    unsafe {
        load_address_space(space.cr3());
        switch_context(&raw mut here, &raw const user);
    }
    set_test_hooks(None, None);
    set_kernel_stack(previous_kstack);
    FAULT
        .lock()
        .take()
        .ok_or_else(|| String::from("returned from user mode without a fault"))
}

pub fn user_mode_round_trip() -> TestResult {
    let start = &raw const hsync_test_user_start;
    // SAFETY: the program is a contiguous run of bytes in kernel rodata between two labels.
    let code = unsafe {
        core::slice::from_raw_parts(start, user_offset(&raw const hsync_test_user_end) as usize)
    };
    let space = TestSpace::new(code)?;
    let ticks_before = crate::sched::ticks();
    let fault = run_user(&space, syscall_hook)?;
    let ticks_in_user = crate::sched::ticks() - ticks_before;
    drop(space);

    let after_null = CODE_VA + user_offset(&raw const hsync_test_user_after_null);
    let ud2 = CODE_VA + user_offset(&raw const hsync_test_user_ud2);
    let calls = SYSCALLS.load(Ordering::Relaxed);
    ensure!(calls == 1002, "{calls} syscalls arrived, expected 1002");
    let [null, bad] = *FIRST_CALLS.lock();
    let null_nr = hsync_abi::Sysnum::Null as u64;
    ensure!(null.rax == null_nr, "first call rax {:#x}", null.rax);
    ensure!(
        [
            null.rdi, null.rsi, null.rdx, null.r10, null.r8, null.r9, null.rbx
        ] == [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x7777],
        "first call arguments wrong: {null:x?}"
    );
    ensure!(
        null.rip == after_null && null.rcx == after_null,
        "first call rip {:#x} / rcx {:#x}, expected {after_null:#x}",
        null.rip,
        null.rcx
    );
    ensure!(null.rsp == DATA_VA + PAGE, "first call rsp {:#x}", null.rsp);
    ensure!(
        null.rflags & 0x200 != 0 && null.rflags & 0x7000 == 0 && null.r11 == null.rflags,
        "user rflags at the first call {:#x} (r11 {:#x}): IF must be on, IOPL/NT off",
        null.rflags,
        null.r11
    );
    ensure!(bad.rax == 999, "second call rax {}", bad.rax);

    ensure!(
        fault.vector == 6,
        "fault vector {} (expected #UD)",
        fault.vector
    );
    let r = fault.regs;
    ensure!(r.rip == ud2, "fault rip {:#x}, expected {ud2:#x}", r.rip);
    ensure!(
        r.r12 == after_null,
        "rcx after the null syscall {:#x}, expected its return address {after_null:#x}",
        r.r12
    );
    ensure!(
        r.r13 == null.rflags,
        "r11 after the null syscall {:#x}, expected the user rflags {:#x}",
        r.r13,
        null.rflags
    );
    ensure!(r.r14 == 0, "null syscall returned {:#x}", r.r14);
    let invalid = hsync_abi::Error::InvalidSyscall as u64;
    ensure!(
        r.rbp == invalid,
        "syscall 999 returned {:#x}, expected InvalidSyscall ({invalid:#x})",
        r.rbp
    );
    // r9 is result register 5: calls that define no result there return 0 (docs/syscalls.md).
    ensure!(
        r.r9 == 0,
        "r9 (an undefined result register) not zeroed: {:#x}",
        r.r9
    );
    ensure!(r.rbx == 0, "loop counter {:#x}", r.rbx);
    ensure!(r.rsp == DATA_VA + PAGE, "rsp at the fault {:#x}", r.rsp);
    log::info!(
        target: "arch",
        "null syscall round trip: {} TSC cycles (mean of 1000, incl. the test hook); {} timer ticks taken in ring 3",
        r.r15 / 1000,
        ticks_in_user
    );
    Ok(())
}

// The sysret hazards and interrupts in ring 3. The first syscall's hook rewrites rcx, r11 and
// r14 (so the return must be `iretq` and must carry them); the program then spins for r14 TSC
// cycles with interrupts on (timer ticks arrive in ring 3) holding known values in rbx, rbp and
// r15 (not syscall result registers, which the dispatcher zeroes);
// the second syscall's hook sets a non-canonical rip, which must become a #GP of the thread.
global_asm!(
    r#"
    .section .rodata.hsync_test_user, "a", @progbits
    .globl hsync_test_hazard_start
hsync_test_hazard_start:
    mov eax, {null}
    syscall
    mov r12, rcx
    mov r13, r11
    mov ebx, 0x8888
    mov ebp, 0x9999
    mov r15d, 0xffff
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov rsi, rax
4:
    rdtsc
    shl rdx, 32
    or rax, rdx
    sub rax, rsi
    cmp rax, r14
    jb 4b
    mov eax, {null}
    syscall
    ud2
    .globl hsync_test_hazard_end
hsync_test_hazard_end:
    "#,
    null = const hsync_abi::Sysnum::Null as u64,
);

unsafe extern "C" {
    static hsync_test_hazard_start: u8;
    static hsync_test_hazard_end: u8;
}

/// rcx/r11 the first hazard syscall returns with (not what sysret could produce).
const HAZARD_RCX: u64 = 0x1234_5678_9abc;
const HAZARD_R11: u64 = 0x77;
/// The non-canonical rip the second hazard syscall "returns" to.
const HAZARD_RIP: u64 = 0x8000_0000_0000_0000;
/// TSC cycles the hazard program spins in ring 3 (set by the first hook call).
static HAZARD_SPIN: AtomicU64 = AtomicU64::new(0);

fn hazard_hook(regs: &mut UserRegs) {
    let n = SYSCALLS.fetch_add(1, Ordering::Relaxed);
    crate::syscall::handle(regs);
    if n == 0 {
        regs.rcx = HAZARD_RCX;
        regs.r11 = HAZARD_R11;
        regs.r14 = HAZARD_SPIN.load(Ordering::Relaxed);
    } else {
        regs.rip = HAZARD_RIP;
    }
}

pub fn sysret_hazards_and_ring3_interrupts() -> TestResult {
    let hz = time::tsc_hz().ok_or_else(|| String::from("TSC not calibrated"))?;
    let start = &raw const hsync_test_hazard_start;
    let len = (&raw const hsync_test_hazard_end) as usize - start as usize;
    // SAFETY: the program is a contiguous run of bytes in kernel rodata between two labels.
    let code = unsafe { core::slice::from_raw_parts(start, len) };
    let space = TestSpace::new(code)?;
    let period = apic::period_ns();
    // Spin for 10 timer periods (20 ms if the timer is off, then no tick is expected).
    let spin_ns = if period == 0 { 20_000_000 } else { 10 * period };
    HAZARD_SPIN.store(hz * spin_ns / 1_000_000_000, Ordering::Relaxed);
    let ticks_before = crate::sched::ticks();
    let fault = run_user(&space, hazard_hook)?;
    let ticks_in_user = crate::sched::ticks() - ticks_before;
    drop(space);

    let calls = SYSCALLS.load(Ordering::Relaxed);
    ensure!(calls == 2, "{calls} syscalls arrived, expected 2");
    let r = fault.regs;
    ensure!(
        fault.vector == 13 && r.rip == HAZARD_RIP,
        "expected a #GP at the non-canonical rip {HAZARD_RIP:#x}, got vector {} at {:#x}",
        fault.vector,
        r.rip
    );
    ensure!(
        r.r12 == HAZARD_RCX && r.r13 == HAZARD_R11,
        "after an iretq return rcx/r11 = {:#x}/{:#x}, expected {HAZARD_RCX:#x}/{HAZARD_R11:#x}",
        r.r12,
        r.r13
    );
    ensure!(
        [r.rbx, r.rbp, r.r15] == [0x8888, 0x9999, 0xffff],
        "registers changed across ring-3 interrupts: rbx {:#x}, rbp {:#x}, r15 {:#x}",
        r.rbx,
        r.rbp,
        r.r15
    );
    if period != 0 {
        // 10 periods of spinning: at least one tick must have interrupted ring 3.
        ensure!(
            ticks_in_user >= 1,
            "no timer tick arrived during 10 periods in ring 3"
        );
    }
    log::info!(target: "arch", "hazard test: {ticks_in_user} timer ticks taken in ring 3");
    Ok(())
}

/// A user program that only faults: `ud2`.
const UD2: [u8; 2] = [0x0f, 0x0b];

pub fn smap_blocks_kernel_reads() -> TestResult {
    let space = TestSpace::new(&UD2)?;
    // SAFETY: the space maps the kernel half; it is dropped (switching back) before return.
    unsafe { load_address_space(space.cr3()) };
    let outside = probe::read_u64(DATA_VA);
    let inside = user_access(|| probe::read_u64(DATA_VA));
    drop(space);
    let smap = Cr4::read().contains(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
    ensure!(
        inside == Ok(DATA_MARKER),
        "read inside user_access gave {inside:?}"
    );
    if smap {
        match outside {
            Ok(v) => return Err(format!("SMAP on, but a plain kernel read gave {v:#x}")),
            Err(f) => ensure!(
                f.addr == DATA_VA && f.code & 0b101 == 0b001,
                "expected a kernel protection fault at {DATA_VA:#x}, got {f:?}"
            ),
        }
    } else {
        ensure!(
            outside == Ok(DATA_MARKER),
            "SMAP off, plain read gave {outside:?}"
        );
        log::info!(target: "arch", "SMAP not available: only the permissive path was tested");
    }
    Ok(())
}

pub fn percpu_block_through_gs() -> TestResult {
    let block = cpu_local();
    let gs = GsBase::read().as_u64();
    ensure!(
        gs == block as *const CpuLocal as u64,
        "GS base {gs:#x} is not the per-CPU block {:#x}",
        block as *const CpuLocal as u64
    );
    ensure!(
        KernelGsBase::read().as_u64() == 0,
        "KERNEL_GS_BASE (the user's GS) is {:#x} in kernel mode",
        KernelGsBase::read().as_u64()
    );
    ensure!(block.cpu_id() == cpu::cpu_id(), "cpu id {}", block.cpu_id());
    let old = block.current();
    block.set_current(0xdead_beef);
    let seen = cpu_local().current();
    block.set_current(old);
    ensure!(
        seen == 0xdead_beef,
        "current-thread slot read back {seen:#x}"
    );
    Ok(())
}

pub fn pcid_address_space_switch() -> TestResult {
    let kernel = crate::mm::vmm::root();
    let a = TestSpace::new(&UD2)?;
    let b = TestSpace::new(&UD2)?;
    let read_cr3 = || {
        let v: u64;
        // SAFETY: reads CR3.
        unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    };
    // SAFETY: both spaces share the kernel half; we switch back to the kernel's before they drop.
    let (cr3_a, cr3_b, cr3_a_again) = unsafe {
        load_address_space(a.cr3());
        let x = read_cr3();
        load_address_space(b.cr3());
        let y = read_cr3();
        load_address_space(a.cr3());
        let z = read_cr3();
        load_address_space(kernel);
        (x, y, z)
    };
    let addr = |v: u64| v & 0x000f_ffff_ffff_f000;
    ensure!(
        addr(cr3_a) == a.cr3() && addr(cr3_b) == b.cr3() && addr(cr3_a_again) == a.cr3(),
        "CR3 did not follow: {cr3_a:#x} {cr3_b:#x} {cr3_a_again:#x}"
    );
    let pcid = |v: u64| v & 0xfff;
    if pcid_enabled() {
        ensure!(
            pcid(cr3_a) != 0 && pcid(cr3_b) != 0 && pcid(cr3_a) != pcid(cr3_b),
            "PCIDs {:#x}/{:#x} should be distinct and non-zero",
            pcid(cr3_a),
            pcid(cr3_b)
        );
        ensure!(
            pcid(cr3_a_again) == pcid(cr3_a),
            "space A changed PCID {:#x} -> {:#x}",
            pcid(cr3_a),
            pcid(cr3_a_again)
        );
    } else {
        ensure!(
            pcid(cr3_a) == 0 && pcid(cr3_b) == 0,
            "PCID bits set without CR4.PCIDE"
        );
    }
    // The floor of an address-space switch (no measurement assertions): 1000 round trips
    // kernel → A → kernel, touching only this loop's code and stack.
    let t0 = time::rdtsc();
    for _ in 0..1000 {
        // SAFETY: as above.
        unsafe {
            load_address_space(a.cr3());
            load_address_space(kernel);
        }
    }
    let cycles = (time::rdtsc() - t0) / 2000;
    log::info!(target: "arch", "address-space switch: {cycles} TSC cycles each (mean of 2000, PCID {})", if pcid_enabled() { "on" } else { "off" });
    ensure!(
        gdt::rsp0() == kernel_stack(),
        "TSS.rsp0 {:#x} != per-CPU syscall stack {:#x}",
        gdt::rsp0(),
        kernel_stack()
    );
    Ok(())
}
