//! Time since boot from the TSC, calibrated once against the PIT.
//!
//! The PIT (channel 2, gated through port 0x61 so no interrupt is involved) counts a known
//! 10 ms while we read the TSC at both ends. Until calibration, timestamps are 0. Without an
//! invariant TSC the rate may drift with power states; we log that and use it anyway — it only
//! drives log timestamps until the APIC timer arrives.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

/// PIT input clock.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 10 ms worth of PIT ticks.
const PIT_TICKS: u16 = 11_932;
/// Give up if the PIT never fires (no legacy PIT): in TSC reads, far more than 10 ms anywhere.
const MAX_POLLS: u64 = 50_000_000;

static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
/// TSC ticks per second; 0 = not calibrated.
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    #[allow(unused_unsafe, reason = "`_rdtsc` is safe on newer toolchains only")]
    // SAFETY: RDTSC is available on every x86_64 CPU and CR4.TSD is clear in ring 0.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// Remembers the TSC at kernel entry: time 0.
pub fn mark_boot() {
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
}

/// Measures the TSC rate against PIT channel 2. Returns the rate, or `None` without a PIT.
pub fn calibrate() -> Option<u64> {
    let mut gate = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: ports 0x42/0x43/0x61 are the PIT and its gate/speaker control; the kernel owns
    // them (no driver uses the PIT), and the speaker output stays disabled (bit 1 clear).
    let (t0, t1, fired) = unsafe {
        let g = gate.read();
        gate.write((g & !0x02) & !0x01); // gate low: hold the counter
        cmd.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0 (terminal count), binary
        ch2.write(PIT_TICKS as u8);
        ch2.write((PIT_TICKS >> 8) as u8);
        gate.write((g & !0x02) | 0x01); // gate high: start counting
        let t0 = rdtsc();
        let mut polls = 0;
        // OUT2 (bit 5) goes high at terminal count.
        while gate.read() & 0x20 == 0 && polls < MAX_POLLS {
            polls += 1;
        }
        (t0, rdtsc(), polls < MAX_POLLS)
    };
    if !fired || t1 <= t0 {
        return None;
    }
    let hz = (t1 - t0) * PIT_HZ / u64::from(PIT_TICKS);
    TSC_HZ.store(hz, Ordering::Relaxed);
    Some(hz)
}

/// TSC ticks per second, if calibrated.
pub fn tsc_hz() -> Option<u64> {
    match TSC_HZ.load(Ordering::Relaxed) {
        0 => None,
        hz => Some(hz),
    }
}

/// The largest value [`uptime_ns`] returned on any CPU.
static LAST_NS: AtomicU64 = AtomicU64::new(0);

/// Nanoseconds since kernel entry; 0 before calibration. Monotonic across CPUs: each CPU's
/// TSC is corrected by its offset from CPU 0 (measured at boot, `smp.rs`), and no CPU ever
/// returns less than the largest value any CPU returned before.
pub fn uptime_ns() -> u64 {
    let Some(hz) = tsc_hz() else { return 0 };
    let offset = super::smp::tsc_offset(super::cpu::cpu_id() as usize);
    let tsc = rdtsc().wrapping_sub(offset as u64);
    let ticks = tsc.saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    let ns = (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64;
    ns.max(LAST_NS.fetch_max(ns, Ordering::Relaxed))
}
