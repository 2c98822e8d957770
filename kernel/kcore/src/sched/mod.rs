//! Run queues: the pure logic of the scheduler's ready set, tested on the host.
//!
//! [`RunQueue<T>`] keeps one FIFO per priority level (`PRIORITY_LEVELS` = 32, 0 lowest) and a
//! bitmap of non-empty levels, so "highest ready priority" is one `leading_zeros`. Round robin
//! within a level falls out of FIFO order: a preempted thread goes to the back of its level.
//!
//! The kernel keeps one `RunQueue` per CPU behind that CPU's scheduler lock; this type knows
//! nothing about threads, CPUs or locking. It refuses to allocate behind the caller's back
//! except when a level's queue grows (`VecDeque` growth; reported as an error, never an abort).

extern crate alloc;

use alloc::collections::VecDeque;

use hsync_abi::PRIORITY_LEVELS;

/// Number of priority levels as an index bound.
pub const LEVELS: usize = PRIORITY_LEVELS as usize;

// The non-empty bitmap is one u32.
const _: () = assert!(LEVELS == 32);

/// Why an operation on a run queue failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The priority is not below [`LEVELS`].
    BadPriority,
    /// The level's queue could not grow.
    OutOfMemory,
}

/// The ready set of one CPU: a FIFO per priority level.
#[derive(Debug)]
pub struct RunQueue<T> {
    levels: [VecDeque<T>; LEVELS],
    /// Bit `p` set iff `levels[p]` is non-empty.
    nonempty: u32,
    len: usize,
}

impl<T> Default for RunQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> RunQueue<T> {
    /// An empty run queue. Allocates nothing.
    pub const fn new() -> Self {
        RunQueue {
            levels: [const { VecDeque::new() }; LEVELS],
            nonempty: 0,
            len: 0,
        }
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The highest priority with a queued item.
    pub fn highest(&self) -> Option<u8> {
        // `31 - leading_zeros` < 32, so the cast is exact.
        (self.nonempty != 0).then(|| (31 - self.nonempty.leading_zeros()) as u8)
    }

    /// Makes sure each level can take `n` more items without allocating, so that a later
    /// [`RunQueue::push`] from a path that must not fail (waking a thread) cannot fail.
    ///
    /// Errors: [`QueueError::OutOfMemory`].
    pub fn reserve(&mut self, n: usize) -> Result<(), QueueError> {
        for level in &mut self.levels {
            level.try_reserve(n).map_err(|_| QueueError::OutOfMemory)?;
        }
        Ok(())
    }

    /// Makes sure level `prio` can hold `n` items in total without allocating.
    ///
    /// Errors: [`QueueError::BadPriority`], [`QueueError::OutOfMemory`].
    pub fn reserve_at(&mut self, prio: u8, n: usize) -> Result<(), QueueError> {
        let level = self
            .levels
            .get_mut(usize::from(prio))
            .ok_or(QueueError::BadPriority)?;
        let more = n.saturating_sub(level.len());
        level.try_reserve(more).map_err(|_| QueueError::OutOfMemory)
    }

    /// Appends `item` at the back of level `prio` (round robin: it runs after its peers).
    ///
    /// Errors: [`QueueError::BadPriority`], [`QueueError::OutOfMemory`]; the item comes back.
    pub fn push(&mut self, prio: u8, item: T) -> Result<(), (QueueError, T)> {
        let Some(level) = self.levels.get_mut(usize::from(prio)) else {
            return Err((QueueError::BadPriority, item));
        };
        if level.try_reserve(1).is_err() {
            return Err((QueueError::OutOfMemory, item));
        }
        level.push_back(item);
        self.nonempty |= 1 << prio;
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the front item of the highest non-empty level.
    pub fn pop(&mut self) -> Option<(u8, T)> {
        let prio = self.highest()?;
        let level = &mut self.levels[usize::from(prio)];
        let item = level.pop_front()?;
        if level.is_empty() {
            self.nonempty &= !(1 << prio);
        }
        self.len -= 1;
        Some((prio, item))
    }

    /// Removes the first item at level `prio` for which `pred` holds (a thread that is killed
    /// while ready). Returns it.
    pub fn remove(&mut self, prio: u8, mut pred: impl FnMut(&T) -> bool) -> Option<T> {
        let level = self.levels.get_mut(usize::from(prio))?;
        let pos = level.iter().position(&mut pred)?;
        let item = level.remove(pos)?;
        if level.is_empty() {
            self.nonempty &= !(1 << prio);
        }
        self.len -= 1;
        Some(item)
    }
}

#[cfg(test)]
mod tests;
