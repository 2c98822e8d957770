//! The IPC message layout: a [`MsgInfo`] word, up to [`REG_MSG_WORDS`] words in registers, the
//! rest of the words and any handles in the thread's [`IpcBuffer`].
//!
//! Registers of the fast path (see `docs/ipc.md`):
//!
//! | | `rdi` | `rsi` | `rdx` | `r10` | `r8` | `r9` |
//! |---|---|---|---|---|---|---|
//! | send, call, reply in | endpoint/reply | info | w0 | w1 | w2 | w3 |
//! | recv, reply_recv out | badge | info | w0 | w1 | w2 | w3 |
//! | call out | — | info | w0 | w1 | w2 | w3 |
//!
//! A message of at most four words and no handles touches no memory besides the two threads'
//! kernel state — under TCG every page touched after a CR3 switch costs a soft-TLB refill.

use core::mem::{align_of, offset_of, size_of};

use crate::{Error, Handle};

/// Message words carried in registers (`w0..w3`).
pub const REG_MSG_WORDS: usize = 4;

/// Largest number of words in one message (registers included).
pub const MAX_MSG_WORDS: usize = 64;

/// Largest number of handles in one message.
pub const MAX_MSG_HANDLES: usize = 4;

/// Message info: label, word count and handle count packed into one register.
///
/// ```text
///  63                                16 15     11 10    8 7        0
/// +------------------------------------+---------+-------+----------+
/// |               label                | reserved| hndls |  words   |
/// +------------------------------------+---------+-------+----------+
/// ```
///
/// * `words` (8 bits): message words, `0..=MAX_MSG_WORDS`; words `0..REG_MSG_WORDS` travel in
///   registers, the rest in [`IpcBuffer::words`].
/// * `handles` (3 bits): handles in [`IpcBuffer::handles`], `0..=MAX_MSG_HANDLES`.
/// * reserved (5 bits): must be zero, so they can gain a meaning later.
/// * `label` (48 bits): chosen by the protocol (typically the operation number); the kernel
///   passes it through untouched.
///
/// The only ways to build one are the checked [`MsgInfo::new`] and [`MsgInfo::from_raw`], so a
/// `MsgInfo` value is always within these limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct MsgInfo(u64);

impl MsgInfo {
    const WORDS_MASK: u64 = 0xff;
    const HANDLES_SHIFT: u32 = 8;
    const HANDLES_MASK: u64 = 0x7;
    const RESERVED_MASK: u64 = 0x1f << 11;
    const LABEL_SHIFT: u32 = 16;

    /// Largest label (48 bits).
    pub const MAX_LABEL: u64 = (1 << 48) - 1;

    /// A message with `label`, `words` words and `handles` handles.
    ///
    /// Errors: [`Error::MessageTooLong`] if `words > MAX_MSG_WORDS` or
    /// `handles > MAX_MSG_HANDLES`; [`Error::InvalidArgument`] if `label > MAX_LABEL`.
    pub const fn new(label: u64, words: usize, handles: usize) -> Result<MsgInfo, Error> {
        if words > MAX_MSG_WORDS || handles > MAX_MSG_HANDLES {
            return Err(Error::MessageTooLong);
        }
        if label > Self::MAX_LABEL {
            return Err(Error::InvalidArgument);
        }
        Ok(MsgInfo(
            (label << Self::LABEL_SHIFT) | ((handles as u64) << Self::HANDLES_SHIFT) | words as u64,
        ))
    }

    /// Decode a register value with the same limits as [`MsgInfo::new`]; reserved bits set are
    /// [`Error::InvalidArgument`].
    pub const fn from_raw(raw: u64) -> Result<MsgInfo, Error> {
        if raw & Self::RESERVED_MASK != 0 {
            return Err(Error::InvalidArgument);
        }
        let words = (raw & Self::WORDS_MASK) as usize;
        let handles = ((raw >> Self::HANDLES_SHIFT) & Self::HANDLES_MASK) as usize;
        if words > MAX_MSG_WORDS || handles > MAX_MSG_HANDLES {
            return Err(Error::MessageTooLong);
        }
        Ok(MsgInfo(raw))
    }

    /// The register value.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The protocol label.
    pub const fn label(self) -> u64 {
        self.0 >> Self::LABEL_SHIFT
    }

    /// Number of message words (registers included).
    pub const fn words(self) -> usize {
        (self.0 & Self::WORDS_MASK) as usize
    }

    /// Number of handles in the IPC buffer.
    pub const fn handles(self) -> usize {
        ((self.0 >> Self::HANDLES_SHIFT) & Self::HANDLES_MASK) as usize
    }

    /// Whether the message needs the IPC buffer at all (more than the register words, or any
    /// handle). The kernel's fast path is taken only when this is false.
    pub const fn uses_buffer(self) -> bool {
        self.words() > REG_MSG_WORDS || self.handles() > 0
    }
}

/// The per-thread IPC buffer: message words beyond the registers, and transferred handles.
///
/// Each thread registers one (its user address is an argument of `thread_create`; the kernel
/// picks it for a main thread). The address must be aligned to [`IpcBuffer::ALIGN`], which
/// (being ≥ its size) guarantees the buffer never straddles a page: a transfer touches one page
/// per side.
///
/// The kernel reads and writes only `words[REG_MSG_WORDS..info.words()]` and
/// `handles[..info.handles()]`; the other entries, and all of [`IpcBuffer::user`], belong to
/// user space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(1024))]
pub struct IpcBuffer {
    /// Message word `i` lives in `words[i]`. Entries below [`REG_MSG_WORDS`] are never used by
    /// the kernel (those words travel in registers); keeping the index direct means a stub can
    /// build a whole message here and load the first four into registers.
    pub words: [u64; MAX_MSG_WORDS],
    /// Sending: handles (in the sender's table) to copy to the receiver; each needs
    /// [`Rights::TRANSFER`](crate::Rights::TRANSFER). Receiving: the new handles in the
    /// receiver's table, with the rights the sender's handles had.
    pub handles: [Handle; MAX_MSG_HANDLES],
    /// Free for the user-space runtime (libhsync keeps thread-local data here). The kernel
    /// never reads or writes it.
    pub user: [u64; 60],
}

impl IpcBuffer {
    /// Required alignment of the buffer's user address, in bytes.
    pub const ALIGN: usize = 1024;
    /// Size of the buffer in bytes.
    pub const SIZE: usize = 1024;
    /// Byte offset of [`IpcBuffer::words`].
    pub const WORDS_OFFSET: usize = offset_of!(IpcBuffer, words);
    /// Byte offset of [`IpcBuffer::handles`].
    pub const HANDLES_OFFSET: usize = offset_of!(IpcBuffer, handles);
    /// Byte offset of [`IpcBuffer::user`].
    pub const USER_OFFSET: usize = offset_of!(IpcBuffer, user);

    /// An all-zero buffer.
    pub const fn new() -> IpcBuffer {
        IpcBuffer {
            words: [0; MAX_MSG_WORDS],
            handles: [Handle::NULL; MAX_MSG_HANDLES],
            user: [0; 60],
        }
    }
}

impl Default for IpcBuffer {
    fn default() -> Self {
        IpcBuffer::new()
    }
}

// The layout is ABI: a change here must be a deliberate ABI_VERSION bump, not an accident.
const _: () = {
    assert!(size_of::<IpcBuffer>() == IpcBuffer::SIZE);
    assert!(align_of::<IpcBuffer>() == IpcBuffer::ALIGN);
    assert!(IpcBuffer::SIZE <= IpcBuffer::ALIGN); // so an aligned buffer never crosses a page
    assert!(IpcBuffer::ALIGN <= crate::PAGE_SIZE as usize);
    assert!(IpcBuffer::WORDS_OFFSET == 0);
    assert!(IpcBuffer::HANDLES_OFFSET == 8 * MAX_MSG_WORDS);
    assert!(IpcBuffer::USER_OFFSET == IpcBuffer::HANDLES_OFFSET + 8 * MAX_MSG_HANDLES);
    assert!(size_of::<Handle>() == 8);
    assert!(MAX_MSG_WORDS as u64 <= MsgInfo::WORDS_MASK);
    assert!(MAX_MSG_HANDLES as u64 <= MsgInfo::HANDLES_MASK);
};
