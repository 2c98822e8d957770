//! The phase-keyed word transform and its exact inverse.
//!
//! For a fixed phase `p`, [`transform`] is a composition of steps that are each a bijection of
//! `u64`, so the whole is a bijection, and [`inverse`] undoes the steps in reverse order:
//!
//! | step | why it is invertible | inverse |
//! |---|---|---|
//! | `x ^= k` (k from `p`) | xor with a constant is an involution | `x ^= k` |
//! | `x = x + k` (wrapping) | translation in ℤ/2⁶⁴ | `x = x - k` |
//! | `x ^= x >> s` (0 < s < 64) | the top `s` bits are unchanged, and each lower bit is recovered from bits above it | `x ^= x >> s; x ^= x >> 2s; …` (doubling until ≥ 64) |
//! | `x = x · m` (wrapping, `m` odd) | odd `m` is a unit modulo `2^64` | `x = x · m⁻¹` (`m⁻¹` computed at compile time, checked by a `const` assertion) |
//! | `x = rotl(x, r)` (`r` from `p`) | a permutation of bit positions | `rotr(x, r)` |
//!
//! The mixing core is the SplitMix64 finaliser (xorshift–multiply–xorshift–multiply–xorshift, with
//! its published constants), with the phase injected before the first and second multiplies and
//! choosing the final rotation. It diffuses well (the unit tests check avalanche), but it is a
//! mixer and **not a cipher**: the phase is public and the structure is easily inverted by anyone,
//! which is the point.
//!
//! Constant time: only xor, add, sub, shift by constants, rotate by a register amount (`rol`/`ror`
//! on x86-64 take the same time for every count) and 64-bit multiplies (fixed latency on x86-64
//! and AArch64); no branches, no memory indexing.

use crate::phase::Phase;

/// First SplitMix64 finaliser multiplier (odd).
const M1: u64 = 0xBF58_476D_1CE4_E5B9;
/// Second SplitMix64 finaliser multiplier (odd).
const M2: u64 = 0x94D0_49BB_1331_11EB;
/// Separates the second phase injection from the first (the fractional digits of π).
const K2: u64 = 0x243F_6A88_85A3_08D3;

/// The inverse of an odd `m` modulo `2^64` by Newton's iteration `y ← y(2 − m·y)`: `m·m ≡ 1 (mod
/// 8)` gives 3 correct low bits to start, and each round doubles them (3 → 6 → … → 96 ≥ 64).
const fn mul_inverse(m: u64) -> u64 {
    let mut y = m;
    let mut i = 0;
    while i < 5 {
        y = y.wrapping_mul(2u64.wrapping_sub(m.wrapping_mul(y)));
        i += 1;
    }
    y
}

const M1_INV: u64 = mul_inverse(M1);
const M2_INV: u64 = mul_inverse(M2);
const _: () = assert!(M1.wrapping_mul(M1_INV) == 1 && M2.wrapping_mul(M2_INV) == 1);

/// Inverse of `x ^= x >> S` for `0 < S < 64`. The loop bound depends on `S` only (a constant).
#[inline(always)]
const fn unxorshift<const S: u32>(y: u64) -> u64 {
    let mut x = y;
    let mut k = S;
    while k < 64 {
        x ^= x >> k;
        k *= 2;
    }
    x
}

/// The second key word, derived from the phase.
#[inline(always)]
const fn key2(p: u64) -> u64 {
    p.rotate_left(32) ^ K2
}

/// The final rotation amount (0..=63): the phase's top six bits.
#[inline(always)]
const fn rotation(p: u64) -> u32 {
    (p >> 58) as u32
}

/// Mixes `x` under `phase`. For every phase this is a bijection of `u64`; [`inverse`] undoes it.
#[inline]
#[must_use]
pub const fn transform(x: u64, phase: Phase) -> u64 {
    let p = phase.raw();
    let mut x = x ^ p;
    x ^= x >> 30;
    x = x.wrapping_mul(M1);
    x = x.wrapping_add(key2(p));
    x ^= x >> 27;
    x = x.wrapping_mul(M2);
    x ^= x >> 31;
    x.rotate_left(rotation(p))
}

/// The exact inverse of [`transform`]: `inverse(transform(x, p), p) == x` for all `x`, `p`.
#[inline]
#[must_use]
pub const fn inverse(y: u64, phase: Phase) -> u64 {
    let p = phase.raw();
    let mut x = y.rotate_right(rotation(p));
    x = unxorshift::<31>(x);
    x = x.wrapping_mul(M2_INV);
    x = unxorshift::<27>(x);
    x = x.wrapping_sub(key2(p));
    x = x.wrapping_mul(M1_INV);
    x = unxorshift::<30>(x);
    x ^ p
}

/// Transforms `words` in place as a stream: word `i` under `start.advance(i)`. Returns the phase
/// after the last word, so that consecutive calls continue one stream.
pub fn transform_words(start: Phase, words: &mut [u64]) -> Phase {
    let mut p = start;
    for w in words.iter_mut() {
        *w = transform(*w, p);
        p.step();
    }
    p
}

/// Undoes [`transform_words`] given the same `start`; returns the phase after the last word.
pub fn inverse_words(start: Phase, words: &mut [u64]) -> Phase {
    let mut p = start;
    for w in words.iter_mut() {
        *w = inverse(*w, p);
        p.step();
    }
    p
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::TestRng;

    const EDGES: [u64; 8] = [
        0,
        1,
        u64::MAX,
        1 << 63,
        (1 << 63) - 1,
        0x5555_5555_5555_5555,
        0xAAAA_AAAA_AAAA_AAAA,
        crate::GOLDEN_STEP,
    ];

    #[test]
    fn multiplicative_inverses_are_exact() {
        assert_eq!(M1.wrapping_mul(M1_INV), 1);
        assert_eq!(M2.wrapping_mul(M2_INV), 1);
        let mut rng = TestRng::new(3);
        for _ in 0..10_000 {
            let m = rng.next() | 1;
            assert_eq!(m.wrapping_mul(mul_inverse(m)), 1, "m={m:#x}");
        }
    }

    #[test]
    fn unxorshift_inverts_xorshift_for_every_shift() {
        fn check<const S: u32>(rng: &mut TestRng) {
            for _ in 0..2_000 {
                let x = rng.next();
                assert_eq!(unxorshift::<S>(x ^ (x >> S)), x, "S={S}");
            }
        }
        let mut rng = TestRng::new(5);
        check::<1>(&mut rng);
        check::<7>(&mut rng);
        check::<27>(&mut rng);
        check::<30>(&mut rng);
        check::<31>(&mut rng);
        check::<32>(&mut rng);
        check::<63>(&mut rng);
    }

    #[test]
    fn inverse_undoes_transform_on_random_words_and_phases() {
        let mut rng = TestRng::new(0x1234_5678);
        for _ in 0..1_000_000 {
            let (x, p) = (rng.next(), Phase::new(rng.next()));
            let y = transform(x, p);
            assert_eq!(inverse(y, p), x, "x={x:#x} p={:#x}", p.raw());
        }
        for x in EDGES {
            for p in EDGES {
                assert_eq!(inverse(transform(x, Phase(p)), Phase(p)), x);
                // And the other way round: transform is onto (inverse is a right inverse too).
                assert_eq!(transform(inverse(x, Phase(p)), Phase(p)), x);
            }
        }
    }

    #[test]
    fn streams_round_trip_and_advance_the_phase_per_word() {
        let mut rng = TestRng::new(99);
        for _ in 0..500 {
            let len = (rng.next() % 300) as usize;
            let start = Phase::new(rng.next());
            let plain: Vec<u64> = (0..len).map(|_| rng.next()).collect();
            let mut buf = plain.clone();
            let end = transform_words(start, &mut buf);
            assert_eq!(end, start.advance(len as u64));
            for (i, (&y, &x)) in buf.iter().zip(&plain).enumerate() {
                assert_eq!(y, transform(x, start.advance(i as u64)));
            }
            // Split streams continue where the previous call stopped.
            let mut split = plain.clone();
            let cut = len / 3;
            let mid = transform_words(start, &mut split[..cut]);
            transform_words(mid, &mut split[cut..]);
            assert_eq!(split, buf);
            assert_eq!(inverse_words(start, &mut buf), end);
            assert_eq!(buf, plain);
        }
        // A constant input stream becomes a non-constant one (the phase moves per word).
        let mut zeros = [0u64; 64];
        transform_words(Phase::ZERO, &mut zeros);
        let mut distinct = zeros.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 64);
    }

    #[test]
    fn transform_is_far_from_the_identity() {
        let mut rng = TestRng::new(11);
        let fixed = (0..100_000)
            .filter(|_| {
                let (x, p) = (rng.next(), Phase::new(rng.next()));
                transform(x, p) == x
            })
            .count();
        // A random permutation has about one fixed point in 2^64 inputs.
        assert_eq!(fixed, 0);
    }

    /// Flips each input (or phase) bit over `samples` random points and returns the per
    /// (input bit, output bit) flip counts.
    fn flip_matrix(samples: u32, flip_phase: bool) -> Vec<[u32; 64]> {
        let mut rng = TestRng::new(if flip_phase { 21 } else { 17 });
        let mut m = std::vec![[0u32; 64]; 64];
        for _ in 0..samples {
            let (x, p) = (rng.next(), rng.next());
            let y = transform(x, Phase(p));
            for (i, row) in m.iter_mut().enumerate() {
                let y2 = if flip_phase {
                    transform(x, Phase(p ^ (1 << i)))
                } else {
                    transform(x ^ (1 << i), Phase(p))
                };
                let d = y ^ y2;
                for (j, c) in row.iter_mut().enumerate() {
                    *c += ((d >> j) & 1) as u32;
                }
            }
        }
        m
    }

    #[test]
    fn one_input_bit_flips_about_half_the_output_bits() {
        const N: u32 = 20_000;
        for flip_phase in [false, true] {
            let m = flip_matrix(N, flip_phase);
            for (i, row) in m.iter().enumerate() {
                let mean = f64::from(row.iter().sum::<u32>()) / f64::from(N);
                assert!(
                    (30.0..34.0).contains(&mean),
                    "flip_phase={flip_phase} bit {i}: mean {mean:.2} output bits flipped"
                );
                for (j, &c) in row.iter().enumerate() {
                    let p = f64::from(c) / f64::from(N);
                    assert!(
                        (0.40..0.60).contains(&p),
                        "flip_phase={flip_phase} in bit {i} -> out bit {j}: p={p:.3}"
                    );
                }
            }
        }
    }
}
