//! Lazy FPU/SSE for user threads (CR0.TS).
//!
//! When CPUID reports FXSR and SSE, [`init_cpu`] turns on CR4.OSFXSR|OSXMMEXCPT and CR0.MP,
//! clears CR0.EM and sets CR0.TS. One thread per CPU owns the FPU registers (`OWNERS`, the
//! `Arc::as_ptr` of the thread, per CPU). Every context switch calls [`switch_to`]: TS is set when the next
//! thread is not the owner and cleared when it is (one compare; CR0 is written only when the
//! wanted TS differs from the cached one, so threads that never touch the FPU never pay).
//!
//! The first x87/MMX/SSE instruction of a non-owner in ring 3 raises #NM: [`claim`] clears TS,
//! saves the owner's registers (`fxsave64`) into its [`FxArea`], loads the new thread's area
//! (`fxrstor64`; a fresh area is the FNINIT state with the default MXCSR) and makes it the
//! owner. A dying thread gives up ownership ([`release`]) before its area is freed. #NM in
//! ring 0 stays a kernel panic: the kernel is soft-float and never touches these registers.
//!
//! Without FXSR/SSE the old policy stays: CR0.EM set, so x87 raises #NM and SSE #UD, which
//! fault the process.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

use super::cpu;
use super::percpu::MAX_CPUS;

/// A thread's saved x87/MMX/SSE state: the 512-byte, 16-aligned `fxsave` image.
#[repr(C, align(16))]
pub struct FxArea(UnsafeCell<[u8; 512]>);

// SAFETY: the bytes are only touched by `fxsave64`/`fxrstor64` (`claim`, `save_if_owner`) on
// the CPU that holds the thread's registers, under the big kernel lock or while its holder
// waits for that remote call; nobody else reads or writes them.
unsafe impl Sync for FxArea {}

impl core::fmt::Debug for FxArea {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FxArea")
    }
}

impl FxArea {
    /// The FNINIT state: FCW 0x037F (all exceptions masked, extended precision), empty tags,
    /// MXCSR 0x1F80 (all SIMD exceptions masked, round to nearest), registers zero.
    pub fn new() -> Self {
        let mut b = [0u8; 512];
        b[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
        b[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
        FxArea(UnsafeCell::new(b))
    }
}

impl Default for FxArea {
    fn default() -> Self {
        Self::new()
    }
}

/// Lazy FPU switching is on (CPUID has FXSR and SSE).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// One CPU's FPU ownership.
struct Owner {
    /// The owning thread (`Arc::as_ptr` as an integer), 0 for none.
    thread: AtomicUsize,
    /// The owner's area, valid while `thread` is non-zero.
    area: AtomicUsize,
    /// CR0.TS as last written on this CPU.
    ts_set: AtomicBool,
}

/// Per CPU: whose registers it holds. A CPU's entry is written by that CPU, or by a CPU holding
/// the big kernel lock for a thread that is not running there ([`release`]).
static OWNERS: [Owner; MAX_CPUS] = [const {
    Owner {
        thread: AtomicUsize::new(0),
        area: AtomicUsize::new(0),
        ts_set: AtomicBool::new(false),
    }
}; MAX_CPUS];

/// #NM exceptions from ring 3 handled lazily (for the tests: IPC-only code never takes one).
pub static NM_TRAPS: AtomicU64 = AtomicU64::new(0);

#[inline(always)]
fn mine() -> &'static Owner {
    let cpu = super::cpu::cpu_id() as usize;
    OWNERS.get(cpu).unwrap_or(&OWNERS[0])
}

/// #NM traps taken since boot (the lazy FPU's first-use and owner-change faults).
pub fn traps() -> u64 {
    NM_TRAPS.load(Ordering::Relaxed)
}

/// True when lazy FPU switching is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// This CPU's owner thread (0 for none).
pub fn owner() -> usize {
    mine().thread.load(Ordering::Relaxed)
}

/// CR0.TS as the kernel last set it on this CPU.
pub fn ts_set() -> bool {
    mine().ts_set.load(Ordering::Relaxed)
}

fn write_ts(on: bool) {
    // SAFETY: TS only makes FPU/SSE instructions raise #NM; the kernel executes none, and
    // ring 3 gets them back through `claim`.
    unsafe {
        Cr0::update(|c| c.set(Cr0Flags::TASK_SWITCHED, on));
    }
    mine().ts_set.store(on, Ordering::Relaxed);
}

/// Per-CPU setup: the lazy policy when the CPU has FXSR and SSE, else FPU/SSE off in ring 3.
pub fn init_cpu() -> bool {
    let f = cpu::features();
    let on = f.fxsr && f.sse;
    // SAFETY: the kernel is soft-float (x86_64-unknown-none: no x87/SSE instructions are
    // generated), so none of these bits changes anything for kernel code; OSFXSR/OSXMMEXCPT are
    // set only when CPUID reported FXSR and SSE.
    unsafe {
        if on {
            Cr0::update(|c| {
                c.remove(Cr0Flags::EMULATE_COPROCESSOR);
                c.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            });
            Cr4::update(|c| {
                c.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
                c.remove(Cr4Flags::OSXSAVE);
            });
        } else {
            Cr0::update(|c| {
                c.insert(Cr0Flags::EMULATE_COPROCESSOR);
                c.remove(Cr0Flags::TASK_SWITCHED | Cr0Flags::MONITOR_COPROCESSOR);
            });
            Cr4::update(|c| {
                c.remove(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE | Cr4Flags::OSXSAVE)
            });
        }
    }
    mine().ts_set.store(on, Ordering::Relaxed);
    ENABLED.store(on, Ordering::Relaxed);
    on
}

/// Context switch hook: `next` (`Arc::as_ptr` of the next thread) runs with TS clear only if
/// it owns this CPU's FPU.
#[inline(always)]
pub fn switch_to(next: usize) {
    let me = mine();
    let want = next != me.thread.load(Ordering::Relaxed);
    if want != me.ts_set.load(Ordering::Relaxed) && ENABLED.load(Ordering::Relaxed) {
        write_ts(want);
    }
}

/// #NM from ring 3 by thread `me`, whose area is `area`: make it this CPU's owner with its
/// registers loaded. If another CPU still holds its registers (it ran there last), that CPU
/// saves them first (a remote call). Interrupts are off, the big kernel lock is held.
///
/// # Safety
/// `area` must stay valid until [`release`]`(me)` is called (the thread's exit), and `me` must be
/// the running thread.
pub unsafe fn claim(me: usize, area: &FxArea) {
    NM_TRAPS.fetch_add(1, Ordering::Relaxed);
    let elsewhere = OWNERS
        .iter()
        .enumerate()
        .filter(|(_, o)| o.thread.load(Ordering::Relaxed) == me)
        .fold(0u64, |m, (i, _)| m | 1 << i);
    let mine_bit = 1u64 << super::cpu::cpu_id();
    if elsewhere & !mine_bit != 0 {
        super::smp::call_many(
            elsewhere & !mine_bit,
            super::smp::Call::FpuSave { thread: me },
        );
    }
    write_ts(false);
    let slot = mine();
    let owner = slot.thread.load(Ordering::Relaxed);
    if owner == me {
        return;
    }
    if owner != 0 {
        save(slot);
    }
    let p = area.0.get().cast::<u8>();
    // SAFETY: a 16-aligned 512-byte image made by `FxArea::new` (valid MXCSR) or by
    // `fxsave64`; TS is clear, OSFXSR is on.
    unsafe { core::arch::asm!("fxrstor64 [{0}]", in(reg) p, options(nostack, readonly)) };
    slot.area.store(p as usize, Ordering::Relaxed);
    slot.thread.store(me, Ordering::Relaxed);
}

/// Saves this CPU's owner's registers into its area (TS must be clear).
fn save(slot: &Owner) {
    let prev = slot.area.load(Ordering::Relaxed) as *mut u8;
    if prev.is_null() {
        return;
    }
    // SAFETY: the owner's area is alive until its thread calls `release`, which clears the
    // owner; it is 512 bytes, 16-aligned (`FxArea`), and the caller cleared TS.
    unsafe { core::arch::asm!("fxsave64 [{0}]", in(reg) prev, options(nostack)) };
}

/// A remote call: if this CPU holds `thread`'s registers, save them and give up ownership
/// (the thread is about to use the FPU on another CPU).
pub fn save_if_owner(thread: usize) {
    let slot = mine();
    if thread == 0 || slot.thread.load(Ordering::Relaxed) != thread {
        return;
    }
    let ts = slot.ts_set.load(Ordering::Relaxed);
    if ts {
        write_ts(false);
    }
    save(slot);
    slot.thread.store(0, Ordering::Relaxed);
    slot.area.store(0, Ordering::Relaxed);
    // Whatever runs here now does not own the FPU any more.
    write_ts(true);
}

/// Thread `me` is ending (or being freed): no CPU holds its registers any more (they are
/// dropped). Another CPU's entry is only cleared here when `me` cannot be running there (it
/// is exiting on this CPU or already dead), so that CPU's TS is already set for its thread.
pub fn release(me: usize) {
    for (i, slot) in OWNERS.iter().enumerate() {
        if slot.thread.load(Ordering::Relaxed) != me {
            continue;
        }
        slot.thread.store(0, Ordering::Relaxed);
        slot.area.store(0, Ordering::Relaxed);
        if i == super::cpu::cpu_id() as usize
            && ENABLED.load(Ordering::Relaxed)
            && !slot.ts_set.load(Ordering::Relaxed)
        {
            write_ts(true);
        }
    }
}
