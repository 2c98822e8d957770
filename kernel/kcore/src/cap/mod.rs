//! Capability handle tables: the per-process map from [`Handle`] to kernel object + rights.
//!
//! [`HandleTable<T>`] is generic over the object reference `T` so that this logic is tested on
//! the host; the kernel instantiates it with its refcounted object type (dropping a `T` is
//! dropping one reference, so an object dies with its last handle). The table itself never
//! creates or destroys objects: `close` and `drain` hand the `T` back to the caller.
//!
//! Design:
//!
//! * Slots live in a `Vec` that grows on demand up to a fixed maximum, so a process with three
//!   handles pays for three slots. Growth uses `try_reserve`: running out of kernel heap is
//!   [`Error::OutOfMemory`], never an abort.
//! * Each slot has a generation (see [`Handle`] for the packing). A handle resolves only if its
//!   index is in range, the slot is occupied *and* the generations match, so every `u64` that
//!   is not exactly a live handle's value — closed, stale after reuse, or forged — is
//!   [`Error::InvalidHandle`].
//! * Freeing a slot bumps its generation and pushes it on an intrusive LIFO free list (recently
//!   freed slots are hot in the cache). A slot freed at [`Handle::MAX_GENERATION`] is *retired*
//!   instead: it is never reused, because wrapping to an old generation would let a handle from
//!   2^32 reuses ago name a new object. A retired slot still counts against the maximum; a
//!   process would have to close ~4 billion handles in one slot to lose one.
//! * Generations start at 1, so [`Handle::NULL`] (and any generation-0 value) never resolves.
//! * Checks on every lookup run in a fixed order — handle, then kind, then rights — so the
//!   error a caller sees is deterministic ([`Error::InvalidHandle`], [`Error::WrongKind`],
//!   [`Error::MissingRights`]).
//!
//! The table refuses to know about processes, IPC or locking: the kernel wraps it in whatever
//! lock the owning process uses.

extern crate alloc;

use alloc::vec::Vec;
use hsync_abi::{Error, Handle, ObjectKind, Rights};

/// What a table needs to know about an object: its kind (for [`Error::WrongKind`] checks,
/// `handle_inspect` and badges), and — optionally — when handles to it come and go.
pub trait Object {
    /// The kind of object this reference names.
    fn kind(&self) -> ObjectKind;

    /// A handle granting `rights` to this object entered a table (insert, duplicate, grant).
    /// Called with the table borrowed mutably; it must not touch this table. The default does
    /// nothing. The kernel counts an endpoint's receive-capable handles with it.
    fn held(&self, rights: Rights) {
        let _ = rights;
    }

    /// A handle stopped granting `rights` to this object: it was closed or drained (all its
    /// rights), or `restrict` removed some of them. Pairs exactly with [`Object::held`].
    fn released(&self, rights: Rights) {
        let _ = rights;
    }
}

/// A live table entry: the object reference, the rights this handle grants, and its badge.
#[derive(Debug)]
pub struct Entry<T> {
    object: T,
    rights: Rights,
    badge: u64,
}

impl<T> Entry<T> {
    /// The object this handle names.
    pub fn object(&self) -> &T {
        &self.object
    }

    /// The rights this handle grants.
    pub fn rights(&self) -> Rights {
        self.rights
    }

    /// The badge (0 = none). Only endpoint handles carry one; it is delivered to receivers.
    pub fn badge(&self) -> u64 {
        self.badge
    }
}

#[derive(Debug)]
enum State<T> {
    Occupied(Entry<T>),
    /// On the free list; `next` is the next free slot's index.
    Free {
        next: Option<u32>,
    },
    /// Its generation is exhausted; never handed out again.
    Retired,
}

#[derive(Debug)]
struct Slot<T> {
    /// For an occupied slot, the generation its handle carries; for a free slot, the generation
    /// the next handle in it will carry. Never 0.
    generation: u32,
    state: State<T>,
}

/// A per-process handle table. See the module documentation.
#[derive(Debug)]
pub struct HandleTable<T> {
    slots: Vec<Slot<T>>,
    free_head: Option<u32>,
    free_count: usize,
    live: usize,
    max: u32,
}

impl<T: Object> HandleTable<T> {
    /// Largest `max_handles` a table accepts (indices must fit the handle's index field).
    pub const MAX_CAPACITY: u32 = u32::MAX;

    /// An empty table that will hold at most `max_handles` slots. Allocates nothing.
    pub const fn new(max_handles: u32) -> Self {
        HandleTable {
            slots: Vec::new(),
            free_head: None,
            free_count: 0,
            live: 0,
            max: max_handles,
        }
    }

    /// Number of live handles.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no handle is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The maximum number of slots.
    pub fn max_handles(&self) -> u32 {
        self.max
    }

    /// How many more inserts can succeed without closing anything (free slots plus room to
    /// grow; retired slots are lost capacity).
    pub fn available(&self) -> usize {
        self.free_count + (self.max as usize - self.slots.len())
    }

    /// Make sure the next `n` inserts succeed: checks capacity and reserves the `Vec` growth
    /// they need. Used before moving several handles at once (an IPC transfer), so that the
    /// move is all-or-nothing.
    ///
    /// Errors: [`Error::HandleTableFull`], [`Error::OutOfMemory`].
    pub fn reserve(&mut self, n: usize) -> Result<(), Error> {
        if n > self.available() {
            return Err(Error::HandleTableFull);
        }
        let grow = n.saturating_sub(self.free_count);
        self.slots.try_reserve(grow).map_err(|_| Error::OutOfMemory)
    }

    /// Add an entry for `object` with `rights` (badge 0) and return its handle. On error the
    /// object is dropped (for a refcounted `T`: its reference released).
    ///
    /// Errors: [`Error::HandleTableFull`], [`Error::OutOfMemory`].
    pub fn insert(&mut self, object: T, rights: Rights) -> Result<Handle, Error> {
        self.insert_entry(Entry {
            object,
            rights,
            badge: 0,
        })
    }

    /// Add an entry with a badge (a handle arriving in an IPC message keeps its badge).
    ///
    /// Errors: [`Error::HandleTableFull`], [`Error::OutOfMemory`].
    pub fn insert_badged(
        &mut self,
        object: T,
        rights: Rights,
        badge: u64,
    ) -> Result<Handle, Error> {
        self.insert_entry(Entry {
            object,
            rights,
            badge,
        })
    }

    fn insert_entry(&mut self, entry: Entry<T>) -> Result<Handle, Error> {
        if let Some(index) = self.free_head {
            let slot = &mut self.slots[index as usize];
            let State::Free { next } = slot.state else {
                unreachable!("free list points at a slot that is not free");
            };
            self.free_head = next;
            self.free_count -= 1;
            entry.object.held(entry.rights);
            slot.state = State::Occupied(entry);
            self.live += 1;
            return Ok(Handle::new(index, slot.generation));
        }
        let index = u32::try_from(self.slots.len()).map_err(|_| Error::HandleTableFull)?;
        if index >= self.max {
            return Err(Error::HandleTableFull);
        }
        self.slots.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
        entry.object.held(entry.rights);
        self.slots.push(Slot {
            generation: 1,
            state: State::Occupied(entry),
        });
        self.live += 1;
        Ok(Handle::new(index, 1))
    }

    /// The entry `handle` names, if it is live.
    ///
    /// Errors: [`Error::InvalidHandle`] for anything but a live handle's exact value.
    pub fn entry(&self, handle: Handle) -> Result<&Entry<T>, Error> {
        match self.slots.get(handle.index() as usize) {
            Some(Slot {
                generation,
                state: State::Occupied(entry),
            }) if *generation == handle.generation() => Ok(entry),
            _ => Err(Error::InvalidHandle),
        }
    }

    fn entry_mut(&mut self, handle: Handle) -> Result<&mut Entry<T>, Error> {
        match self.slots.get_mut(handle.index() as usize) {
            Some(Slot {
                generation,
                state: State::Occupied(entry),
            }) if *generation == handle.generation() => Ok(entry),
            _ => Err(Error::InvalidHandle),
        }
    }

    /// The object `handle` names, if its rights include `required`.
    ///
    /// Errors: [`Error::InvalidHandle`], [`Error::MissingRights`].
    pub fn get(&self, handle: Handle, required: Rights) -> Result<&T, Error> {
        let entry = self.entry(handle)?;
        if !entry.rights.allows(required) {
            return Err(Error::MissingRights);
        }
        Ok(&entry.object)
    }

    /// Drop rights from a handle in place: its rights become `rights ∩ mask`. Returns the new
    /// rights. Needs no right (giving up rights is always allowed).
    ///
    /// Errors: [`Error::InvalidHandle`].
    pub fn restrict(&mut self, handle: Handle, mask: Rights) -> Result<Rights, Error> {
        let entry = self.entry_mut(handle)?;
        let old = entry.rights;
        entry.rights = old.restrict(mask);
        let lost = old.difference(entry.rights);
        if !lost.is_empty() {
            entry.object.released(lost);
        }
        Ok(entry.rights)
    }

    /// Remove a handle and give back its object; the caller drops it (releasing the reference)
    /// or moves it elsewhere. The slot's generation changes, so `handle` is dead from now on.
    ///
    /// Errors: [`Error::InvalidHandle`].
    pub fn close(&mut self, handle: Handle) -> Result<T, Error> {
        self.entry(handle)?;
        Ok(self.free_slot(handle.index()))
    }

    /// Free an occupied slot and return its object. Panics if the slot is not occupied: only
    /// called after a successful lookup.
    fn free_slot(&mut self, index: u32) -> T {
        let slot = &mut self.slots[index as usize];
        let retire = slot.generation == Handle::MAX_GENERATION;
        let new_state = if retire {
            State::Retired
        } else {
            slot.generation += 1;
            State::Free {
                next: self.free_head,
            }
        };
        let State::Occupied(entry) = core::mem::replace(&mut slot.state, new_state) else {
            unreachable!("free_slot on a slot that is not occupied");
        };
        if !retire {
            self.free_head = Some(index);
            self.free_count += 1;
        }
        self.live -= 1;
        entry.object.released(entry.rights);
        entry.object
    }

    /// Remove every handle, yielding each object exactly once (process death). Dropping the
    /// iterator early drops the remaining objects; either way the table ends empty and every
    /// handle it had issued is dead.
    pub fn drain(&mut self) -> Drain<'_, T> {
        Drain {
            table: self,
            next: 0,
        }
    }

    /// Every live handle and its entry, in index order (for `caps`-style listings).
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &Entry<T>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| match &slot.state {
                // `i < max <= u32::MAX`, so the cast is exact.
                State::Occupied(entry) => Some((Handle::new(i as u32, slot.generation), entry)),
                _ => None,
            })
    }

    #[cfg(test)]
    fn set_generation(&mut self, handle: Handle, generation: u32) -> Handle {
        self.slots[handle.index() as usize].generation = generation;
        Handle::new(handle.index(), generation)
    }
}

impl<T: Object> HandleTable<T> {
    /// The object `handle` names, if it is of `kind` and its rights include `required`.
    ///
    /// Errors, in this order: [`Error::InvalidHandle`], [`Error::WrongKind`],
    /// [`Error::MissingRights`].
    pub fn get_kind(
        &self,
        handle: Handle,
        kind: ObjectKind,
        required: Rights,
    ) -> Result<&T, Error> {
        let entry = self.entry(handle)?;
        if entry.object.kind() != kind {
            return Err(Error::WrongKind);
        }
        if !entry.rights.allows(required) {
            return Err(Error::MissingRights);
        }
        Ok(&entry.object)
    }

    /// What `handle_inspect` reports: kind, rights and badge.
    ///
    /// Errors: [`Error::InvalidHandle`].
    pub fn inspect(&self, handle: Handle) -> Result<(ObjectKind, Rights, u64), Error> {
        let entry = self.entry(handle)?;
        Ok((entry.object.kind(), entry.rights, entry.badge))
    }
}

impl<T: Object + Clone> HandleTable<T> {
    /// A second handle to the object `handle` names, with `rights` (which must be a subset of
    /// the original's) and, if `badge != 0`, that badge.
    ///
    /// The source needs [`Rights::DUPLICATE`]. A badge can be set only on an endpoint handle
    /// that has none yet, so a server's badged handle cannot be re-badged by its holder;
    /// `badge == 0` copies the source's badge.
    ///
    /// Errors, in this order: [`Error::InvalidHandle`]; [`Error::MissingRights`] (no
    /// `DUPLICATE`, or `rights` not a subset); [`Error::WrongKind`] (badge on a non-endpoint);
    /// [`Error::Exists`] (source already badged); [`Error::HandleTableFull`];
    /// [`Error::OutOfMemory`].
    pub fn duplicate(
        &mut self,
        handle: Handle,
        rights: Rights,
        badge: u64,
    ) -> Result<Handle, Error> {
        let entry = self.entry(handle)?;
        if !entry.rights.allows(Rights::DUPLICATE) {
            return Err(Error::MissingRights);
        }
        let rights = entry.rights.shrink(rights).ok_or(Error::MissingRights)?;
        let badge = match badge {
            0 => entry.badge,
            _ if entry.object.kind() != ObjectKind::Endpoint => return Err(Error::WrongKind),
            _ if entry.badge != 0 => return Err(Error::Exists),
            b => b,
        };
        let object = entry.object.clone();
        self.insert_entry(Entry {
            object,
            rights,
            badge,
        })
    }

    /// Copy the entry `handle` names into `dest` (another process's table) with `rights` ⊆ the
    /// original's: `handle_grant` and the handle part of an IPC transfer. The source needs
    /// [`Rights::TRANSFER`]; the badge travels with the handle.
    ///
    /// Errors: [`Error::InvalidHandle`]; [`Error::MissingRights`]; the destination's
    /// [`Error::HandleTableFull`] / [`Error::OutOfMemory`].
    pub fn grant_to(
        &self,
        handle: Handle,
        rights: Rights,
        dest: &mut HandleTable<T>,
    ) -> Result<Handle, Error> {
        let entry = self.entry(handle)?;
        if !entry.rights.allows(Rights::TRANSFER) {
            return Err(Error::MissingRights);
        }
        let rights = entry.rights.shrink(rights).ok_or(Error::MissingRights)?;
        dest.insert_entry(Entry {
            object: entry.object.clone(),
            rights,
            badge: entry.badge,
        })
    }
}

/// Iterator returned by [`HandleTable::drain`].
pub struct Drain<'a, T: Object> {
    table: &'a mut HandleTable<T>,
    next: usize,
}

impl<T: Object> Iterator for Drain<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        while self.next < self.table.slots.len() {
            let index = self.next;
            self.next += 1;
            if matches!(self.table.slots[index].state, State::Occupied(_)) {
                // `index < slots.len() <= max <= u32::MAX`.
                return Some(self.table.free_slot(index as u32));
            }
        }
        None
    }
}

impl<T: Object> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        self.for_each(drop);
    }
}

#[cfg(test)]
mod tests;
