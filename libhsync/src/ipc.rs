//! Synchronous IPC: [`Msg`] (a label and up to four register words — the fast path), longer
//! messages and handle transfer through the thread's [`IpcBuf`], and the endpoint operations.
//!
//! ```no_run
//! use libhsync::{Endpoint, Msg};
//! # fn serve(ep: &Endpoint) -> Result<(), libhsync::Error> {
//! // A server loop: one system call per request.
//! let mut req = ep.recv()?;
//! loop {
//!     let answer = Msg::new(0, &[req.msg.word(0) + 1])?;
//!     req = ep.reply_recv(answer)?;
//! }
//! # }
//! ```

use hsync_abi::{Error, IpcBuffer, MAX_MSG_HANDLES, MsgInfo, REG_MSG_WORDS, Sysnum};

use crate::handle::{AnyHandle, Endpoint, Handle, Reply, kind::Kind};
use crate::sys;

/// A message as it travels in registers: `MsgInfo` plus words 0..3.
///
/// Words beyond the fourth and handles live in the thread's [`IpcBuf`]; a `Msg` whose info
/// claims them is sent as is, and the kernel reads them from the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msg {
    /// Label, word count and handle count.
    pub info: MsgInfo,
    /// Register words `w0..w3` (entries past `info.words()` are ignored and sent as given).
    pub regs: [u64; REG_MSG_WORDS],
}

impl Msg {
    /// A register-only message: `label` and at most four words.
    ///
    /// Errors: [`Error::MessageTooLong`] for more than four words (use [`IpcBuf`] for those),
    /// [`Error::InvalidArgument`] for a label over 48 bits.
    pub fn new(label: u64, words: &[u64]) -> Result<Msg, Error> {
        if words.len() > REG_MSG_WORDS {
            return Err(Error::MessageTooLong);
        }
        let mut regs = [0; REG_MSG_WORDS];
        regs[..words.len()].copy_from_slice(words);
        Ok(Msg {
            info: MsgInfo::new(label, words.len(), 0)?,
            regs,
        })
    }

    /// The label.
    pub const fn label(&self) -> u64 {
        self.info.label()
    }

    /// Register word `i` (0 for `i >= 4`).
    pub fn word(&self, i: usize) -> u64 {
        self.regs.get(i).copied().unwrap_or(0)
    }

    #[inline(always)]
    fn args(&self, first: u64) -> [u64; 6] {
        [
            first,
            self.info.raw(),
            self.regs[0],
            self.regs[1],
            self.regs[2],
            self.regs[3],
        ]
    }

    #[inline(always)]
    fn from_out(out: &[u64; 6]) -> Result<Msg, Error> {
        Ok(Msg {
            info: MsgInfo::from_raw(out[1])?,
            regs: [out[2], out[3], out[4], out[5]],
        })
    }
}

/// A received message and the badge of the endpoint handle it was sent through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The sender's badge (0 for an unbadged handle).
    pub badge: u64,
    /// The message (register part; see [`IpcBuf`] for the rest).
    pub msg: Msg,
}

impl Received {
    #[inline(always)]
    fn from_out(out: &[u64; 6]) -> Result<Received, Error> {
        Ok(Received {
            badge: out[0],
            msg: Msg::from_out(out)?,
        })
    }
}

/// This thread's IPC buffer: message words 4..63 and transferred handles.
///
/// One exists per thread (the runtime hands it to `main` and to thread entry functions); it is
/// not `Clone`, so `&mut IpcBuf` proves the thread is the only user. The kernel writes the buffer
/// during receiving calls, so this type never forms a Rust reference to it: every access is a
/// volatile read or write through a raw pointer.
#[derive(Debug)]
pub struct IpcBuf {
    addr: usize,
}

impl IpcBuf {
    /// Wraps the IPC buffer at `addr`.
    ///
    /// # Safety
    ///
    /// `addr` must be this thread's registered, mapped, writable IPC buffer, and no other
    /// `IpcBuf` for it may exist.
    pub const unsafe fn new(addr: u64) -> IpcBuf {
        IpcBuf {
            addr: addr as usize,
        }
    }

    /// The user address of the buffer.
    pub fn addr(&self) -> u64 {
        self.addr as u64
    }

    fn slot(&self, offset: usize) -> *mut u64 {
        (self.addr + offset) as *mut u64
    }

    /// Message word `i` (`i < 64`); words 0..3 are not used by the kernel.
    pub fn word(&self, i: usize) -> u64 {
        let i = i.min(hsync_abi::MAX_MSG_WORDS - 1);
        // SAFETY: `new`'s contract: the buffer is mapped and ours; `i < 64` stays inside
        // `words`; volatile because the kernel writes it behind the compiler's back.
        unsafe { self.slot(IpcBuffer::WORDS_OFFSET + 8 * i).read_volatile() }
    }

    /// Sets message word `i` (`i < 64`; larger indices are ignored).
    pub fn set_word(&mut self, i: usize, value: u64) {
        if i < hsync_abi::MAX_MSG_WORDS {
            // SAFETY: as in `word`; `&mut self` means no other user on this thread.
            unsafe {
                self.slot(IpcBuffer::WORDS_OFFSET + 8 * i)
                    .write_volatile(value)
            }
        }
    }

    /// Handle slot `i` (`i < 4`) as a raw value.
    pub fn handle(&self, i: usize) -> hsync_abi::Handle {
        let i = i.min(MAX_MSG_HANDLES - 1);
        // SAFETY: as in `word`; `i < 4` stays inside `handles`.
        hsync_abi::Handle::from_raw(unsafe {
            self.slot(IpcBuffer::HANDLES_OFFSET + 8 * i).read_volatile()
        })
    }

    /// Sets handle slot `i` (`i < 4`; larger indices are ignored).
    pub fn set_handle(&mut self, i: usize, h: hsync_abi::Handle) {
        if i < MAX_MSG_HANDLES {
            // SAFETY: as in `set_word`.
            unsafe {
                self.slot(IpcBuffer::HANDLES_OFFSET + 8 * i)
                    .write_volatile(h.raw())
            }
        }
    }

    /// Takes ownership of received handle `i` (an untyped handle; see `Handle::cast`).
    pub fn take_handle(&mut self, i: usize) -> AnyHandle {
        let h = self.handle(i);
        self.set_handle(i, hsync_abi::Handle::NULL);
        Handle::from_raw(h)
    }

    /// Builds a long message: `words` (up to 64; 0..3 go to registers, the rest here) and
    /// `handles` (up to 4, each needs `TRANSFER`; the sender keeps its handles).
    pub fn compose<K: Kind>(
        &mut self,
        label: u64,
        words: &[u64],
        handles: &[&Handle<K>],
    ) -> Result<Msg, Error> {
        let info = MsgInfo::new(label, words.len(), handles.len())?;
        let mut regs = [0; REG_MSG_WORDS];
        for (i, &w) in words.iter().enumerate() {
            match regs.get_mut(i) {
                Some(r) => *r = w,
                None => self.set_word(i, w),
            }
        }
        for (i, h) in handles.iter().enumerate() {
            self.set_handle(i, h.raw());
        }
        Ok(Msg { info, regs })
    }

    /// Message word `i` of a received message `msg`: from the registers for `i < 4`, else
    /// from this buffer. Words past `msg.info.words()` read as 0.
    pub fn received_word(&self, msg: &Msg, i: usize) -> u64 {
        if i >= msg.info.words() {
            0
        } else if i < REG_MSG_WORDS {
            msg.regs[i]
        } else {
            self.word(i)
        }
    }
}

impl Endpoint {
    /// Sends `msg` and waits for the reply (`ipc_call`).
    ///
    /// Recoverable errors: [`Error::PeerDied`] when the server died or dropped the reply right.
    #[inline(always)]
    pub fn call(&self, msg: Msg) -> Result<Msg, Error> {
        let out = sys::pure(Sysnum::IpcCall, msg.args(self.raw().raw()))?;
        Msg::from_out(&out)
    }

    /// Sends `msg` one way, waiting until a receiver takes it (`ipc_send`).
    pub fn send(&self, msg: Msg) -> Result<(), Error> {
        sys::pure(Sysnum::IpcSend, msg.args(self.raw().raw())).map(|_| ())
    }

    /// Sends `msg` only if a receiver is waiting, else [`Error::WouldBlock`] (`ipc_try_send`).
    pub fn try_send(&self, msg: Msg) -> Result<(), Error> {
        sys::pure(Sysnum::IpcTrySend, msg.args(self.raw().raw())).map(|_| ())
    }

    /// Waits for a message (`ipc_recv`).
    pub fn recv(&self) -> Result<Received, Error> {
        let out = sys::pure(Sysnum::IpcRecv, [self.raw().raw(), 0, 0, 0, 0, 0])?;
        Received::from_out(&out)
    }

    /// Takes a message if one is waiting, else [`Error::WouldBlock`] (`ipc_try_recv`).
    pub fn try_recv(&self) -> Result<Received, Error> {
        let out = sys::pure(Sysnum::IpcTryRecv, [self.raw().raw(), 0, 0, 0, 0, 0])?;
        Received::from_out(&out)
    }

    /// Answers the pending caller with `reply` and waits for the next message
    /// (`ipc_reply_recv`): a server loop's one system call.
    #[inline(always)]
    pub fn reply_recv(&self, reply: Msg) -> Result<Received, Error> {
        let out = sys::pure(Sysnum::IpcReplyRecv, reply.args(self.raw().raw()))?;
        Received::from_out(&out)
    }
}

/// Answers this thread's pending caller (`ipc_reply` with a null reply handle).
pub fn reply(msg: Msg) -> Result<(), Error> {
    sys::pure(Sysnum::IpcReply, msg.args(0)).map(|_| ())
}

/// Moves this thread's pending caller into a one-shot [`Reply`] handle (`ipc_reply_save`).
pub fn save_reply() -> Result<Reply, Error> {
    let out = sys::pure(Sysnum::IpcReplySave, [0; 6])?;
    Ok(Handle::from_raw(hsync_abi::Handle::from_raw(out[0])))
}

impl Reply {
    /// Answers the saved caller; the handle is consumed whatever the outcome
    /// ([`Error::PeerDied`] if the caller is gone).
    pub fn send(self, msg: Msg) -> Result<(), Error> {
        let raw = self.into_raw();
        sys::pure(Sysnum::IpcReply, msg.args(raw.raw())).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_messages_encode_label_and_count() {
        let m = Msg::new(7, &[1, 2, 3]).unwrap();
        assert_eq!((m.label(), m.info.words(), m.info.handles()), (7, 3, 0));
        assert_eq!(m.regs, [1, 2, 3, 0]);
        assert!(!m.info.uses_buffer());
        assert_eq!(m.args(9), [9, m.info.raw(), 1, 2, 3, 0]);
        assert_eq!(Msg::new(0, &[0; 5]), Err(Error::MessageTooLong));
        assert_eq!(Msg::new(1 << 48, &[]), Err(Error::InvalidArgument));
    }

    #[test]
    fn received_registers_decode_and_reject_bad_info() {
        let info = MsgInfo::new(3, 2, 0).unwrap();
        let r = Received::from_out(&[5, info.raw(), 10, 20, 0, 0]).unwrap();
        assert_eq!(r.badge, 5);
        assert_eq!(r.msg.label(), 3);
        assert_eq!((r.msg.word(0), r.msg.word(1), r.msg.word(9)), (10, 20, 0));
        assert_eq!(
            Received::from_out(&[0, 1 << 11, 0, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn long_messages_split_between_registers_and_buffer() {
        let mut mem = IpcBuffer::new();
        let addr = core::ptr::addr_of_mut!(mem) as u64;
        // SAFETY: `mem` is a live, aligned IpcBuffer used only through `buf` below.
        let mut buf = unsafe { IpcBuf::new(addr) };
        let words: [u64; 10] = core::array::from_fn(|i| 100 + i as u64);
        let h: Handle<crate::handle::kind::Frame> = Handle::from_raw(hsync_abi::Handle::new(3, 4));
        let msg = buf.compose(42, &words, &[&h]).unwrap();
        assert_eq!((msg.info.words(), msg.info.handles()), (10, 1));
        assert_eq!(msg.regs, [100, 101, 102, 103]);
        for i in 0..10 {
            assert_eq!(buf.received_word(&msg, i), 100 + i as u64);
        }
        assert_eq!(buf.received_word(&msg, 10), 0);
        assert_eq!(buf.handle(0), hsync_abi::Handle::new(3, 4));
        let taken = buf.take_handle(0).into_raw();
        assert_eq!(taken, hsync_abi::Handle::new(3, 4));
        assert!(buf.handle(0).is_null());
        let _ = h.into_raw(); // no kernel on the host: do not close
        assert_eq!(buf.word(9), 109);
        assert!(
            buf_compose_limits(&mut unsafe_free_buf(&mut mem)).is_err(),
            "65 words must be refused"
        );
    }

    fn unsafe_free_buf(mem: &mut IpcBuffer) -> IpcBuf {
        // SAFETY: `mem` is a live, aligned IpcBuffer, borrowed mutably for the buffer's use.
        unsafe { IpcBuf::new(core::ptr::addr_of_mut!(*mem) as u64) }
    }

    fn buf_compose_limits(buf: &mut IpcBuf) -> Result<Msg, Error> {
        buf.compose::<crate::handle::kind::Any>(0, &[0; 65], &[])
    }
}
