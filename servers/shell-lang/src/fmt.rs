//! The shell's output: plain-text reports written to any [`core::fmt::Write`] (the shell's
//! console writes them to serial and the display at once).

use core::fmt::{self, Write};

/// Bytes per physical frame.
const FRAME: u64 = 4096;

/// The counters `mem` prints (the kernel's `system_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mem {
    /// Free frames.
    pub free_frames: u64,
    /// Used frames.
    pub used_frames: u64,
    /// Frames the PMM manages.
    pub total_frames: u64,
    /// Live processes.
    pub processes: u64,
    /// Live threads.
    pub threads: u64,
    /// Live kernel objects.
    pub objects: u64,
}

/// A byte count in KiB, or MiB with one decimal when at least 10 MiB.
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = self.0 / 1024;
        if kib >= 10 * 1024 {
            let tenths = (self.0 / (1024 * 1024 / 10)) % 10;
            write!(f, "{}.{} MiB", kib / 1024, tenths)
        } else {
            write!(f, "{kib} KiB")
        }
    }
}

/// `mem`.
pub fn mem(w: &mut impl Write, m: &Mem) -> fmt::Result {
    writeln!(
        w,
        "memory: {} total, {} used, {} free ({} / {} / {} frames)",
        Size(m.total_frames.saturating_mul(FRAME)),
        Size(m.used_frames.saturating_mul(FRAME)),
        Size(m.free_frames.saturating_mul(FRAME)),
        m.total_frames,
        m.used_frames,
        m.free_frames
    )?;
    writeln!(
        w,
        "kernel: {} processes, {} threads, {} objects",
        m.processes, m.threads, m.objects
    )
}

/// The phase engine's state as `phase` prints it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseStatus {
    /// The raw 64-bit phase.
    pub phase: u64,
    /// Steps taken since the server started.
    pub steps: u64,
    /// Words transformed (forward + inverse).
    pub words: u64,
    /// The sine of the phase, Q30.
    pub sine: i32,
    /// Whether the visualizer is drawing.
    pub wave: bool,
    /// Whether telemetry is streaming.
    pub telemetry: bool,
}

/// `phase`. The phase is also shown in turns (thousandths), which a person can read.
pub fn phase(w: &mut impl Write, s: &PhaseStatus) -> fmt::Result {
    let milliturn = ((u128::from(s.phase) * 1000) >> 64) as u64;
    writeln!(
        w,
        "phase: {:#018x} (0.{:03} turn), sine {}, steps {}, words {}",
        s.phase,
        milliturn,
        Q30(s.sine),
        s.steps,
        s.words
    )?;
    writeln!(
        w,
        "wave: {}, telemetry: {}",
        on_off(s.wave),
        on_off(s.telemetry)
    )
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// A Q30 fixed-point value as a signed decimal with four places.
pub struct Q30(pub i32);

impl fmt::Display for Q30 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = i64::from(self.0);
        let sign = if v < 0 { "-" } else { "+" };
        let a = v.unsigned_abs();
        let whole = a >> 30;
        let frac = ((a & ((1 << 30) - 1)) * 10_000) >> 30;
        write!(f, "{sign}{whole}.{frac:04}")
    }
}

/// `bench`: `n` round trips took `ns` nanoseconds and `cycles` TSC ticks.
pub fn bench(w: &mut impl Write, n: u32, ns: u64, cycles: u64) -> fmt::Result {
    let n64 = u64::from(n.max(1));
    writeln!(
        w,
        "bench: {n} IPC round trips in {} us: {} ns, {} cycles per round trip",
        ns / 1000,
        ns / n64,
        cycles / n64
    )
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;

    use super::*;

    #[test]
    fn mem_report() {
        let mut s = String::new();
        mem(
            &mut s,
            &Mem {
                free_frames: 30_000,
                used_frames: 2_768,
                total_frames: 32_768,
                processes: 6,
                threads: 7,
                objects: 40,
            },
        )
        .unwrap();
        assert_eq!(
            s,
            "memory: 128.0 MiB total, 10.8 MiB used, 117.1 MiB free (32768 / 2768 / 30000 frames)\n\
             kernel: 6 processes, 7 threads, 40 objects\n"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(std::format!("{}", Size(4096)), "4 KiB");
        assert_eq!(std::format!("{}", Size(10 * 1024 * 1024)), "10.0 MiB");
        assert!(!std::format!("{}", Size(u64::MAX)).is_empty());
    }

    #[test]
    fn q30_values() {
        assert_eq!(std::format!("{}", Q30(1 << 30)), "+1.0000");
        assert_eq!(std::format!("{}", Q30(-(1 << 29))), "-0.5000");
        assert_eq!(std::format!("{}", Q30(0)), "+0.0000");
        assert_eq!(std::format!("{}", Q30(i32::MIN)), "-2.0000");
    }

    #[test]
    fn phase_report() {
        let mut s = String::new();
        phase(
            &mut s,
            &PhaseStatus {
                phase: 1 << 63,
                steps: 5,
                words: 64,
                sine: 0,
                wave: true,
                telemetry: false,
            },
        )
        .unwrap();
        assert_eq!(
            s,
            "phase: 0x8000000000000000 (0.500 turn), sine +0.0000, steps 5, words 64\n\
             wave: on, telemetry: off\n"
        );
    }

    #[test]
    fn bench_report_never_divides_by_zero() {
        let mut s = String::new();
        bench(&mut s, 0, 0, 0).unwrap();
        bench(&mut s, 1000, 2_000_000, 3_000_000).unwrap();
        assert!(
            s.ends_with("1000 IPC round trips in 2000 us: 2000 ns, 3000 cycles per round trip\n")
        );
    }
}
