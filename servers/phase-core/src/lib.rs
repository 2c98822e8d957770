//! The HSYNC phase engine: deterministic, branchless integer arithmetic on a 64-bit phase.
//!
//! What it is, plainly:
//!
//! - [`Phase`]: a 64-bit fixed-point fraction of a turn (`2^64` = one turn), advanced per step by
//!   [`GOLDEN_STEP`] = ⌊2^64/φ⌋ (a Weyl sequence, full period `2^64`, evenly spread phases).
//! - [`transform`] / [`inverse`]: a bijection of 64-bit words keyed by the phase, with its exact
//!   inverse; [`transform_words`] / [`inverse_words`] apply them to a stream, one step per word.
//!   It loses no information (every output has exactly one input). It is a mixer, **not a
//!   cipher**: the key is the phase, which is public and predictable.
//! - [`sine`] / [`triangle`]: fixed-point waveforms of a phase (amplitude [`WAVE_ONE`]) for the
//!   HSYNC-Wave visualizer; the sine's error bound is measured by a host test.
//!
//! Every function is straight-line code on registers: no branch and no memory access depends on
//! the data or the phase (loops run over a slice's length only; there are no lookup tables). The
//! tests back this with instruction counts under callgrind (`tests/constant_time.rs`), and
//! `cargo xtask bench` reports a dudect-style timing t-statistic (`examples/phase_bench.rs`).
//! See `docs/phase-core.md` for the measured figures.
//!
//! This crate refuses: `unsafe`, allocation, floating point, global state and I/O.
#![no_std]
#![forbid(unsafe_code)]

mod phase;
mod transform;
mod wave;

pub use phase::{GOLDEN_STEP, Phase};
pub use transform::{inverse, inverse_words, transform, transform_words};
pub use wave::{SINE_MAX_ERROR, WAVE_ONE, cosine, sine, triangle};

/// A tiny xorshift64* generator shared by the unit tests (no dependency, deterministic seeds).
#[cfg(test)]
pub(crate) struct TestRng(u64);

#[cfg(test)]
impl TestRng {
    pub(crate) fn new(seed: u64) -> Self {
        TestRng(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
