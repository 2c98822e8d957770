//! Host tests of the run queue.

extern crate std;

use super::*;
use std::vec::Vec;

#[test]
fn empty_pops_nothing() {
    let mut q: RunQueue<u32> = RunQueue::new();
    assert!(q.is_empty());
    assert_eq!(q.highest(), None);
    assert_eq!(q.pop(), None);
}

#[test]
fn highest_priority_first_fifo_within_level() {
    let mut q = RunQueue::new();
    q.push(3, "a3").unwrap();
    q.push(10, "b10").unwrap();
    q.push(3, "c3").unwrap();
    q.push(0, "d0").unwrap();
    q.push(10, "e10").unwrap();
    q.push(31, "f31").unwrap();
    assert_eq!(q.len(), 6);
    assert_eq!(q.highest(), Some(31));
    let order: Vec<_> = core::iter::from_fn(|| q.pop()).collect();
    assert_eq!(
        order,
        [
            (31, "f31"),
            (10, "b10"),
            (10, "e10"),
            (3, "a3"),
            (3, "c3"),
            (0, "d0")
        ]
    );
    assert!(q.is_empty());
    assert_eq!(q.highest(), None);
}

#[test]
fn round_robin_requeue_goes_to_the_back() {
    let mut q = RunQueue::new();
    for t in 0..3 {
        q.push(5, t).unwrap();
    }
    let mut ran = Vec::new();
    for _ in 0..9 {
        let (p, t) = q.pop().unwrap();
        ran.push(t);
        q.push(p, t).unwrap();
    }
    assert_eq!(ran, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
}

#[test]
fn bad_priority_returns_the_item() {
    let mut q = RunQueue::new();
    assert_eq!(q.push(32, 7), Err((QueueError::BadPriority, 7)));
    assert_eq!(q.push(255, 8), Err((QueueError::BadPriority, 8)));
    assert!(q.is_empty());
}

#[test]
fn remove_clears_the_level_bit() {
    let mut q = RunQueue::new();
    q.push(7, 1).unwrap();
    q.push(7, 2).unwrap();
    q.push(2, 3).unwrap();
    assert_eq!(q.remove(7, |&x| x == 2), Some(2));
    assert_eq!(q.remove(7, |&x| x == 2), None);
    assert_eq!(q.remove(7, |&x| x == 1), Some(1));
    assert_eq!(q.highest(), Some(2));
    assert_eq!(q.remove(40, |_| true), None);
    assert_eq!(q.len(), 1);
    assert_eq!(q.pop(), Some((2, 3)));
}

#[test]
fn every_level_round_trips() {
    let mut q = RunQueue::new();
    q.reserve(2).unwrap();
    for p in 0..32u8 {
        q.push(p, p).unwrap();
    }
    for p in (0..32u8).rev() {
        assert_eq!(q.highest(), Some(p));
        assert_eq!(q.pop(), Some((p, p)));
    }
    assert!(q.is_empty());
}
