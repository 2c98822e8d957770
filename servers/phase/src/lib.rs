//! The `phase` server's arithmetic, free of system calls so it is tested on the host: the
//! visualizer's samples of the engine's waveform, the steps-per-second rate, and the
//! dudect-style timing statistic the server measures in the guest for the wave readout.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

use hsync_phase_core::{Phase, WAVE_ONE, sine};

/// Samples the visualizer sends per frame (at most `hsync_vga_api::MAX_WAVE_SAMPLES`).
pub const WAVE_SAMPLES: usize = 240;
/// The display phase spans two turns across a frame.
pub const FRAME_TURNS: u64 = 2;

/// The sine of the display phase at `WAVE_SAMPLES` points over [`FRAME_TURNS`] turns from
/// `at`, as `i16` (+1.0 = 32767), little-endian bytes: one `wave` frame.
pub fn wave_frame(at: Phase, out: &mut [u8; WAVE_SAMPLES * 2]) {
    // Raw phase per sample: FRAME_TURNS turns over WAVE_SAMPLES - 1 steps.
    let per = (u64::MAX / (WAVE_SAMPLES as u64 - 1)).wrapping_mul(FRAME_TURNS);
    for (i, s) in out.chunks_exact_mut(2).enumerate() {
        let p = at.offset(Phase::new((i as u64).wrapping_mul(per)));
        let v = (i64::from(sine(p)) * 32767 / i64::from(WAVE_ONE)).clamp(-32767, 32767);
        s.copy_from_slice(&(v as i16).to_le_bytes());
    }
}

/// Steps per second between two readings of the step counter `ns` nanoseconds apart.
pub fn rate(before: u64, after: u64, ns: u64) -> u64 {
    if ns == 0 {
        return 0;
    }
    (u128::from(after.saturating_sub(before)) * 1_000_000_000 / u128::from(ns)) as u64
}

/// Words per timed batch in [`dudect`].
pub const BATCH: usize = 32;

/// What a [`dudect`] run found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leakage {
    /// |t| of Welch's test between the two classes, x100 (after cropping).
    pub t_x100: u64,
    /// Samples kept after cropping.
    pub kept: u64,
    /// Mean timer ticks per word over the kept samples, x100.
    pub per_word_x100: u64,
}

/// xorshift64: inputs for the random class (not a secret, just varied data).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Mean and variance of one class (Welford).
#[derive(Default, Clone, Copy)]
struct Moments {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    fn var(&self) -> f64 {
        if self.n > 1.0 {
            self.m2 / (self.n - 1.0)
        } else {
            0.0
        }
    }
}

/// Square root by Newton's method (`core` has no `f64::sqrt` on this target).
fn sqrt(x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let mut r = if x > 1.0 { x / 2.0 } else { 1.0 };
    for _ in 0..64 {
        let next = (r + x / r) / 2.0;
        if next == r {
            break;
        }
        r = next;
    }
    r
}

/// Welch's t between two classes (0 when either has fewer than two samples or no variance).
fn welch(a: &Moments, b: &Moments) -> f64 {
    let se = sqrt(a.var() / a.n + b.var() / b.n);
    if a.n < 2.0 || b.n < 2.0 || se == 0.0 {
        0.0
    } else {
        (a.mean - b.mean) / se
    }
}

/// A dudect-style leakage test (Reparaz, Balasch, Verbauwhede 2017) of `time`, which runs the
/// code under test on a prepared batch and returns how long it took (timer ticks). Class 0 is
/// a fixed input (all-zero words at phase 0), class 1 random words at a random phase; classes
/// are drawn at random per sample and inputs prepared before timing. Samples above the 90th
/// percentile are cropped (interrupts and preemption land there), then Welch's t is taken
/// between the classes. `None` with fewer than 100 samples.
pub fn dudect(
    samples: usize,
    seed: u64,
    mut time: impl FnMut(&mut [u64; BATCH], Phase) -> u64,
) -> Option<Leakage> {
    if samples < 100 {
        return None;
    }
    let mut rng = Rng(seed | 1);
    let mut timings: Vec<(u8, u64)> = Vec::with_capacity(samples);
    for _ in 0..samples {
        let class = (rng.next() >> 63) as u8;
        // Both classes draw the same random numbers (the same work before timing); class 0
        // then masks them to zero.
        let keep = u64::from(class).wrapping_neg();
        let mut words: [u64; BATCH] = core::array::from_fn(|_| rng.next() & keep);
        let phase = Phase::new(rng.next() & keep);
        let t = time(&mut words, phase);
        timings.push((class, t));
    }
    let mut sorted: Vec<u64> = timings.iter().map(|t| t.1).collect();
    sorted.sort_unstable();
    let crop = sorted[sorted.len() * 9 / 10];
    let mut m = [Moments::default(); 2];
    let (mut kept, mut total) = (0u64, 0u128);
    for &(class, t) in timings.iter().filter(|t| t.1 <= crop) {
        m[usize::from(class)].push(t as f64);
        kept += 1;
        total += u128::from(t);
    }
    let t = welch(&m[0], &m[1]);
    let t = if t < 0.0 { -t } else { t };
    Some(Leakage {
        t_x100: (t * 100.0) as u64,
        kept,
        per_word_x100: (total * 100 / u128::from(kept.max(1)) / BATCH as u128) as u64,
    })
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn a_frame_is_two_periods_of_the_sine() {
        let mut f = [0u8; WAVE_SAMPLES * 2];
        wave_frame(Phase::ZERO, &mut f);
        let s: std::vec::Vec<i16> = f
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert!(s[0].abs() < 100, "sin 0 = {}", s[0]);
        let max = *s.iter().max().unwrap();
        let min = *s.iter().min().unwrap();
        assert!(max > 32000 && min < -32000, "{min}..{max}");
        // Two periods: the sign changes four times (rising and falling twice).
        let changes = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        assert!((3..=5).contains(&changes), "{changes} sign changes");
        // A later display phase moves the picture.
        let mut g = [0u8; WAVE_SAMPLES * 2];
        wave_frame(Phase::new(1 << 60), &mut g);
        assert_ne!(f, g);
    }

    #[test]
    fn rates() {
        assert_eq!(rate(100, 600, 500_000_000), 1000);
        assert_eq!(rate(5, 5, 1_000_000_000), 0);
        assert_eq!(
            rate(9, 5, 1),
            0,
            "a counter that went back (restart) reads 0"
        );
        assert_eq!(rate(0, 1, 0), 0);
    }

    #[test]
    fn dudect_sees_no_leak_in_constant_time_and_a_leak_in_a_branchy_loop() {
        // A constant cost: |t| near 0.
        let flat = dudect(4000, 7, |_, _| 1000).unwrap();
        assert_eq!(flat.t_x100, 0);
        assert_eq!(flat.per_word_x100, 1000 * 100 / 32);
        // A cost that depends on the data (set bits): a large |t|.
        let leaky = dudect(4000, 7, |w, _| {
            1000 + w.iter().map(|x| u64::from(x.count_ones())).sum::<u64>()
        })
        .unwrap();
        assert!(leaky.t_x100 > 450 * 10, "t = {}", leaky.t_x100);
        assert!(leaky.kept >= 3600 && leaky.kept <= 4000);
        assert!(dudect(10, 1, |_, _| 0).is_none());
        assert!((sqrt(2.0) - core::f64::consts::SQRT_2).abs() < 1e-12);
    }
}
