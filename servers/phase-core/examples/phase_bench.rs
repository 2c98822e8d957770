//! Host timing evidence for the phase engine, printed as `[bench] name=... unit=... value=...`
//! lines that `cargo xtask bench` collects (run alone with
//! `cargo run --release -p hsync-phase-core --example phase_bench`).
//!
//! - `phase.dudect_t`: a dudect-style leakage test (Reparaz, Balasch, Verbauwhede 2017) of
//!   `transform_words` on 32-word batches: class 0 is a fixed input (all-zero words, phase 0),
//!   class 1 random words at a random phase; classes interleaved at random, inputs prepared
//!   before timing. Welch's t is computed on the raw timings and on timings cropped at dudect's
//!   upper percentiles; the figure is the largest |t| of those tests. |t| < 4.5 is dudect's
//!   "no leakage detected" threshold. A figure, never an assertion.
//! - `phase.dudect_t.leaky_control`: the same harness on a bit-count loop (data-dependent), to show
//!   the harness detects a leak on this machine.
//! - `phase.transform_gbps`, `phase.inverse_gbps`: stream throughput over a 64 KiB buffer
//!   (median of 21 runs), in 10^9 bytes per second.

use std::hint::black_box;
use std::time::Instant;

use hsync_phase_core::{Phase, inverse_words, transform_words};

const BATCH: usize = 32;
const SAMPLES: usize = 1_000_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Welford accumulator for one class.
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

/// Welch's t statistic between two classes (0 when either is too small).
fn welch(a: &Moments, b: &Moments) -> f64 {
    let se = (a.var() / a.n + b.var() / b.n).sqrt();
    if a.n < 100.0 || b.n < 100.0 || se == 0.0 {
        0.0
    } else {
        (a.mean - b.mean) / se
    }
}

/// Times `f` on prepared inputs of two classes; returns (max |t|, samples kept).
fn dudect(mut f: impl FnMut(&mut [u64; BATCH], Phase), seed: u64) -> (f64, usize) {
    let mut rng = Rng(seed);
    let classes: Vec<u8> = (0..SAMPLES).map(|_| (rng.next() >> 63) as u8).collect();
    let inputs: Vec<([u64; BATCH], Phase)> = classes
        .iter()
        .map(|&c| {
            if c == 0 {
                ([0; BATCH], Phase::ZERO)
            } else {
                (core::array::from_fn(|_| rng.next()), Phase::new(rng.next()))
            }
        })
        .collect();
    let mut times = Vec::with_capacity(SAMPLES);
    for (words, phase) in &inputs {
        let mut buf = *words;
        let t0 = Instant::now();
        f(black_box(&mut buf), black_box(*phase));
        let dt = t0.elapsed().as_nanos() as f64;
        black_box(&buf);
        times.push(dt);
    }
    // Drop the first 10% as warm-up.
    let skip = SAMPLES / 10;
    let (classes, times) = (&classes[skip..], &times[skip..]);
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    // dudect's crop thresholds: percentile 1 − 0.5^(10·(i+1)/100) of all timings, i < 100
    // (every tenth of them here), plus the uncropped test.
    let mut limits = vec![f64::INFINITY];
    for i in (0..100).step_by(10) {
        let q = 1.0 - 0.5f64.powf(10.0 * (i + 1) as f64 / 100.0);
        let idx = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
        limits.push(sorted[idx]);
    }
    let mut worst = 0f64;
    for limit in limits {
        let mut m = [Moments::default(); 2];
        for (&c, &t) in classes.iter().zip(times) {
            if t <= limit {
                m[usize::from(c)].push(t);
            }
        }
        worst = worst.max(welch(&m[0], &m[1]).abs());
    }
    (worst, times.len())
}

/// Median GB/s of `f` over a 64 KiB buffer.
fn throughput(mut f: impl FnMut(&mut [u64]), seed: u64) -> f64 {
    let mut rng = Rng(seed);
    let mut buf: Vec<u64> = (0..8192).map(|_| rng.next()).collect();
    let bytes = (buf.len() * 8) as f64;
    for _ in 0..200 {
        f(&mut buf); // warm-up
    }
    let mut runs: Vec<f64> = (0..21)
        .map(|_| {
            let reps = 300;
            let t0 = Instant::now();
            for _ in 0..reps {
                f(black_box(&mut buf));
            }
            bytes * f64::from(reps) / t0.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn leaky(words: &mut [u64; BATCH], _: Phase) {
    let mut n = 0u64;
    for w in words.iter() {
        let mut x = *w;
        while x != 0 {
            x &= x - 1;
            n += 1;
        }
    }
    words[0] = n;
}

fn main() {
    let (t, kept) = dudect(
        |w, p| {
            transform_words(p, w);
        },
        0x00D0_DEC7,
    );
    println!(
        "[bench] name=phase.dudect_t unit=t value={t:.2} samples={kept} batch_words={BATCH} threshold=4.5"
    );
    let (t, kept) = dudect(leaky, 0x0C04_7801);
    println!(
        "[bench] name=phase.dudect_t.leaky_control unit=t value={t:.2} samples={kept} batch_words={BATCH}"
    );
    let mut p = Phase::ZERO;
    let g = throughput(|b| p = transform_words(p, b), 1);
    println!("[bench] name=phase.transform_gbps unit=GB/s value={g:.3} buffer_bytes=65536");
    let g = throughput(|b| p = inverse_words(p, b), 2);
    println!("[bench] name=phase.inverse_gbps unit=GB/s value={g:.3} buffer_bytes=65536");
}
