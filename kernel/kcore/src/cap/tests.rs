//! Host tests of the handle table: generations defeat stale and forged handles, rights only
//! shrink, free-list reuse, capacity limits, drain, and a randomized comparison against a
//! trivially correct model.

extern crate std;

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::vec::Vec;

/// A test object: an id plus a kind, cloned like a refcounted kernel object.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Obj {
    id: u32,
    kind: ObjectKind,
}

impl Object for Obj {
    fn kind(&self) -> ObjectKind {
        self.kind
    }
}

/// A bare reference-count witness (drop tests).
impl Object for Rc<()> {
    fn kind(&self) -> ObjectKind {
        ObjectKind::Frame
    }
}

fn ep(id: u32) -> Obj {
    Obj {
        id,
        kind: ObjectKind::Endpoint,
    }
}

const ALL: Rights = Rights::all();

/// A small xorshift generator: deterministic, dependency-free randomness for the tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn null_and_generation_zero_never_resolve() {
    let mut t = HandleTable::new(8);
    let h = t.insert(ep(1), ALL).unwrap();
    assert_eq!(h, Handle::new(0, 1));
    assert_eq!(t.entry(Handle::NULL).err(), Some(Error::InvalidHandle));
    assert_eq!(t.entry(Handle::new(0, 0)).err(), Some(Error::InvalidHandle));
}

#[test]
fn stale_handles_fail_even_after_their_slot_is_reused() {
    let mut t = HandleTable::new(4);
    let old = t.insert(ep(1), ALL).unwrap();
    assert_eq!(t.close(old).unwrap().id, 1);
    let new = t.insert(ep(2), ALL).unwrap();
    assert_eq!(new.index(), old.index(), "the freed slot is reused");
    assert_ne!(new, old);
    assert_eq!(
        t.get(old, Rights::empty()).err(),
        Some(Error::InvalidHandle)
    );
    assert_eq!(t.close(old).err(), Some(Error::InvalidHandle));
    assert_eq!(
        t.restrict(old, Rights::empty()).err(),
        Some(Error::InvalidHandle)
    );
    assert_eq!(
        t.duplicate(old, Rights::empty(), 0).err(),
        Some(Error::InvalidHandle)
    );
    assert_eq!(
        t.get(new, ALL).unwrap().id,
        2,
        "the stale close did not touch the new entry"
    );
}

#[test]
fn double_close_is_an_error_and_returns_the_object_once() {
    let mut t = HandleTable::new(4);
    let h = t.insert(ep(7), ALL).unwrap();
    assert_eq!(t.close(h), Ok(ep(7)));
    assert_eq!(t.close(h), Err(Error::InvalidHandle));
    assert!(t.is_empty());
}

#[test]
fn checks_run_in_order_handle_kind_rights() {
    let mut t = HandleTable::new(4);
    let frame = t
        .insert(
            Obj {
                id: 1,
                kind: ObjectKind::Frame,
            },
            Rights::READ,
        )
        .unwrap();
    let k = ObjectKind::Endpoint;
    assert_eq!(
        t.get_kind(Handle::NULL, k, Rights::SEND).err(),
        Some(Error::InvalidHandle)
    );
    assert_eq!(
        t.get_kind(frame, k, Rights::SEND).err(),
        Some(Error::WrongKind)
    );
    assert_eq!(
        t.get_kind(frame, ObjectKind::Frame, Rights::WRITE).err(),
        Some(Error::MissingRights)
    );
    assert_eq!(
        t.get_kind(frame, ObjectKind::Frame, Rights::READ)
            .unwrap()
            .id,
        1
    );
    assert_eq!(
        t.get(frame, Rights::READ | Rights::MAP).err(),
        Some(Error::MissingRights)
    );
    assert_eq!(t.inspect(frame), Ok((ObjectKind::Frame, Rights::READ, 0)));
}

#[test]
fn duplicate_only_shrinks_and_needs_the_duplicate_right() {
    let mut t = HandleTable::new(8);
    let have = Rights::SEND | Rights::DUPLICATE | Rights::TRANSFER;
    let h = t.insert(ep(1), have).unwrap();
    assert_eq!(
        t.duplicate(h, have | Rights::RECV, 0).err(),
        Some(Error::MissingRights)
    );
    let d = t.duplicate(h, Rights::SEND, 0).unwrap();
    assert_eq!(t.entry(d).unwrap().rights(), Rights::SEND);
    assert_eq!(
        t.get(d, Rights::SEND).unwrap().id,
        1,
        "the duplicate names the same object"
    );
    // The duplicate dropped DUPLICATE, so it cannot be duplicated again — not even to less.
    assert_eq!(
        t.duplicate(d, Rights::empty(), 0).err(),
        Some(Error::MissingRights)
    );
    let no_dup = t.insert(ep(2), Rights::SEND).unwrap();
    assert_eq!(
        t.duplicate(no_dup, Rights::SEND, 0).err(),
        Some(Error::MissingRights)
    );
    assert_eq!(t.len(), 3);
}

#[test]
fn restrict_only_shrinks() {
    let mut t = HandleTable::new(4);
    let h = t.insert(ep(1), Rights::SEND | Rights::RECV).unwrap();
    assert_eq!(
        t.restrict(h, Rights::SEND | Rights::MANAGE),
        Ok(Rights::SEND)
    );
    assert_eq!(
        t.restrict(h, ALL),
        Ok(Rights::SEND),
        "a wider mask does not add rights back"
    );
    assert_eq!(t.get(h, Rights::RECV).err(), Some(Error::MissingRights));
    assert_eq!(t.restrict(h, Rights::empty()), Ok(Rights::empty()));
    assert_eq!(
        t.get(h, Rights::empty()).unwrap().id,
        1,
        "a rightless handle still names it"
    );
}

#[test]
fn badges_are_set_once_and_only_on_endpoints() {
    let mut t = HandleTable::new(8);
    let e = t.insert(ep(1), ALL).unwrap();
    let badged = t.duplicate(e, ALL, 0xb00).unwrap();
    assert_eq!(t.inspect(badged), Ok((ObjectKind::Endpoint, ALL, 0xb00)));
    assert_eq!(t.duplicate(badged, ALL, 0xbad).err(), Some(Error::Exists));
    let copy = t.duplicate(badged, Rights::SEND, 0).unwrap();
    assert_eq!(
        t.entry(copy).unwrap().badge(),
        0xb00,
        "badge 0 keeps the source's badge"
    );
    let n = t
        .insert(
            Obj {
                id: 2,
                kind: ObjectKind::Notification,
            },
            ALL,
        )
        .unwrap();
    assert_eq!(t.duplicate(n, ALL, 5).err(), Some(Error::WrongKind));
    assert_eq!(
        t.entry(e).unwrap().badge(),
        0,
        "badging a copy left the original unbadged"
    );
}

#[test]
fn grant_copies_with_fewer_rights_into_another_table() {
    let mut a = HandleTable::new(4);
    let mut b = HandleTable::new(1);
    let h = a.insert(ep(1), Rights::SEND | Rights::TRANSFER).unwrap();
    let badged = a.insert(ep(2), Rights::SEND).unwrap();
    assert_eq!(
        a.grant_to(badged, Rights::SEND, &mut b).err(),
        Some(Error::MissingRights)
    );
    assert_eq!(
        a.grant_to(h, Rights::RECV, &mut b).err(),
        Some(Error::MissingRights)
    );
    let g = a.grant_to(h, Rights::SEND, &mut b).unwrap();
    assert_eq!(b.inspect(g), Ok((ObjectKind::Endpoint, Rights::SEND, 0)));
    assert_eq!(
        a.grant_to(h, Rights::SEND, &mut b).err(),
        Some(Error::HandleTableFull)
    );
    assert_eq!(a.len(), 2, "granting does not remove the source");
}

#[test]
fn free_list_reuses_the_most_recently_freed_slot_first() {
    let mut t = HandleTable::new(8);
    let hs: Vec<_> = (0..5).map(|i| t.insert(ep(i), ALL).unwrap()).collect();
    t.close(hs[1]).unwrap();
    t.close(hs[3]).unwrap();
    assert_eq!(t.available(), 3 + 2);
    let a = t.insert(ep(10), ALL).unwrap();
    let b = t.insert(ep(11), ALL).unwrap();
    let c = t.insert(ep(12), ALL).unwrap();
    assert_eq!((a.index(), b.index(), c.index()), (3, 1, 5));
    assert_eq!((a.generation(), b.generation(), c.generation()), (2, 2, 1));
}

#[test]
fn a_full_table_refuses_inserts_until_a_handle_is_closed() {
    let mut t = HandleTable::new(3);
    let hs: Vec<_> = (0..3).map(|i| t.insert(ep(i), ALL).unwrap()).collect();
    assert_eq!(t.available(), 0);
    assert_eq!(t.insert(ep(9), ALL), Err(Error::HandleTableFull));
    assert_eq!(t.duplicate(hs[0], ALL, 0), Err(Error::HandleTableFull));
    assert_eq!(t.reserve(1), Err(Error::HandleTableFull));
    assert_eq!(t.len(), 3, "failed inserts changed nothing");
    t.close(hs[2]).unwrap();
    assert_eq!(t.reserve(1), Ok(()));
    assert_eq!(t.reserve(2), Err(Error::HandleTableFull));
    assert!(t.insert(ep(9), ALL).is_ok());
    let mut empty: HandleTable<Obj> = HandleTable::new(0);
    assert_eq!(empty.insert(ep(1), ALL), Err(Error::HandleTableFull));
}

#[test]
fn a_slot_at_the_last_generation_is_retired_not_wrapped() {
    let mut t = HandleTable::new(2);
    let h = t.insert(ep(1), ALL).unwrap();
    let last = t.set_generation(h, Handle::MAX_GENERATION);
    assert_eq!(t.get(last, ALL).unwrap().id, 1);
    assert_eq!(t.close(last).unwrap().id, 1);
    assert_eq!(t.available(), 1, "the retired slot is lost capacity");
    let next = t.insert(ep(2), ALL).unwrap();
    assert_eq!(next.index(), 1, "the retired slot was not reused");
    assert_eq!(t.insert(ep(3), ALL), Err(Error::HandleTableFull));
    for generation in [0, 1, Handle::MAX_GENERATION] {
        assert_eq!(
            t.entry(Handle::new(0, generation)).err(),
            Some(Error::InvalidHandle)
        );
    }
}

#[test]
fn drain_returns_every_object_exactly_once_and_kills_every_handle() {
    let mut t = HandleTable::new(64);
    let mut live = BTreeMap::new();
    for i in 0..40 {
        live.insert(t.insert(ep(i), ALL).unwrap(), i);
    }
    for (i, h) in live.clone().into_keys().enumerate() {
        if i % 3 == 0 {
            live.remove(&h);
            t.close(h).unwrap();
        }
    }
    let h0 = *live.keys().next().unwrap();
    let dup = t.duplicate(h0, ALL, 0).unwrap();
    live.insert(dup, live[&h0]);
    let mut drained: Vec<u32> = t.drain().map(|o| o.id).collect();
    drained.sort();
    let mut want: Vec<u32> = live.values().copied().collect();
    want.sort();
    assert_eq!(drained, want);
    assert!(t.is_empty());
    assert_eq!(t.drain().count(), 0);
    for h in live.keys() {
        assert_eq!(t.entry(*h).err(), Some(Error::InvalidHandle));
    }
}

#[test]
fn dropping_a_drain_early_still_releases_every_object() {
    let witness = Rc::new(());
    let mut t = HandleTable::new(8);
    for _ in 0..5 {
        t.insert(Rc::clone(&witness), ALL).unwrap();
    }
    assert_eq!(Rc::strong_count(&witness), 6);
    let first = t.drain().next();
    assert!(first.is_some());
    drop(first);
    assert_eq!(
        Rc::strong_count(&witness),
        1,
        "every reference was released"
    );
    assert!(t.is_empty());
}

#[test]
fn random_u64s_never_resolve_to_an_object_they_do_not_name() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut t = HandleTable::new(256);
    let mut live = BTreeMap::new();
    for i in 0..200u32 {
        let h = t.insert(ep(i), ALL).unwrap();
        live.insert(h.raw(), i);
        if i % 2 == 0 {
            t.close(h).unwrap();
            live.remove(&h.raw());
        }
    }
    let mut probes: Vec<u64> = (0..200_000).map(|_| rng.next()).collect();
    // Random values are almost never near a live handle, so also forge plausible ones: right
    // index, neighbouring generations, and single-bit flips of live handles.
    for &raw in live.keys() {
        let h = Handle::from_raw(raw);
        for g in h.generation().saturating_sub(2)..=h.generation().saturating_add(2) {
            probes.push(Handle::new(h.index(), g).raw());
        }
        probes.extend((0..64).map(|bit| raw ^ (1 << bit)));
    }
    for idx in 0..300 {
        probes.extend([0, 1, 2, 3, u32::MAX].map(|g| Handle::new(idx, g).raw()));
    }
    for raw in probes {
        match t.entry(Handle::from_raw(raw)) {
            Ok(e) => assert_eq!(live.get(&raw), Some(&e.object().id), "{raw:#x} resolved"),
            Err(err) => {
                assert_eq!(err, Error::InvalidHandle);
                assert!(
                    !live.contains_key(&raw),
                    "live handle {raw:#x} did not resolve"
                );
            }
        }
    }
}

/// The model: a map from issued handle value to (object id, rights, badge), plus the set of
/// every value ever issued (a handle value is never issued twice).
#[derive(Default)]
struct Model {
    live: BTreeMap<u64, (u32, Rights, u64)>,
    issued: BTreeSet<u64>,
}

impl Model {
    fn issue(&mut self, h: Handle, v: (u32, Rights, u64)) {
        assert!(
            self.issued.insert(h.raw()),
            "handle {:#x} issued twice",
            h.raw()
        );
        self.live.insert(h.raw(), v);
    }
}

fn random_rights(rng: &mut Rng) -> Rights {
    Rights::from_bits_truncate(rng.next() as u32)
}

/// Pick a handle to operate on: usually a live one, sometimes a dead one, sometimes garbage.
fn pick(rng: &mut Rng, m: &Model) -> Handle {
    let pool: Vec<u64> = match rng.below(10) {
        0..=6 => m.live.keys().copied().collect(),
        7 | 8 => m.issued.iter().copied().collect(),
        _ => Vec::new(),
    };
    if pool.is_empty() {
        return Handle::from_raw(rng.next() % 4 * (rng.next() & 0xffff_0000_001f));
    }
    Handle::from_raw(pool[rng.below(pool.len() as u64) as usize])
}

#[test]
fn randomized_operations_match_a_reference_model() {
    const MAX: u32 = 24;
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let mut t: HandleTable<Obj> = HandleTable::new(MAX);
        let mut m = Model::default();
        let mut next_id = 0u32;
        let mut kinds = BTreeMap::new();
        for _step in 0..4_000 {
            match rng.below(100) {
                0..=29 => {
                    let rights = random_rights(&mut rng);
                    let kind = ObjectKind::ALL[rng.below(6) as usize];
                    let got = t.insert(Obj { id: next_id, kind }, rights);
                    kinds.insert(next_id, kind);
                    // Room is only lost to retired slots, which this test never creates.
                    if m.live.len() < MAX as usize {
                        let h = got.unwrap();
                        m.issue(h, (next_id, rights, 0));
                    } else {
                        assert_eq!(got, Err(Error::HandleTableFull));
                    }
                    next_id += 1;
                }
                30..=49 => {
                    let h = pick(&mut rng, &m);
                    let got = t.close(h).map(|o| o.id);
                    assert_eq!(
                        got,
                        m.live
                            .remove(&h.raw())
                            .map(|v| v.0)
                            .ok_or(Error::InvalidHandle)
                    );
                }
                50..=64 => {
                    let h = pick(&mut rng, &m);
                    let want_rights = random_rights(&mut rng);
                    let badge = if rng.below(4) == 0 { rng.next() } else { 0 };
                    let got = t.duplicate(h, want_rights, badge);
                    let want = match m.live.get(&h.raw()).copied() {
                        None => Err(Error::InvalidHandle),
                        Some((_, r, _)) if !r.contains(Rights::DUPLICATE | want_rights) => {
                            Err(Error::MissingRights)
                        }
                        Some((id, _, b)) => {
                            if badge != 0 && kinds[&id] != ObjectKind::Endpoint {
                                Err(Error::WrongKind)
                            } else if badge != 0 && b != 0 {
                                Err(Error::Exists)
                            } else if m.live.len() >= MAX as usize {
                                Err(Error::HandleTableFull)
                            } else {
                                Ok((id, want_rights, if badge == 0 { b } else { badge }))
                            }
                        }
                    };
                    match (got, want) {
                        (Ok(nh), Ok(v)) => m.issue(nh, v),
                        (got, want) => assert_eq!(got.err(), want.err()),
                    }
                }
                65..=74 => {
                    let h = pick(&mut rng, &m);
                    let mask = random_rights(&mut rng);
                    let want = match m.live.get_mut(&h.raw()) {
                        None => Err(Error::InvalidHandle),
                        Some(v) => {
                            v.1 &= mask;
                            Ok(v.1)
                        }
                    };
                    assert_eq!(t.restrict(h, mask), want);
                }
                75..=98 => {
                    let h = pick(&mut rng, &m);
                    let need =
                        random_rights(&mut rng) & (Rights::SEND | Rights::RECV | Rights::MAP);
                    let want = match m.live.get(&h.raw()) {
                        None => Err(Error::InvalidHandle),
                        Some((_, r, _)) if !r.contains(need) => Err(Error::MissingRights),
                        Some((id, _, _)) => Ok(*id),
                    };
                    assert_eq!(t.get(h, need).map(|o| o.id), want);
                    if let Some((_, r, b)) = m.live.get(&h.raw()) {
                        let (_, tr, tb) = t.inspect(h).unwrap();
                        assert_eq!((tr, tb), (*r, *b));
                    }
                }
                _ => {
                    let mut got: Vec<u32> = t.drain().map(|o| o.id).collect();
                    let mut want: Vec<u32> = m.live.values().map(|v| v.0).collect();
                    got.sort();
                    want.sort();
                    assert_eq!(got, want);
                    m.live.clear();
                }
            }
            assert_eq!(t.len(), m.live.len());
            let listed: BTreeMap<u64, u32> =
                t.iter().map(|(h, e)| (h.raw(), e.object().id)).collect();
            let modeled: BTreeMap<u64, u32> = m.live.iter().map(|(k, v)| (*k, v.0)).collect();
            assert_eq!(listed, modeled);
        }
    }
}

/// An object that counts, per right, how many handles in tables currently grant it.
#[derive(Clone, Debug)]
struct Counted(Rc<core::cell::RefCell<BTreeMap<u32, i64>>>);

impl Object for Counted {
    fn kind(&self) -> ObjectKind {
        ObjectKind::Endpoint
    }
    fn held(&self, rights: Rights) {
        for r in rights.iter() {
            *self.0.borrow_mut().entry(r.bits()).or_default() += 1;
        }
    }
    fn released(&self, rights: Rights) {
        for r in rights.iter() {
            *self.0.borrow_mut().entry(r.bits()).or_default() -= 1;
        }
    }
}

#[test]
fn held_and_released_pair_up_across_every_operation() {
    let counts = Rc::new(core::cell::RefCell::new(BTreeMap::new()));
    let obj = Counted(counts.clone());
    let recv = |c: &Rc<core::cell::RefCell<BTreeMap<u32, i64>>>| {
        c.borrow().get(&Rights::RECV.bits()).copied().unwrap_or(0)
    };
    let mut a = HandleTable::new(8);
    let mut b = HandleTable::new(1);
    let h = a.insert(obj.clone(), ALL).unwrap();
    assert_eq!(recv(&counts), 1);
    let d = a.duplicate(h, ALL, 0).unwrap();
    let s = a.duplicate(h, Rights::SEND | Rights::DUPLICATE, 0).unwrap();
    assert_eq!(recv(&counts), 2, "a duplicate without RECV does not count");
    a.grant_to(h, Rights::RECV | Rights::TRANSFER, &mut b)
        .unwrap();
    assert_eq!(recv(&counts), 3);
    // A failed insert (full table) counts nothing.
    assert_eq!(
        a.grant_to(h, ALL, &mut b).err(),
        Some(Error::HandleTableFull)
    );
    assert_eq!(recv(&counts), 3);
    a.restrict(d, Rights::SEND).unwrap();
    assert_eq!(recv(&counts), 2, "restrict releases the rights it removes");
    a.restrict(d, Rights::SEND).unwrap();
    assert_eq!(recv(&counts), 2, "restricting again releases nothing");
    drop(a.close(h).unwrap());
    assert_eq!(recv(&counts), 1);
    drop(b.drain());
    assert_eq!(recv(&counts), 0);
    drop(a.close(s).unwrap());
    drop(a.close(d).unwrap());
    assert!(counts.borrow().values().all(|&n| n == 0), "{counts:?}");
}
