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

/// The display and its wave frame timing, as the vga server reports it (`frame_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Display {
    /// `true` on a framebuffer, `false` in text mode.
    pub framebuffer: bool,
    /// Size in pixels (framebuffer) or cells (text mode).
    pub width: u32,
    /// Height, likewise.
    pub height: u32,
    /// Wave frames drawn since vga started.
    pub frames: u64,
    /// Render + present time of one frame over the kept frames: median, p99, min (ns).
    pub median_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Minimum.
    pub min_ns: u64,
    /// Frames per second x1000 over the kept frames.
    pub fps_milli: u64,
    /// Bytes the last frame copied to the framebuffer (0 in text mode: cells are stored
    /// straight into the text buffer).
    pub frame_bytes: u64,
    /// Frames the figures are over.
    pub kept: u64,
}

/// `display`: one line for the mode, one for the frame times (the line `cargo xtask bench`
/// reads: `display: frames=N median_ns=.. p99_ns=.. min_ns=.. fps_milli=.. frame_bytes=..
/// kept=..`).
pub fn display(w: &mut impl Write, d: &Display) -> fmt::Result {
    let unit = if d.framebuffer { "pixels" } else { "cells" };
    writeln!(
        w,
        "display: {} {}x{} {unit}",
        if d.framebuffer {
            "framebuffer"
        } else {
            "text mode"
        },
        d.width,
        d.height
    )?;
    writeln!(
        w,
        "display: frames={} median_ns={} p99_ns={} min_ns={} fps_milli={} frame_bytes={} kept={}",
        d.frames, d.median_ns, d.p99_ns, d.min_ns, d.fps_milli, d.frame_bytes, d.kept
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
    fn display_report() {
        let mut s = String::new();
        display(
            &mut s,
            &Display {
                framebuffer: true,
                width: 1024,
                height: 768,
                frames: 5,
                median_ns: 1000,
                p99_ns: 2000,
                min_ns: 900,
                fps_milli: 20_000,
                frame_bytes: 4096,
                kept: 5,
            },
        )
        .unwrap();
        assert_eq!(
            s,
            "display: framebuffer 1024x768 pixels\n\
             display: frames=5 median_ns=1000 p99_ns=2000 min_ns=900 fps_milli=20000 \
             frame_bytes=4096 kept=5\n"
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
