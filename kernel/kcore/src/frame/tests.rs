//! Host tests of the frame allocator: accounting invariants, misuse, region edge cases, and a
//! randomized comparison against a trivially correct model.

extern crate std;

use super::*;
use std::collections::BTreeSet;
use std::vec;
use std::vec::Vec;

const F: u64 = FRAME_SIZE;
const GIB: u64 = 1 << 30;

fn storage(start: u64, end: u64) -> Vec<u64> {
    vec![0xdead_beef; FrameAllocator::storage_words(start, end)]
}

#[test]
fn storage_too_small_is_refused() {
    let mut s = vec![0; 3];
    let err = FrameAllocator::new(0, 256 * F, &mut s).unwrap_err();
    assert_eq!(
        err,
        FrameError::StorageTooSmall {
            needed: 8,
            given: 3
        }
    );
}

#[test]
fn new_allocator_manages_nothing_even_with_dirty_storage() {
    let mut s = storage(0, 1024 * F);
    let mut a = FrameAllocator::new(0, 1024 * F, &mut s).unwrap();
    assert_eq!(a.stats(), FrameStats { total: 0, free: 0 });
    assert_eq!(a.alloc(), None);
    assert_eq!(a.free(5 * F), Err(FrameError::NotManaged(5 * F)));
}

#[test]
fn unaligned_region_is_trimmed_inward() {
    let mut s = storage(0, 64 * F);
    let mut a = FrameAllocator::new(0, 64 * F, &mut s).unwrap();
    // [0x1800, 0x5800) holds whole frames 2, 3, 4 only.
    assert_eq!(a.add_region(0x1800, 0x4000), 3);
    assert!(!a.is_managed(F) && a.is_managed(2 * F) && a.is_managed(4 * F) && !a.is_managed(5 * F));
    // A region smaller than a frame and one straddling two frames without covering either add nothing.
    assert_eq!(a.add_region(10 * F + 1, F - 1), 0);
    assert_eq!(a.add_region(20 * F + 8, F), 0);
    assert_eq!(a.stats(), FrameStats { total: 3, free: 3 });
}

#[test]
fn zero_length_and_inverted_regions_add_nothing() {
    let mut s = storage(0, 64 * F);
    let mut a = FrameAllocator::new(0, 64 * F, &mut s).unwrap();
    assert_eq!(a.add_region(8 * F, 0), 0);
    assert_eq!(a.add_region(u64::MAX - 10, 100), 0); // end saturates
    assert_eq!(a.stats().total, 0);
}

#[test]
fn overlapping_regions_are_counted_once() {
    let mut s = storage(0, 256 * F);
    let mut a = FrameAllocator::new(0, 256 * F, &mut s).unwrap();
    assert_eq!(a.add_region(10 * F, 100 * F), 100);
    assert_eq!(a.add_region(50 * F, 100 * F), 40);
    assert_eq!(a.add_region(10 * F, 140 * F), 0);
    assert_eq!(
        a.stats(),
        FrameStats {
            total: 140,
            free: 140
        }
    );
}

#[test]
fn frame_zero_is_never_managed_or_handed_out() {
    let mut s = storage(0, 4 * F);
    let mut a = FrameAllocator::new(0, 4 * F, &mut s).unwrap();
    assert_eq!(a.add_region(0, 4 * F), 3);
    let got: BTreeSet<u64> = core::iter::from_fn(|| a.alloc()).collect();
    assert_eq!(got, BTreeSet::from([F, 2 * F, 3 * F]));
    assert_eq!(a.free(0), Err(FrameError::NotManaged(0)));
    assert_eq!(a.reserve(0, F), Err(FrameError::NotManaged(0)));
}

#[test]
fn regions_outside_the_span_are_clipped() {
    let mut s = storage(16 * F, 32 * F);
    let mut a = FrameAllocator::new(16 * F, 32 * F, &mut s).unwrap();
    assert_eq!(a.add_region(0, 20 * F), 4); // frames 16..20
    assert_eq!(a.add_region(30 * F, 100 * F), 2); // frames 30, 31
    assert_eq!(a.add_region(100 * F, F), 0);
    assert_eq!(a.free(40 * F), Err(FrameError::NotManaged(40 * F)));
    assert_eq!(a.free(0), Err(FrameError::NotManaged(0)));
    assert_eq!(a.stats().total, 6);
}

#[test]
fn regions_above_4_gib_work() {
    // A span like QEMU `-m 6G`: low RAM, a hole, and RAM from 4 GiB up.
    let (start, end) = (0x10_0000, 7 * GIB);
    let mut s = storage(start, end);
    let mut a = FrameAllocator::new(start, end, &mut s).unwrap();
    a.add_region(0x10_0000, 0x100_0000);
    let high = a.add_region(4 * GIB, 3 * GIB);
    assert_eq!(high, 3 * GIB / F);
    // Take all low memory, then the next frame must come from above 4 GiB.
    for _ in 0..0x100_0000 / F {
        assert!(a.alloc().is_some_and(|p| p < 4 * GIB));
    }
    let p = a.alloc().unwrap();
    assert!((4 * GIB..7 * GIB).contains(&p));
    // A contiguous 2 MiB-aligned run up there.
    let run = a.alloc_contiguous(512, 512).unwrap().unwrap();
    assert!(run >= 4 * GIB && run.is_multiple_of(2 << 20));
    a.free_contiguous(run, 512).unwrap();
    a.free(p).unwrap();
    // The hole between 0x1100000 and 4 GiB is not ours.
    assert_eq!(a.free(2 * GIB), Err(FrameError::NotManaged(2 * GIB)));
}

#[test]
fn alloc_hands_out_each_frame_once_until_exhausted() {
    let mut s = storage(0, 300 * F);
    let mut a = FrameAllocator::new(0, 300 * F, &mut s).unwrap();
    a.add_region(F, 99 * F);
    a.add_region(150 * F, 150 * F);
    let mut seen = BTreeSet::new();
    while let Some(p) = a.alloc() {
        assert!(a.is_managed(p) && !a.is_free(p));
        assert!(seen.insert(p), "frame {p:#x} handed out twice");
    }
    assert_eq!(seen.len(), 249);
    assert_eq!(
        a.stats(),
        FrameStats {
            total: 249,
            free: 0
        }
    );
    for p in &seen {
        a.free(*p).unwrap();
    }
    assert_eq!(
        a.stats(),
        FrameStats {
            total: 249,
            free: 249
        }
    );
}

#[test]
fn misuse_is_refused_without_changing_state() {
    let mut s = storage(0, 64 * F);
    let mut a = FrameAllocator::new(0, 64 * F, &mut s).unwrap();
    a.add_region(F, 31 * F); // frames 1..32; 32..64 is a hole
    let p = a.alloc().unwrap();
    let before = a.stats();
    assert_eq!(a.free(p + 8), Err(FrameError::Misaligned(p + 8)));
    assert_eq!(a.free(40 * F), Err(FrameError::NotManaged(40 * F)));
    assert_eq!(a.free(1000 * F), Err(FrameError::NotManaged(1000 * F)));
    let other = if p == F { 2 * F } else { F };
    assert_eq!(a.free(other), Err(FrameError::DoubleFree(other)));
    assert_eq!(a.stats(), before);
    a.free(p).unwrap();
    assert_eq!(a.free(p), Err(FrameError::DoubleFree(p)));
    assert_eq!(
        a.stats(),
        FrameStats {
            total: 31,
            free: 31
        }
    );
}

#[test]
fn free_contiguous_checks_every_frame_first() {
    let mut s = storage(0, 64 * F);
    let mut a = FrameAllocator::new(0, 64 * F, &mut s).unwrap();
    a.add_region(0, 64 * F);
    let run = a.alloc_contiguous(8, 1).unwrap().unwrap();
    a.free(run + 5 * F).unwrap();
    let before = a.stats();
    // Frame 5 of the run is already free: the whole call is refused, frames 0..5 stay allocated.
    assert_eq!(
        a.free_contiguous(run, 8),
        Err(FrameError::DoubleFree(run + 5 * F))
    );
    assert_eq!(a.stats(), before);
    assert!(!a.is_free(run));
    // Running off the end of the span is refused too.
    assert!(matches!(
        a.free_contiguous(60 * F, 8),
        Err(FrameError::NotManaged(_))
    ));
    assert_eq!(a.free_contiguous(run, 0), Err(FrameError::BadCount));
    a.free_contiguous(run, 5).unwrap();
    a.free_contiguous(run + 6 * F, 2).unwrap();
    assert_eq!(
        a.stats(),
        FrameStats {
            total: 63,
            free: 63
        }
    );
}

#[test]
fn contiguous_runs_respect_alignment_and_holes() {
    let mut s = storage(0, 1024 * F);
    let mut a = FrameAllocator::new(0, 1024 * F, &mut s).unwrap();
    // Two islands: [1, 100) and [300, 700). 64-frame aligned runs of 64 fit only in the second.
    a.add_region(F, 99 * F);
    a.add_region(300 * F, 400 * F);
    let r = a.alloc_contiguous(64, 64).unwrap().unwrap();
    assert_eq!(r, 320 * F);
    assert_eq!(a.alloc_contiguous(64, 64).unwrap(), Some(384 * F));
    // A run of 150 frames fits nowhere now ([448, 700) holds 252, so it does fit once).
    assert_eq!(a.alloc_contiguous(150, 1).unwrap(), Some(448 * F));
    assert_eq!(a.alloc_contiguous(150, 1).unwrap(), None);
    // Misuse.
    assert_eq!(a.alloc_contiguous(0, 1), Err(FrameError::BadCount));
    assert_eq!(a.alloc_contiguous(4, 3), Err(FrameError::BadCount));
    a.free_contiguous(r, 64).unwrap();
    a.free_contiguous(384 * F, 64).unwrap();
    a.free_contiguous(448 * F, 150).unwrap();
    assert_eq!(
        a.stats(),
        FrameStats {
            total: 499,
            free: 499
        }
    );
}

#[test]
fn alignment_counts_from_physical_zero_not_span_start() {
    // Span starts at an odd frame: an 8-frame alignment must be absolute.
    let mut s = storage(3 * F, 100 * F);
    let mut a = FrameAllocator::new(3 * F, 100 * F, &mut s).unwrap();
    a.add_region(3 * F, 97 * F);
    assert_eq!(a.alloc_contiguous(2, 8).unwrap(), Some(8 * F));
}

#[test]
fn reserve_takes_free_frames_and_refuses_otherwise() {
    let mut s = storage(0, 64 * F);
    let mut a = FrameAllocator::new(0, 64 * F, &mut s).unwrap();
    a.add_region(F, 31 * F);
    // Rounded outward: bytes [0x2800, 0x4001) touch frames 2, 3, 4.
    a.reserve(0x2800, 0x1801).unwrap();
    assert_eq!(
        a.stats(),
        FrameStats {
            total: 31,
            free: 28
        }
    );
    assert!(!a.is_free(2 * F) && !a.is_free(4 * F) && a.is_free(5 * F));
    let before = a.stats();
    assert_eq!(a.reserve(4 * F, 2 * F), Err(FrameError::InUse(4 * F)));
    assert_eq!(
        a.reserve(30 * F, 4 * F),
        Err(FrameError::NotManaged(32 * F))
    );
    assert_eq!(a.stats(), before);
    assert!(a.is_free(5 * F) && a.is_free(30 * F));
    assert_eq!(a.reserve(9 * F, 0), Ok(()));
}

/// xorshift64*: a tiny deterministic PRNG so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The obviously correct model: sets of managed and free frame addresses.
struct Model {
    managed: BTreeSet<u64>,
    free: BTreeSet<u64>,
}

fn check(a: &FrameAllocator, m: &Model, span_frames: u64) {
    assert_eq!(a.stats().total, m.managed.len() as u64);
    assert_eq!(a.stats().free, m.free.len() as u64);
    assert_eq!(a.stats().used(), (m.managed.len() - m.free.len()) as u64);
    for f in 0..span_frames {
        let p = f * F;
        assert_eq!(
            a.is_managed(p),
            m.managed.contains(&p),
            "managed bit of {p:#x}"
        );
        assert_eq!(a.is_free(p), m.free.contains(&p), "free bit of {p:#x}");
    }
}

#[test]
fn randomized_operations_match_the_model() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let span_frames = 64 + rng.below(600);
        let mut s = storage(0, span_frames * F);
        let mut a = FrameAllocator::new(0, span_frames * F, &mut s).unwrap();
        let mut m = Model {
            managed: BTreeSet::new(),
            free: BTreeSet::new(),
        };
        let mut held: Vec<(u64, u64)> = Vec::new(); // (addr, count)

        for _ in 0..1 + rng.below(6) {
            // Random, possibly unaligned, overlapping or out-of-span regions.
            let base = rng.below(span_frames * F + 8 * F);
            let len = rng.below(span_frames * F / 2);
            let added = a.add_region(base, len);
            let lo = base.div_ceil(F).max(1);
            let hi = ((base + len) / F).min(span_frames);
            let mut expect = 0;
            for f in lo..hi.max(lo) {
                if m.managed.insert(f * F) {
                    m.free.insert(f * F);
                    expect += 1;
                }
            }
            assert_eq!(
                added, expect,
                "seed {seed}: add_region({base:#x}, {len:#x})"
            );
        }
        check(&a, &m, span_frames);

        for step in 0..400 {
            match rng.below(6) {
                0 | 1 => match a.alloc() {
                    Some(p) => {
                        assert!(
                            m.free.remove(&p),
                            "seed {seed} step {step}: alloc gave non-free {p:#x}"
                        );
                        held.push((p, 1));
                    }
                    None => assert!(m.free.is_empty()),
                },
                2 => {
                    let count = 1 + rng.below(12);
                    let align = 1 << rng.below(4);
                    match a.alloc_contiguous(count, align).unwrap() {
                        Some(p) => {
                            assert!(p.is_multiple_of(align * F));
                            for i in 0..count {
                                assert!(
                                    m.free.remove(&(p + i * F)),
                                    "seed {seed}: run frame not free"
                                );
                            }
                            held.push((p, count));
                        }
                        None => {
                            // The model agrees that no aligned run exists.
                            let exists = (0..span_frames)
                                .step_by(align as usize)
                                .any(|f| (f..f + count).all(|g| m.free.contains(&(g * F))));
                            assert!(!exists, "seed {seed}: missed an existing run");
                        }
                    }
                }
                3 | 4 if !held.is_empty() => {
                    let (p, count) = held.swap_remove(rng.below(held.len() as u64) as usize);
                    a.free_contiguous(p, count).unwrap();
                    for i in 0..count {
                        m.free.insert(p + i * F);
                    }
                }
                _ => {
                    // A bogus free must be refused and change nothing.
                    let p = rng.below(span_frames + 4) * F + if rng.below(4) == 0 { 8 } else { 0 };
                    let before = a.stats();
                    let r = a.free(p);
                    let expected = if !p.is_multiple_of(F) {
                        Some(FrameError::Misaligned(p))
                    } else if !m.managed.contains(&p) {
                        Some(FrameError::NotManaged(p))
                    } else if m.free.contains(&p) {
                        Some(FrameError::DoubleFree(p))
                    } else {
                        None // really held: put it back into the model's view below
                    };
                    match expected {
                        Some(e) => {
                            assert_eq!(r, Err(e));
                            assert_eq!(a.stats(), before);
                        }
                        None => {
                            r.unwrap();
                            m.free.insert(p);
                            // Split whichever held run contained it into what is still held.
                            let i = held
                                .iter()
                                .position(|&(b, c)| p >= b && p < b + c * F)
                                .unwrap();
                            let (b, c) = held.swap_remove(i);
                            let k = (p - b) / F;
                            if k > 0 {
                                held.push((b, k));
                            }
                            if k + 1 < c {
                                held.push((p + F, c - k - 1));
                            }
                        }
                    }
                }
            }
            if step % 50 == 0 {
                check(&a, &m, span_frames);
            }
        }
        for (p, c) in held.drain(..) {
            a.free_contiguous(p, c).unwrap();
            for i in 0..c {
                m.free.insert(p + i * F);
            }
        }
        check(&a, &m, span_frames);
        assert_eq!(
            a.stats().free,
            a.stats().total,
            "seed {seed}: all frames back"
        );
    }
}
