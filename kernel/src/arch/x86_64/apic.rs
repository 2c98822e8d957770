//! The local APIC: mode selection (x2APIC when CPUID has it, else xAPIC through MMIO), each
//! CPU's enable ([`init`], on every CPU), the periodic scheduler timer calibrated once against
//! the TSC and programmed per CPU, EOI, IPIs (fixed, INIT, STARTUP, NMI to all others), and the
//! spurious/error vectors.
//!
//! Own small driver rather than the `x2apic` crate (why: docs/smp.md, "LAPIC"). The APIC is
//! stateless apart from a global mode (the same on every CPU), and each register access is one
//! `wrmsr`/`rdmsr` (x2APIC: MSR `0x800 + offset / 16`) or one volatile MMIO access (xAPIC:
//! base + offset; each CPU sees its own LAPIC at the same address).
//!
//! Vectors: [`TIMER_VECTOR`] = 0x30 (first free vector above the masked PICs' 0x20..0x2f),
//! [`ERROR_VECTOR`] = 0xfe, [`SPURIOUS_VECTOR`] = 0xff (its low nibble must be all ones on old
//! xAPICs; spurious interrupts get no EOI).

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;
use x86_64::registers::model_specific::Msr;

use super::{cpu, time};

/// The scheduler tick.
pub const TIMER_VECTOR: u64 = 0x30;
/// APIC internal errors.
pub const ERROR_VECTOR: u64 = 0xfe;
/// Spurious interrupts (no EOI).
pub const SPURIOUS_VECTOR: u64 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const APIC_BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

// Register offsets (xAPIC MMIO layout; x2APIC MSR = 0x800 + offset >> 4).
const REG_ID: u32 = 0x20;
const REG_TPR: u32 = 0x80;
const REG_EOI: u32 = 0xb0;
const REG_SVR: u32 = 0xf0;
const REG_ESR: u32 = 0x280;
const REG_LVT_TIMER: u32 = 0x320;
const REG_LVT_LINT0: u32 = 0x350;
const REG_LVT_LINT1: u32 = 0x360;
const REG_LVT_ERROR: u32 = 0x370;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3e0;

const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
/// Divide configuration value for "divide by 16".
const DIVIDE_BY_16: u32 = 0b0011;

/// How long the timer calibration counts, in TSC time.
const CALIBRATION_NS: u64 = 10_000_000;

/// Which programming interface the local APIC is used through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// x2APIC: registers are MSRs.
    X2Apic,
    /// xAPIC: registers are MMIO at this (uncached) kernel virtual address.
    XApic { base: u64 },
}

static MODE: Once<Mode> = Once::new();
/// APIC timer input ticks per second (after the divide-by-16), once calibrated.
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);
/// The period the timer was last started with (0 = not running).
static PERIOD_NS: AtomicU64 = AtomicU64::new(0);

/// The mode in use, once [`init`] ran.
pub fn mode() -> Option<Mode> {
    MODE.get().copied()
}

/// Calibrated timer frequency (input ticks per second after the divider), if started.
pub fn timer_hz() -> Option<u64> {
    match TIMER_HZ.load(Ordering::Relaxed) {
        0 => None,
        hz => Some(hz),
    }
}

/// The period the timer runs at (0 = not started).
pub fn period_ns() -> u64 {
    PERIOD_NS.load(Ordering::Relaxed)
}

/// The raw IA32_APIC_BASE MSR.
pub fn base_msr() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU (all have a local APIC); reading it has
    // no side effects.
    unsafe { Msr::new(IA32_APIC_BASE).read() }
}

fn read(reg: u32) -> u32 {
    match MODE.get() {
        // SAFETY: x2APIC mode is enabled (so MSRs 0x800..0x8ff exist) and every offset used
        // here names a readable register.
        Some(Mode::X2Apic) => unsafe { Msr::new(0x800 + (reg >> 4)).read() as u32 },
        // SAFETY: `base` maps the 4 KiB register page uncached; registers are 32-bit aligned.
        Some(&Mode::XApic { base }) => unsafe {
            core::ptr::read_volatile((base + u64::from(reg)) as *const u32)
        },
        None => 0,
    }
}

fn write(reg: u32, value: u32) {
    match MODE.get() {
        // SAFETY: as in `read`; the registers written here are the writable ones, and writing
        // them only affects this CPU's interrupt delivery, which this module owns.
        Some(Mode::X2Apic) => unsafe { Msr::new(0x800 + (reg >> 4)).write(u64::from(value)) },
        // SAFETY: as in `read`.
        Some(&Mode::XApic { base }) => unsafe {
            core::ptr::write_volatile((base + u64::from(reg)) as *mut u32, value)
        },
        None => {}
    }
}

/// Chooses the mode once (x2APIC if CPUID has it, else xAPIC, its page mapped uncached).
fn choose_mode() -> Option<Mode> {
    if let Some(m) = mode() {
        return Some(m);
    }
    let mode = if cpu::features().x2apic {
        Mode::X2Apic
    } else {
        let phys = base_msr() & APIC_BASE_ADDR_MASK;
        let Ok(virt) = crate::mm::map_physical(phys, 4096, crate::mm::Cache::Uncached) else {
            log::error!(target: "apic", "cannot map the xAPIC registers at {phys:#x}");
            return None;
        };
        Mode::XApic {
            base: virt.as_u64(),
        }
    };
    Some(*MODE.call_once(|| mode))
}

/// Enables the calling CPU's local APIC in the kernel's mode (chosen on the first call: x2APIC
/// if CPUID has it, else xAPIC through MMIO), masks LINT0/LINT1 and the timer, routes errors
/// and spurious interrupts, accepts every priority and records the APIC id in the per-CPU
/// block. Runs on every CPU once. Returns the mode, or `None` if the xAPIC page can't be mapped.
pub fn init() -> Option<Mode> {
    let mode = choose_mode()?;
    let msr = base_msr();
    // SAFETY: the architected path is disabled → xAPIC (EN) → x2APIC (EN + EXTD); going
    // straight from disabled to x2APIC would #GP, hence two writes when the firmware left the
    // APIC disabled. x2APIC is only chosen when CPUID reports it. Interrupts are off.
    unsafe {
        let mut apic_base = Msr::new(IA32_APIC_BASE);
        if msr & APIC_BASE_ENABLE == 0 {
            apic_base.write(msr | APIC_BASE_ENABLE);
        }
        if mode == Mode::X2Apic && msr & APIC_BASE_X2APIC == 0 {
            apic_base.write(msr | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
        }
    }
    write(REG_TPR, 0);
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_LVT_LINT1, LVT_MASKED);
    write(REG_LVT_ERROR, ERROR_VECTOR as u32);
    write(REG_SVR, SVR_ENABLE | SPURIOUS_VECTOR as u32);
    // Writing the ESR latches and clears old errors.
    write(REG_ESR, 0);
    let id = read_id();
    super::percpu::cpu_local().set_apic_id(id);
    log::debug!(target: "apic", "cpu{}: local APIC id {id} in {} mode", super::cpu::cpu_id(), mode_name(mode));
    Some(mode)
}

fn read_id() -> u32 {
    match MODE.get() {
        Some(Mode::X2Apic) => read(REG_ID),
        Some(Mode::XApic { .. }) => read(REG_ID) >> 24,
        None => 0,
    }
}

/// `"x2APIC"` or `"xAPIC"`.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::X2Apic => "x2APIC",
        Mode::XApic { .. } => "xAPIC (MMIO)",
    }
}

/// Measures the timer input rate against the TSC (the timer counts down one-shot, masked, for
/// [`CALIBRATION_NS`]). Returns ticks per second after the divide-by-16, or `None` without a
/// calibrated TSC or when the timer did not count.
fn calibrate() -> Option<u64> {
    let tsc_hz = time::tsc_hz()?;
    let wait = tsc_hz * CALIBRATION_NS / 1_000_000_000;
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    write(REG_TIMER_INITIAL, u32::MAX);
    let t0 = time::rdtsc();
    while time::rdtsc().wrapping_sub(t0) < wait {
        core::hint::spin_loop();
    }
    let remaining = read(REG_TIMER_CURRENT);
    let t1 = time::rdtsc();
    write(REG_TIMER_INITIAL, 0);
    let counted = u64::from(u32::MAX - remaining);
    let elapsed = t1.wrapping_sub(t0);
    if counted == 0 || elapsed == 0 {
        return None;
    }
    Some((u128::from(counted) * u128::from(tsc_hz) / u128::from(elapsed)) as u64)
}

/// Starts (or restarts) the periodic timer on this CPU at `period_ns`. Returns false if the
/// APIC or the calibration is unavailable.
pub fn start_timer(period_ns: u64) -> bool {
    if mode().is_none() {
        return false;
    }
    let hz = match timer_hz() {
        Some(hz) => hz,
        None => match calibrate() {
            Some(hz) => {
                TIMER_HZ.store(hz, Ordering::Relaxed);
                hz
            }
            None => {
                log::error!(target: "apic", "APIC timer calibration failed; no scheduler tick");
                return false;
            }
        },
    };
    let count = (u128::from(hz) * u128::from(period_ns) / 1_000_000_000).clamp(1, u32::MAX.into());
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR as u32);
    write(REG_TIMER_INITIAL, count as u32);
    let previous = PERIOD_NS.swap(period_ns, Ordering::Relaxed);
    if previous != period_ns {
        log::info!(
            target: "apic",
            "timer: {} mode, {}.{:03} MHz input (TSC-calibrated, /16), period {} us ({count} counts), vector {TIMER_VECTOR:#x}",
            mode().map_or("?", mode_name),
            hz / 1_000_000,
            hz / 1000 % 1000,
            period_ns / 1000,
        );
    }
    true
}

// The interrupt command register (xAPIC: high half = destination in bits 24..31, written
// first; the low half's write sends. x2APIC: one 64-bit MSR with a 32-bit destination).
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const ICR_PENDING: u32 = 1 << 12;
const ICR_ASSERT: u32 = 1 << 14;
const DELIVERY_NMI: u32 = 0b100 << 8;
const DELIVERY_INIT: u32 = 0b101 << 8;
const DELIVERY_STARTUP: u32 = 0b110 << 8;
/// Destination shorthand "all excluding self".
const ALL_BUT_SELF: u32 = 0b11 << 18;

fn send_icr(dest: u32, low: u32) {
    match MODE.get() {
        // SAFETY: x2APIC mode: MSR 0x830 is the ICR; writing it sends one IPI, which is what
        // every caller wants.
        Some(Mode::X2Apic) => unsafe {
            Msr::new(0x830).write(u64::from(dest) << 32 | u64::from(low))
        },
        Some(Mode::XApic { .. }) => {
            // Wait for a previous IPI to leave (the delivery status bit clears).
            let mut spins = 0u32;
            while read(REG_ICR_LOW) & ICR_PENDING != 0 && spins < 1_000_000 {
                spins += 1;
                core::hint::spin_loop();
            }
            write(REG_ICR_HIGH, dest << 24);
            write(REG_ICR_LOW, low);
        }
        None => {}
    }
}

/// Sends a fixed interrupt `vector` to the CPU with APIC id `dest`.
#[allow(
    dead_code,
    reason = "the reschedule and remote-call IPIs of docs/smp.md use it next"
)]
pub fn send_ipi(dest: u32, vector: u8) {
    send_icr(dest, ICR_ASSERT | u32::from(vector));
}

/// Sends INIT to `dest` (the first step of starting an AP).
pub fn send_init(dest: u32) {
    send_icr(dest, ICR_ASSERT | DELIVERY_INIT);
}

/// Sends a STARTUP IPI to `dest`: it starts in real mode at `page << 12`.
pub fn send_startup(dest: u32, page: u8) {
    send_icr(dest, ICR_ASSERT | DELIVERY_STARTUP | u32::from(page));
}

/// Sends an NMI to every other CPU (the panic path's stop).
pub fn nmi_others() {
    send_icr(0, ICR_ASSERT | DELIVERY_NMI | ALL_BUT_SELF);
}

/// Stops this CPU's timer (masked, count 0) until the next [`start_timer`].
pub fn stop_timer() {
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    write(REG_TIMER_INITIAL, 0);
}

/// Signals end of interrupt for the in-service APIC interrupt.
#[inline]
pub fn eoi() {
    write(REG_EOI, 0);
}

/// Reads and clears the error status register (for the error vector).
pub fn take_errors() -> u32 {
    write(REG_ESR, 0);
    read(REG_ESR)
}
