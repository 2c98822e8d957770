//! Fixed-point waveforms of a phase: sine, cosine and triangle, branchless.
//!
//! Outputs are `i32` with amplitude [`WAVE_ONE`] = `2^30` (so `sine(QUARTER) ≈ WAVE_ONE`). Only the
//! phase's top 32 bits are used (a resolution of 2^-32 turn).
//!
//! Method: the phase is folded onto the first quarter turn with sign masks instead of branches —
//! `sin(−θ) = −sin θ` and `sin(π − θ) = sin θ` — giving `z ∈ [0, 1]` in Q30 (a quarter turn is
//! `z = 1`). The triangle is exactly `±z`. The sine evaluates an odd degree-7 polynomial
//! `z·(c1 + z²(c3 + z²(c5 + z²·c7)))` ≈ `sin(πz/2)`, its coefficients a least-squares fit on
//! Chebyshev nodes (rounded to Q30). Its maximum error is measured against `f64::sin` by the unit
//! test `sine_error_is_within_the_documented_bound` over 2^22 + 10^6 phases: see [`SINE_MAX_ERROR`].

use crate::phase::Phase;

/// The waveforms' amplitude: `1.0` in Q30.
pub const WAVE_ONE: i32 = 1 << 30;

/// The sine's documented error bound in units of 2^-30 (measured; the test enforces it).
pub const SINE_MAX_ERROR: i32 = 720;

/// Polynomial coefficients of `sin(πz/2)` in Q30 (c1, c3, c5, c7).
const C1: i64 = 1_686_624_950;
const C3: i64 = -693_528_462;
const C5: i64 = 85_303_417;
const C7: i64 = -4_658_781;

/// Folds `phase` into (magnitude `z` in Q30 on the quarter turn, sign mask: 0 or -1).
#[inline(always)]
const fn fold(phase: Phase) -> (i64, i64) {
    let x = (phase.raw() >> 32) as u32; // 0.32 turn
    // Second half turn → negate (sin(θ) = −sin(−θ)); `neg` is all ones there.
    let neg = 0u32.wrapping_sub(x >> 31);
    let a = ((x ^ neg).wrapping_sub(neg)) as i64; // |θ| in 0.32 turn, 0..=2^31
    // Reflect around the quarter turn: z = 2^30 − |a − 2^30| ∈ [0, 2^30].
    let d = a - (1 << 30);
    let m = d >> 63; // 0 or −1
    let z = (1 << 30) - ((d ^ m) - m);
    (z, neg as i32 as i64)
}

/// Applies a sign mask (0 or −1) to `v`.
#[inline(always)]
const fn signed(v: i64, mask: i64) -> i32 {
    ((v ^ mask) - mask) as i32
}

/// `sin(2π·phase)` in Q30 (amplitude [`WAVE_ONE`]), within [`SINE_MAX_ERROR`] of the true value.
#[inline]
#[must_use]
pub const fn sine(phase: Phase) -> i32 {
    let (z, sign) = fold(phase);
    let z2 = (z * z) >> 30;
    let mut r = C7;
    r = C5 + ((r * z2) >> 30);
    r = C3 + ((r * z2) >> 30);
    r = C1 + ((r * z2) >> 30);
    signed((r * z) >> 30, sign)
}

/// `cos(2π·phase)` in Q30: the sine a quarter turn later.
#[inline]
#[must_use]
pub const fn cosine(phase: Phase) -> i32 {
    sine(phase.offset(Phase::QUARTER))
}

/// A triangle wave in phase with [`sine`]: 0 at 0, [`WAVE_ONE`] at a quarter turn, 0 at a half,
/// −[`WAVE_ONE`] at three quarters. Exact: on the first quarter turn it equals the phase's top 32
/// bits (a quarter turn is `2^30` of them), and the other quarters are its reflections.
#[inline]
#[must_use]
pub const fn triangle(phase: Phase) -> i32 {
    let (z, sign) = fold(phase);
    signed(z, sign)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestRng;

    fn error_at(raw: u64) -> f64 {
        let turns = raw as f64 / 2f64.powi(64);
        let want = (core::f64::consts::TAU * turns).sin() * f64::from(WAVE_ONE);
        (f64::from(sine(Phase(raw))) - want).abs()
    }

    #[test]
    fn sine_error_is_within_the_documented_bound() {
        let mut worst = 0f64;
        let mut worst_at = 0;
        let mut rng = TestRng::new(31);
        let grid = (0..1u64 << 22).map(|k| k << 42);
        for raw in grid.chain((0..1_000_000).map(|_| rng.next())) {
            let e = error_at(raw);
            if e > worst {
                (worst, worst_at) = (e, raw);
            }
        }
        extern crate std;
        std::eprintln!(
            "sine: max error {worst:.1} / 2^30 = {:.3e} at phase {worst_at:#x}",
            worst / f64::from(WAVE_ONE)
        );
        assert!(
            worst <= f64::from(SINE_MAX_ERROR),
            "max error {worst} > {SINE_MAX_ERROR}"
        );
        // The bound is not loose by more than a few percent either (keeps the doc honest).
        assert!(
            worst > f64::from(SINE_MAX_ERROR) * 0.9,
            "bound too loose: {worst}"
        );
    }

    #[test]
    fn sine_and_cosine_hit_the_cardinal_points_and_stay_in_range() {
        assert_eq!(sine(Phase::ZERO), 0);
        assert_eq!(sine(Phase::HALF), 0);
        let q = sine(Phase::QUARTER);
        assert!(
            q <= WAVE_ONE && WAVE_ONE - q <= SINE_MAX_ERROR,
            "sin 90° = {q}"
        );
        assert_eq!(sine(Phase(3 << 62)), -q);
        assert_eq!(cosine(Phase::ZERO), q);
        let mut rng = TestRng::new(41);
        for _ in 0..100_000 {
            let p = Phase(rng.next());
            let s = sine(p);
            assert!((-WAVE_ONE..=WAVE_ONE).contains(&s));
            // Odd symmetry holds exactly on the 0.32 grid that the sine reads.
            let g = Phase(p.raw() & !0xFFFF_FFFF);
            assert_eq!(sine(Phase(g.raw().wrapping_neg())), -sine(g));
        }
    }

    #[test]
    fn triangle_is_exact_at_known_points() {
        let t = |turn_num: u64, den: u64| {
            triangle(Phase(
                (u128::from(turn_num) * (1u128 << 64) / u128::from(den)) as u64,
            ))
        };
        assert_eq!(t(0, 1), 0);
        assert_eq!(t(1, 4), WAVE_ONE);
        assert_eq!(t(1, 2), 0);
        assert_eq!(t(3, 4), -WAVE_ONE);
        assert_eq!(t(1, 8), WAVE_ONE / 2);
        assert_eq!(t(3, 8), WAVE_ONE / 2);
        assert_eq!(t(5, 8), -WAVE_ONE / 2);
        assert_eq!(t(7, 8), -WAVE_ONE / 2);
        assert_eq!(t(1, 16), WAVE_ONE / 4);
        // Linear between the corners: on the first quarter it is the phase's top 32 bits.
        let mut rng = TestRng::new(43);
        for _ in 0..100_000 {
            let x = rng.next() >> 34; // inside the first quarter, 0.32 units
            assert_eq!(triangle(Phase(x << 32)), x as i32);
        }
    }
}
