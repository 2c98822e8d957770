//! Typed IPC protocols: one definition ([`protocol!`](crate::protocol!)) gives a client stub, a
//! server trait and its dispatch loop.
//!
//! The model is Hubris's Idol, written as a declarative macro. A definition lists operations,
//! each with a label (the IPC label, the operation's number), typed arguments and a typed result:
//!
//! ```ignore
//! libhsync::protocol! {
//!     /// Counts things for its clients.
//!     pub protocol Counter {
//!         server CounterServer;
//!         client CounterClient;
//!         error CounterError;
//!         /// Adds `n` to the caller's count; returns the new count.
//!         fn add(n: u64) -> u64 = 1;
//!         /// Resets the caller's count.
//!         fn reset() = 2;
//!     }
//! }
//! ```
//!
//! and generates
//!
//! * `pub struct Counter;` implementing [`Protocol`] (its name and `(op, label)` table);
//! * `pub struct CounterClient` wrapping an [`Endpoint`], with one method per operation:
//!   `fn add(&self, ipc: &mut IpcBuf, n: u64) -> Result<u64, ProtocolError<CounterError>>`;
//! * `pub trait CounterServer` with one method per operation, which receives the caller's badge:
//!   `fn add(&mut self, badge: u64, n: u64) -> Result<u64, CounterError>`, and two provided
//!   methods: `dispatch` (decode one request, call, encode the reply; no system
//!   calls, so host tests drive it directly) and `serve(&mut self, ep, ipc) -> Error`, the
//!   `reply_recv` loop.
//!
//! # Wire format
//!
//! A request's label is the operation's label; its words are the arguments in order, each
//! encoded by its [`Arg`] implementation: word types ([`Word`]: integers, `bool`, `()`,
//! enums made with [`wire_enum!`](crate::wire_enum!)) take one word; byte strings (`&[u8]`,
//! `&str`, [`Bytes`]) take a length word followed by the bytes packed little-endian, eight per
//! word; handles ([`Handle<K>`]) take a handle slot. Words 0..3 travel in registers, the rest in
//! the IPC buffer, so an operation whose arguments fit four words uses the kernel's fast path.
//!
//! A reply's label is a status ([`status`]): `OK` with the result encoded the same way,
//! `APP_ERROR` with the application's error in word 0, `UNKNOWN_OP` for a label the server does
//! not know, `BAD_REQUEST` for arguments that do not decode (too few or too many words or
//! handles, a `bool` that is neither 0 nor 1, a `u32` over 32 bits, a byte length that
//! overruns the message, invalid UTF-8), `SERVER_ERROR` when the result did not fit a message.
//! Decoding is strict: a message must be consumed exactly.
//!
//! # Ownership
//!
//! A [`Message`] owns the handles in it and closes the ones nobody took when dropped. A handle
//! argument or result is therefore *moved*: the kernel copies it to the peer, and the sender's
//! copy is closed once the message is sent (also when the call fails). Results must own their
//! data (use [`Bytes`], not `&[u8]`, as a result type).
//!
//! # Errors
//!
//! A client method returns [`ProtocolError`]: [`ServerDied`](ProtocolError::ServerDied) when the
//! server is gone (the kernel's `PeerDied`; reconnect through whoever handed out the endpoint),
//! [`BadReply`](ProtocolError::BadReply), [`UnknownOp`](ProtocolError::UnknownOp),
//! [`BadRequest`](ProtocolError::BadRequest), [`Kernel`](ProtocolError::Kernel) for other kernel
//! errors (and `MessageTooLong` when the arguments do not fit), and
//! [`App`](ProtocolError::App) for the protocol's own error type.

use core::convert::Infallible;
use core::fmt;

use hsync_abi::{Error, MAX_MSG_HANDLES, MAX_MSG_WORDS, MsgInfo, REG_MSG_WORDS};

use crate::handle::{self, Endpoint, Handle, kind::Kind};
use crate::ipc::{IpcBuf, Msg};

/// Reply labels: the outcome of a request.
pub mod status {
    /// The operation ran; the result follows.
    pub const OK: u64 = 0;
    /// The operation ran and failed; word 0 is the protocol's error ([`super::Word`]).
    pub const APP_ERROR: u64 = 1;
    /// The server does not know the request's label.
    pub const UNKNOWN_OP: u64 = 2;
    /// The request's words or handles do not decode as the operation's arguments.
    pub const BAD_REQUEST: u64 = 3;
    /// The server could not encode its result (larger than a message).
    pub const SERVER_ERROR: u64 = 4;
}

/// Bytes in a message: 64 words of 8.
const MSG_BYTES: usize = MAX_MSG_WORDS * 8;

/// What a client call can fail with. `E` is the protocol's own error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError<E> {
    /// The server died (or dropped the request unanswered): the kernel's `PeerDied`.
    ServerDied,
    /// The reply does not decode as this operation's result.
    BadReply,
    /// The server does not implement this operation (an older or different protocol).
    UnknownOp,
    /// The server could not decode the request.
    BadRequest,
    /// Another kernel error (e.g. `InvalidHandle`, `MissingRights`), or `MessageTooLong` when
    /// the arguments do not fit a message.
    Kernel(Error),
    /// The operation's own error.
    App(E),
}

impl<E> ProtocolError<E> {
    /// A kernel error from `ipc_call`: `PeerDied` becomes [`ProtocolError::ServerDied`].
    pub fn from_kernel(e: Error) -> Self {
        match e {
            Error::PeerDied => ProtocolError::ServerDied,
            e => ProtocolError::Kernel(e),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for ProtocolError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ServerDied => f.write_str("server died"),
            ProtocolError::BadReply => f.write_str("malformed reply"),
            ProtocolError::UnknownOp => f.write_str("operation unknown to the server"),
            ProtocolError::BadRequest => f.write_str("server could not decode the request"),
            ProtocolError::Kernel(e) => write!(f, "kernel error: {e:?}"),
            ProtocolError::App(e) => write!(f, "{e:?}"),
        }
    }
}

/// A protocol's identity, implemented by the marker type [`protocol!`](crate::protocol!)
/// generates.
pub trait Protocol {
    /// The protocol's name as written in its definition.
    const NAME: &'static str;
    /// Every operation: `(name, label)`, in definition order.
    const OPS: &'static [(&'static str, u64)];
}

/// A value that travels as one message word: integers, `bool`, `Infallible` and
/// enums made with [`wire_enum!`](crate::wire_enum!). Also the type of a protocol's errors.
pub trait Word: Sized {
    /// The word.
    fn to_word(self) -> u64;
    /// The value, or `None` when `w` is not one this type encodes to.
    fn from_word(w: u64) -> Option<Self>;
}

macro_rules! word_uint {
    ($($t:ty),*) => {$(
        impl Word for $t {
            fn to_word(self) -> u64 {
                self as u64
            }
            fn from_word(w: u64) -> Option<Self> {
                <$t>::try_from(w).ok()
            }
        }
    )*};
}
word_uint!(u8, u16, u32, u64, usize);

macro_rules! word_int {
    ($($t:ty),*) => {$(
        impl Word for $t {
            fn to_word(self) -> u64 {
                i64::from(self) as u64
            }
            fn from_word(w: u64) -> Option<Self> {
                <$t>::try_from(w as i64).ok()
            }
        }
    )*};
}
word_int!(i8, i16, i32, i64);

impl Word for bool {
    fn to_word(self) -> u64 {
        u64::from(self)
    }
    fn from_word(w: u64) -> Option<Self> {
        match w {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

impl Word for Infallible {
    fn to_word(self) -> u64 {
        match self {}
    }
    fn from_word(_: u64) -> Option<Self> {
        None
    }
}

/// Encodes and decodes one argument or result. Implemented for every [`Word`], `()` (no words), tuples
/// of up to four `Arg`s, byte strings (`&[u8]`, `&str`, [`Bytes`]) and [`Handle<K>`].
pub trait Arg<'a>: Sized {
    /// Appends `self` to the message.
    ///
    /// Errors: [`Error::MessageTooLong`] when it does not fit.
    fn encode(self, e: &mut Message) -> Result<(), Error>;
    /// Reads the next value, or `None` when the message does not hold one.
    fn decode(d: &mut Decoder<'a>) -> Option<Self>;
}

impl<'a, T: Word> Arg<'a> for T {
    fn encode(self, e: &mut Message) -> Result<(), Error> {
        e.push_word(self.to_word())
    }
    fn decode(d: &mut Decoder<'a>) -> Option<Self> {
        T::from_word(d.word()?)
    }
}

/// Nothing: no words.
impl<'a> Arg<'a> for () {
    fn encode(self, _: &mut Message) -> Result<(), Error> {
        Ok(())
    }
    fn decode(_: &mut Decoder<'a>) -> Option<Self> {
        Some(())
    }
}

macro_rules! arg_tuple {
    ($($n:ident),*) => {
        impl<'a, $($n: Arg<'a>),*> Arg<'a> for ($($n,)*) {
            #[allow(non_snake_case, reason = "the names are the type parameters'")]
            fn encode(self, e: &mut Message) -> Result<(), Error> {
                let ($($n,)*) = self;
                $($n.encode(e)?;)*
                Ok(())
            }
            fn decode(d: &mut Decoder<'a>) -> Option<Self> {
                Some(($($n::decode(d)?,)*))
            }
        }
    };
}
arg_tuple!(A, B);
arg_tuple!(A, B, C);
arg_tuple!(A, B, C, D);

impl<'a> Arg<'a> for &'a [u8] {
    fn encode(self, e: &mut Message) -> Result<(), Error> {
        e.push_bytes(self)
    }
    fn decode(d: &mut Decoder<'a>) -> Option<Self> {
        d.bytes()
    }
}

impl<'a> Arg<'a> for &'a str {
    fn encode(self, e: &mut Message) -> Result<(), Error> {
        e.push_bytes(self.as_bytes())
    }
    fn decode(d: &mut Decoder<'a>) -> Option<Self> {
        core::str::from_utf8(d.bytes()?).ok()
    }
}

impl<'a> Arg<'a> for Bytes {
    fn encode(self, e: &mut Message) -> Result<(), Error> {
        e.push_bytes(self.as_slice())
    }
    fn decode(d: &mut Decoder<'a>) -> Option<Self> {
        Bytes::from_slice(d.bytes()?)
    }
}

impl<'a, K: Kind> Arg<'a> for Handle<K> {
    fn encode(self, e: &mut Message) -> Result<(), Error> {
        e.push_handle(self)
    }
    /// The kind is the sender's promise; the kernel checks it on use (see `Handle::cast`).
    fn decode(d: &mut Decoder<'a>) -> Option<Self> {
        d.handle().map(Handle::from_raw)
    }
}

/// An owned byte string of up to [`Bytes::CAPACITY`] bytes: a result type for byte data
/// (arguments can be `&[u8]`).
#[derive(Clone)]
pub struct Bytes {
    len: usize,
    buf: [u8; Bytes::CAPACITY],
}

impl Bytes {
    /// The most bytes one message carries (63 words after the length word).
    pub const CAPACITY: usize = MSG_BYTES - 8;

    /// An empty string.
    pub const fn new() -> Bytes {
        Bytes {
            len: 0,
            buf: [0; Bytes::CAPACITY],
        }
    }

    /// A copy of `s`, or `None` if it is longer than [`Bytes::CAPACITY`].
    pub fn from_slice(s: &[u8]) -> Option<Bytes> {
        let mut b = Bytes::new();
        b.buf.get_mut(..s.len())?.copy_from_slice(s);
        b.len = s.len();
        Some(b)
    }

    /// Appends as much of `s` as fits; returns how many bytes were taken.
    pub fn extend(&mut self, s: &[u8]) -> usize {
        let n = s.len().min(Bytes::CAPACITY - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        n
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Default for Bytes {
    fn default() -> Self {
        Bytes::new()
    }
}

impl core::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Bytes {}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({:?})", self.as_slice())
    }
}

/// A whole message in memory: label, up to 64 words (stored as little-endian bytes, so byte
/// strings can be borrowed from it) and up to 4 owned handles.
///
/// Built by the stubs (a request, a reply) and filled from a received [`Msg`]; moved to and
/// from the registers and the IPC buffer by [`Message::load`] and [`Message::receive`], the
/// only two functions that touch the buffer. Untaken handles are closed on drop.
pub struct Message {
    label: u64,
    words: usize,
    data: [u8; MSG_BYTES],
    handles: [hsync_abi::Handle; MAX_MSG_HANDLES],
    nhandles: usize,
}

impl Message {
    /// An empty message with `label` (checked when sent: at most 48 bits).
    pub const fn new(label: u64) -> Message {
        Message {
            label,
            words: 0,
            data: [0; MSG_BYTES],
            handles: [hsync_abi::Handle::NULL; MAX_MSG_HANDLES],
            nhandles: 0,
        }
    }

    /// A reply with status `OK` holding `value`, or `SERVER_ERROR` if it does not fit.
    pub fn ok<'a, T: Arg<'a>>(value: T) -> Message {
        let mut m = Message::new(status::OK);
        match value.encode(&mut m) {
            Ok(()) => m,
            Err(_) => Message::new(status::SERVER_ERROR),
        }
    }

    /// The reply for a handler's outcome: `OK` + value, or `APP_ERROR` + the error's word.
    pub fn reply<'a, T: Arg<'a>, E: Word>(result: Result<T, E>) -> Message {
        match result {
            Ok(v) => Message::ok(v),
            Err(e) => {
                let mut m = Message::new(status::APP_ERROR);
                // One word always fits an empty message.
                let _ = m.push_word(e.to_word());
                m
            }
        }
    }

    /// The label.
    pub const fn label(&self) -> u64 {
        self.label
    }

    /// Number of words.
    pub const fn words(&self) -> usize {
        self.words
    }

    /// Number of handle slots in use (taken or not).
    pub const fn handles(&self) -> usize {
        self.nhandles
    }

    /// Word `i` (0 past the end).
    pub fn word(&self, i: usize) -> u64 {
        if i >= self.words {
            return 0;
        }
        read_word(&self.data, i)
    }

    /// Appends a word. Errors: [`Error::MessageTooLong`] past 64 words.
    pub fn push_word(&mut self, w: u64) -> Result<(), Error> {
        let i = self.words;
        let slot = self
            .data
            .get_mut(8 * i..8 * i + 8)
            .ok_or(Error::MessageTooLong)?;
        slot.copy_from_slice(&w.to_le_bytes());
        self.words += 1;
        Ok(())
    }

    /// Appends a length word and `s` packed eight bytes per word (the last one zero-padded).
    /// Errors: [`Error::MessageTooLong`] when it does not fit; the message is then unchanged.
    pub fn push_bytes(&mut self, s: &[u8]) -> Result<(), Error> {
        let start = 8 * (self.words + 1);
        let padded = s.len().div_ceil(8) * 8;
        if self.words >= MAX_MSG_WORDS || padded > MSG_BYTES - start {
            return Err(Error::MessageTooLong);
        }
        self.push_word(s.len() as u64)?;
        self.data[start..start + s.len()].copy_from_slice(s);
        self.data[start + s.len()..start + padded].fill(0);
        self.words += padded / 8;
        Ok(())
    }

    /// Moves `h` into the next handle slot. Errors: [`Error::MessageTooLong`] past 4 handles
    /// (`h` is closed then).
    pub fn push_handle<K: Kind>(&mut self, h: Handle<K>) -> Result<(), Error> {
        let slot = self
            .handles
            .get_mut(self.nhandles)
            .ok_or(Error::MessageTooLong)?;
        *slot = h.into_raw();
        self.nhandles += 1;
        Ok(())
    }

    /// A reader over the words and handles, from the first.
    pub fn decoder(&mut self) -> Decoder<'_> {
        Decoder {
            data: &self.data[..8 * self.words],
            pos: 0,
            handles: &mut self.handles[..self.nhandles],
            hpos: 0,
        }
    }

    /// The register part of this message, after writing words 4.. and the handles into `ipc`.
    /// The message keeps its handles (the kernel copies them; drop the message after sending
    /// to close this side's copies).
    ///
    /// Errors: [`Error::InvalidArgument`] for a label over 48 bits.
    pub fn load(&self, ipc: &mut IpcBuf) -> Result<Msg, Error> {
        let info = MsgInfo::new(self.label, self.words, self.nhandles)?;
        let mut regs = [0; REG_MSG_WORDS];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = self.word(i);
        }
        for i in REG_MSG_WORDS..self.words {
            ipc.set_word(i, self.word(i));
        }
        for (i, &h) in self.handles.iter().enumerate().take(self.nhandles) {
            ipc.set_handle(i, h);
        }
        Ok(Msg { info, regs })
    }

    /// The whole message `msg` just received: words 4.. from `ipc`, and its handles, which
    /// the message now owns (their slots in `ipc` are cleared).
    pub fn receive(msg: &Msg, ipc: &mut IpcBuf) -> Message {
        let mut m = Message::new(msg.label());
        for i in 0..msg.info.words() {
            // At most 64 words (MsgInfo checks), so this cannot fail.
            let _ = m.push_word(ipc.received_word(msg, i));
        }
        for i in 0..msg.info.handles().min(MAX_MSG_HANDLES) {
            m.handles[i] = ipc.take_handle(i).into_raw();
        }
        m.nhandles = msg.info.handles().min(MAX_MSG_HANDLES);
        m
    }

    /// Decodes this message as a reply carrying a `T` (see [`status`]).
    pub fn into_result<'a, T: Arg<'a>, E: Word>(&'a mut self) -> Result<T, ProtocolError<E>> {
        match self.label {
            status::OK => {
                let mut d = self.decoder();
                let v = T::decode(&mut d).ok_or(ProtocolError::BadReply)?;
                d.finish().then_some(v).ok_or(ProtocolError::BadReply)
            }
            status::APP_ERROR if self.words == 1 && self.nhandles == 0 => {
                Err(E::from_word(self.word(0)).map_or(ProtocolError::BadReply, ProtocolError::App))
            }
            status::UNKNOWN_OP => Err(ProtocolError::UnknownOp),
            status::BAD_REQUEST => Err(ProtocolError::BadRequest),
            _ => Err(ProtocolError::BadReply),
        }
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        for h in self.handles.iter().take(self.nhandles) {
            if !h.is_null() {
                let _ = handle::close_raw(*h);
            }
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("label", &self.label)
            .field("words", &self.words)
            .field("handles", &self.nhandles)
            .finish()
    }
}

fn read_word(data: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = data.get(8 * i..8 * i + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

/// Reads a [`Message`]'s words and handles in order ([`Arg::decode`] uses it).
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    handles: &'a mut [hsync_abi::Handle],
    hpos: usize,
}

impl<'a> Decoder<'a> {
    /// The next word.
    pub fn word(&mut self) -> Option<u64> {
        if 8 * self.pos >= self.data.len() {
            return None;
        }
        let w = read_word(self.data, self.pos);
        self.pos += 1;
        Some(w)
    }

    /// The next byte string (length word, then the packed bytes).
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.word()?).ok()?;
        let start = 8 * self.pos;
        let padded = len.checked_next_multiple_of(8)?;
        let data: &'a [u8] = self.data;
        let out = data.get(start..start.checked_add(len)?)?;
        if start.checked_add(padded)? > data.len() {
            return None;
        }
        self.pos += padded / 8;
        Some(out)
    }

    /// The next handle (raw), taken out of the message; `None` if there is none or it is null.
    pub fn handle(&mut self) -> Option<hsync_abi::Handle> {
        let slot = self.handles.get_mut(self.hpos)?;
        self.hpos += 1;
        let h = core::mem::replace(slot, hsync_abi::Handle::NULL);
        (!h.is_null()).then_some(h)
    }

    /// The next value of type `T`.
    pub fn take<T: Arg<'a>>(&mut self) -> Option<T> {
        T::decode(self)
    }

    /// Whether every word and handle was consumed (a strict decoder's last check).
    pub fn finish(&self) -> bool {
        8 * self.pos == self.data.len() && self.hpos == self.handles.len()
    }
}

/// Sends `req` on `ep` and returns the whole reply (the client half of a generated stub).
///
/// `req`'s handles are closed on this side afterwards, whether the call succeeded or not.
pub fn call<E>(ep: &Endpoint, ipc: &mut IpcBuf, req: Message) -> Result<Message, ProtocolError<E>> {
    let msg = req.load(ipc).map_err(ProtocolError::Kernel)?;
    let out = ep.call(msg).map_err(ProtocolError::from_kernel)?;
    drop(req);
    Ok(Message::receive(&out, ipc))
}

/// The server half of a generated stub: receives on `ep`, hands each request and the caller's
/// badge to `handle`, replies with what it returns, and receives again (`ipc_reply_recv`).
///
/// Never returns on a bad request (the handler answers it); returns the kernel's error when
/// receiving itself fails (e.g. the endpoint handle was closed or lacks `RECV`). A reply the
/// kernel refuses (the caller's handle table is full, say) is dropped and the loop goes on.
pub fn serve_with(
    ep: &Endpoint,
    ipc: &mut IpcBuf,
    mut handle: impl FnMut(u64, &mut Message) -> Message,
) -> Error {
    let mut rx = match ep.recv() {
        Ok(rx) => rx,
        Err(e) => return e,
    };
    loop {
        let mut req = Message::receive(&rx.msg, ipc);
        let reply = handle(rx.badge, &mut req);
        drop(req);
        let out = reply
            .load(ipc)
            .or_else(|_| Msg::new(status::SERVER_ERROR, &[]));
        let next = match out {
            Ok(out) => ep.reply_recv(out),
            Err(_) => ep.recv(),
        };
        drop(reply);
        rx = match next {
            Ok(rx) => rx,
            Err(e) => {
                log::warn!("protocol server: reply refused: {e:?}");
                match ep.recv() {
                    Ok(rx) => rx,
                    Err(e) => return e,
                }
            }
        };
    }
}

/// Declares a protocol: a marker type, a client stub and a server trait (see the
/// [module documentation](mod@crate::protocol) for what is generated and the wire format).
///
/// ```ignore
/// libhsync::protocol! {
///     /// Pings.
///     pub protocol Pinger {
///         server PingerServer;
///         client PingerClient;
///         // `error E;` is optional (default `core::convert::Infallible`).
///         /// Returns `x + 1`.
///         fn ping(x: u64) -> u64 = 1;
///         /// No result: `-> ()` may be left out.
///         fn poke(data: &[u8]) = 2;
///     }
/// }
/// ```
///
/// Labels must be distinct and below 2^48 (checked at compile time). Operation names must not
/// be `dispatch` or `serve` (the trait's provided methods).
#[macro_export]
macro_rules! protocol {
    (
        $(#[$meta:meta])*
        $vis:vis protocol $name:ident {
            server $server:ident;
            client $client:ident;
            error $err:ty;
            $($ops:tt)*
        }
    ) => {
        $crate::protocol! {
            @gen [$(#[$meta])*] [$vis] $name $server $client [$err] $($ops)*
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis protocol $name:ident {
            server $server:ident;
            client $client:ident;
            $($ops:tt)*
        }
    ) => {
        $crate::protocol! {
            @gen [$(#[$meta])*] [$vis] $name $server $client [::core::convert::Infallible]
            $($ops)*
        }
    };
    (
        @gen [$(#[$meta:meta])*] [$vis:vis] $name:ident $server:ident $client:ident [$err:ty]
        $(
            $(#[$op_meta:meta])*
            fn $op:ident($($arg:ident : $aty:ty),* $(,)?) $(-> $ret:ty)? = $label:literal;
        )*
    ) => {
        $(#[$meta])*
        ///
        /// The protocol's marker type (its name and operation table).
        #[derive(Clone, Copy, Debug)]
        $vis struct $name;

        impl $crate::protocol::Protocol for $name {
            const NAME: &'static str = stringify!($name);
            const OPS: &'static [(&'static str, u64)] = &[$((stringify!($op), $label)),*];
        }

        const _: () = {
            let labels: &[u64] = &[$($label),*];
            let mut i = 0;
            while i < labels.len() {
                assert!(labels[i] <= $crate::MsgInfo::MAX_LABEL, "protocol label over 48 bits");
                let mut j = i + 1;
                while j < labels.len() {
                    assert!(labels[i] != labels[j], "two operations share a label");
                    j += 1;
                }
                i += 1;
            }
        };

        $(#[$meta])*
        ///
        /// The client stub: one method per operation, over an endpoint handle with `SEND`.
        #[derive(Debug)]
        $vis struct $client {
            ep: $crate::Endpoint,
        }

        impl $client {
            /// A client calling through `ep`.
            pub fn new(ep: $crate::Endpoint) -> Self {
                Self { ep }
            }

            /// The endpoint handle.
            pub fn endpoint(&self) -> &$crate::Endpoint {
                &self.ep
            }

            /// Gives the endpoint handle back.
            pub fn into_endpoint(self) -> $crate::Endpoint {
                self.ep
            }

            $(
                $(#[$op_meta])*
                pub fn $op(
                    &self,
                    ipc: &mut $crate::IpcBuf,
                    $($arg: $aty),*
                ) -> ::core::result::Result<
                    $crate::__protocol_ty!($($ret)?),
                    $crate::protocol::ProtocolError<$err>,
                > {
                    #[allow(unused_mut, reason = "operations without arguments")]
                    let mut req = $crate::protocol::Message::new($label);
                    $(
                        $crate::protocol::Arg::encode($arg, &mut req)
                            .map_err($crate::protocol::ProtocolError::Kernel)?;
                    )*
                    let mut reply = $crate::protocol::call(&self.ep, ipc, req)?;
                    reply.into_result()
                }
            )*
        }

        $(#[$meta])*
        ///
        /// The server trait: one method per operation, each given the caller's badge.
        $vis trait $server {
            $(
                $(#[$op_meta])*
                fn $op(
                    &mut self,
                    badge: u64,
                    $($arg: $aty),*
                ) -> ::core::result::Result<
                    $crate::__protocol_ty!($($ret)?),
                    $err,
                >;
            )*

            /// Decodes one request, calls the operation and encodes its reply: `UNKNOWN_OP`
            /// for an unknown label, `BAD_REQUEST` for arguments that do not decode. Makes no
            /// system calls.
            fn dispatch(
                &mut self,
                badge: u64,
                req: &mut $crate::protocol::Message,
            ) -> $crate::protocol::Message {
                match req.label() {
                    $(
                        $label => {
                            #[allow(unused_mut, reason = "operations without arguments")]
                            let mut d = req.decoder();
                            $(
                                let $arg: $aty = match $crate::protocol::Decoder::take(&mut d) {
                                    ::core::option::Option::Some(v) => v,
                                    ::core::option::Option::None => {
                                        return $crate::protocol::Message::new(
                                            $crate::protocol::status::BAD_REQUEST,
                                        );
                                    }
                                };
                            )*
                            if !d.finish() {
                                return $crate::protocol::Message::new(
                                    $crate::protocol::status::BAD_REQUEST,
                                );
                            }
                            $crate::protocol::Message::reply(self.$op(badge, $($arg),*))
                        }
                    )*
                    _ => $crate::protocol::Message::new($crate::protocol::status::UNKNOWN_OP),
                }
            }

            /// Serves requests on `ep` forever (`ipc_reply_recv`); returns only the kernel error
            /// that stopped receiving (`libhsync::protocol::serve_with`).
            fn serve(
                &mut self,
                ep: &$crate::Endpoint,
                ipc: &mut $crate::IpcBuf,
            ) -> $crate::Error
            where
                Self: Sized,
            {
                $crate::protocol::serve_with(ep, ipc, |badge, req| self.dispatch(badge, req))
            }
        }
    };
}

/// Internal: an operation's result type (`()` when omitted).
#[doc(hidden)]
#[macro_export]
macro_rules! __protocol_ty {
    () => {
        ()
    };
    ($t:ty) => {
        $t
    };
}

/// Declares a field-less enum that travels as one word ([`Word`](crate::protocol::Word)), for
/// arguments, results and protocol errors. Every variant needs an explicit discriminant.
///
/// ```ignore
/// libhsync::wire_enum! {
///     /// Why a request failed.
///     pub enum CounterError {
///         /// The count would overflow.
///         Overflow = 1,
///     }
/// }
/// ```
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $value:literal),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u64)]
        $vis enum $name {
            $($(#[$vmeta])* $variant = $value),*
        }

        impl $crate::protocol::Word for $name {
            fn to_word(self) -> u64 {
                self as u64
            }
            fn from_word(w: u64) -> ::core::option::Option<Self> {
                match w {
                    $($value => ::core::option::Option::Some($name::$variant),)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    };
}

#[cfg(test)]
#[allow(
    dead_code,
    reason = "the generated client needs a kernel; host tests drive the server"
)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    crate::wire_enum! {
        /// A test error.
        pub enum TestError {
            /// Too big.
            TooBig = 1,
            /// Not allowed.
            Denied = 7,
        }
    }

    crate::wire_enum! {
        /// A colour.
        pub enum Colour {
            /// Red.
            Red = 0,
            /// Green.
            Green = 5,
        }
    }

    crate::protocol! {
        /// A protocol exercising every argument kind.
        pub protocol Probe {
            server ProbeServer;
            client ProbeClient;
            error TestError;
            /// `x + 1`.
            fn ping(x: u64) -> u64 = 1;
            /// `a + b`, `TooBig` on overflow.
            fn add(a: u64, b: u64) -> u64 = 2;
            /// The caller's badge.
            fn whoami() -> u64 = 3;
            /// Mixed word types.
            fn mixed(flag: bool, small: u32, neg: i32, c: Colour) -> (bool, u32, i32, Colour) = 4;
            /// Bytes in, reversed bytes out.
            fn reverse(data: &[u8]) -> Bytes = 5;
            /// Text and a number; returns the length of the text.
            fn text(prefix: u64, s: &str, suffix: u64) -> (u64, u64, u64) = 6;
            /// No result, `Denied` when `x` is 0.
            fn poke(x: u64) = 0x1234;
            /// A handle in; its raw value out.
            fn take(h: crate::Notification) -> u64 = 8;
        }
    }

    #[derive(Default)]
    struct Impl {
        pokes: Vec<u64>,
    }

    impl ProbeServer for Impl {
        fn ping(&mut self, _: u64, x: u64) -> Result<u64, TestError> {
            Ok(x.wrapping_add(1))
        }
        fn add(&mut self, _: u64, a: u64, b: u64) -> Result<u64, TestError> {
            a.checked_add(b).ok_or(TestError::TooBig)
        }
        fn whoami(&mut self, badge: u64) -> Result<u64, TestError> {
            Ok(badge)
        }
        fn mixed(
            &mut self,
            _: u64,
            flag: bool,
            small: u32,
            neg: i32,
            c: Colour,
        ) -> Result<(bool, u32, i32, Colour), TestError> {
            Ok((!flag, small + 1, neg - 1, c))
        }
        fn reverse(&mut self, _: u64, data: &[u8]) -> Result<Bytes, TestError> {
            let mut v: Vec<u8> = data.to_vec();
            v.reverse();
            Bytes::from_slice(&v).ok_or(TestError::TooBig)
        }
        fn text(&mut self, _: u64, p: u64, s: &str, q: u64) -> Result<(u64, u64, u64), TestError> {
            Ok((p, s.len() as u64, q))
        }
        fn poke(&mut self, _: u64, x: u64) -> Result<(), TestError> {
            if x == 0 {
                return Err(TestError::Denied);
            }
            self.pokes.push(x);
            Ok(())
        }
        fn take(&mut self, _: u64, h: crate::Notification) -> Result<u64, TestError> {
            Ok(h.into_raw().raw())
        }
    }

    /// Encodes `args` as a request with `label`.
    fn request<'a, T: Arg<'a>>(label: u64, args: T) -> Message {
        let mut m = Message::new(label);
        args.encode(&mut m).unwrap();
        m
    }

    /// Runs one request through the server and decodes the reply as the client would.
    fn roundtrip<T: for<'a> Arg<'a>>(
        s: &mut Impl,
        badge: u64,
        mut req: Message,
    ) -> Result<T, ProtocolError<TestError>> {
        let mut reply = s.dispatch(badge, &mut req);
        reply.into_result()
    }

    #[test]
    fn marker_lists_operations() {
        assert_eq!(Probe::NAME, "Probe");
        assert_eq!(Probe::OPS.len(), 8);
        assert_eq!(Probe::OPS[0], ("ping", 1));
        assert_eq!(Probe::OPS[6], ("poke", 0x1234));
    }

    #[test]
    fn word_operations_round_trip() {
        let mut s = Impl::default();
        assert_eq!(roundtrip::<u64>(&mut s, 0, request(1, 41u64)), Ok(42));
        assert_eq!(roundtrip::<u64>(&mut s, 0, request(2, (2u64, 3u64))), Ok(5));
        assert_eq!(roundtrip::<u64>(&mut s, 77, request(3, ())), Ok(77));
        assert_eq!(
            roundtrip::<(bool, u32, i32, Colour)>(
                &mut s,
                0,
                request(4, (true, u32::MAX - 1, -5i32, Colour::Green))
            ),
            Ok((false, u32::MAX, -6, Colour::Green))
        );
        assert_eq!(roundtrip::<()>(&mut s, 0, request(0x1234, 9u64)), Ok(()));
        assert_eq!(s.pokes, [9]);
    }

    #[test]
    fn register_sized_requests_stay_in_registers() {
        let mut m = request(4, (true, 1u32, -1i32, Colour::Red));
        assert_eq!(m.words(), 4);
        assert_eq!(m.word(2), u64::MAX, "i32 -1 is sign-extended");
        let info = MsgInfo::new(m.label(), m.words(), m.handles()).unwrap();
        assert!(!info.uses_buffer());
        assert_eq!(
            m.decoder().take::<(bool, u32, i32, Colour)>(),
            Some((true, 1, -1, Colour::Red))
        );
    }

    #[test]
    fn application_errors_reach_the_client() {
        let mut s = Impl::default();
        assert_eq!(
            roundtrip::<u64>(&mut s, 0, request(2, (u64::MAX, 1u64))),
            Err(ProtocolError::App(TestError::TooBig))
        );
        assert_eq!(
            roundtrip::<()>(&mut s, 0, request(0x1234, 0u64)),
            Err(ProtocolError::App(TestError::Denied))
        );
        assert!(s.pokes.is_empty());
    }

    #[test]
    fn unknown_labels_get_an_error_reply() {
        let mut s = Impl::default();
        for label in [0, 7, 9, 0x1235, MsgInfo::MAX_LABEL] {
            let mut req = request(label, 1u64);
            let reply = s.dispatch(0, &mut req);
            assert_eq!(reply.label(), status::UNKNOWN_OP, "label {label}");
            assert_eq!(reply.words(), 0);
        }
        assert_eq!(
            roundtrip::<u64>(&mut s, 0, request(99, ())),
            Err(ProtocolError::UnknownOp)
        );
    }

    #[test]
    fn malformed_requests_get_an_error_reply() {
        let mut s = Impl::default();
        let bad: Vec<Message> = std::vec![
            request(1, ()),                                // missing argument
            request(1, (1u64, 2u64)),                      // extra argument
            request(2, 1u64),                              // one of two
            request(4, (2u64, 1u64, 0u64, 0u64)),          // bool 2
            request(4, (1u64, 1u64 << 32, 0u64, 0u64)),    // u32 overflow
            request(4, (1u64, 1u64, 1u64 << 40, 0u64)),    // i32 overflow
            request(4, (1u64, 1u64, 0u64, 3u64)),          // no such Colour
            request(5, 9u64),                              // length 9, no bytes
            request(5, (u64::MAX, 0u64)),                  // absurd length
            request(5, (4u64, 0u64, 0u64)),                // length 4 but two data words
            request(6, (1u64, &[0xffu8, 0xfe][..], 2u64)), // invalid UTF-8
            request(8, 1u64),                              // a word where a handle belongs
            request(8, ()),                                // no handle
            request(0x1234, 9u64),                         // fine, checked below
        ];
        let n = bad.len();
        for (i, mut req) in bad.into_iter().enumerate() {
            let reply = s.dispatch(0, &mut req);
            let want = if i == n - 1 {
                status::OK
            } else {
                status::BAD_REQUEST
            };
            assert_eq!(reply.label(), want, "request {i}");
        }
        assert_eq!(
            roundtrip::<u64>(&mut s, 0, request(1, ())),
            Err(ProtocolError::BadRequest)
        );
    }

    #[test]
    fn byte_strings_round_trip_through_the_buffer_words() {
        let mut s = Impl::default();
        for len in [0usize, 1, 7, 8, 9, 31, 100, Bytes::CAPACITY] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let req = request(5, &data[..]);
            assert_eq!(req.words(), 1 + len.div_ceil(8), "len {len}");
            let got = roundtrip::<Bytes>(&mut s, 0, req).unwrap();
            let mut want = data.clone();
            want.reverse();
            assert_eq!(&got[..], &want[..], "len {len}");
        }
        let got = roundtrip::<(u64, u64, u64)>(&mut s, 0, request(6, (5u64, "héllo", 6u64)));
        assert_eq!(got, Ok((5, 6, 6)));
    }

    #[test]
    fn too_long_arguments_are_refused_before_sending() {
        let mut m = Message::new(5);
        assert_eq!(
            m.push_bytes(&[0; Bytes::CAPACITY + 1]),
            Err(Error::MessageTooLong)
        );
        assert_eq!(m.words(), 0, "a refused push leaves the message unchanged");
        m.push_word(1).unwrap();
        assert_eq!(
            m.push_bytes(&[0; Bytes::CAPACITY]),
            Err(Error::MessageTooLong)
        );
        assert_eq!(m.push_bytes(&[0; Bytes::CAPACITY - 8]), Ok(()));
        assert_eq!(m.words(), 64);
        assert_eq!(m.push_word(1), Err(Error::MessageTooLong));
        assert_eq!(m.push_bytes(&[]), Err(Error::MessageTooLong));
        assert!(Bytes::from_slice(&[0; Bytes::CAPACITY + 1]).is_none());
    }

    #[test]
    fn handles_travel_in_slots() {
        let mut s = Impl::default();
        let h: crate::Notification = Handle::from_raw(hsync_abi::Handle::new(5, 9));
        let mut req = request(8, h);
        assert_eq!((req.words(), req.handles()), (0, 1));
        let mut reply = s.dispatch(0, &mut req);
        assert_eq!(
            reply.into_result::<u64, TestError>(),
            Ok(hsync_abi::Handle::new(5, 9).raw())
        );
        // The server took the handle: nothing is left for the request's drop to close.
        assert!(req.handles.iter().all(|h| h.is_null()));
        let mut m = Message::new(0);
        for i in 0..4 {
            m.push_handle::<crate::kind::Any>(Handle::from_raw(hsync_abi::Handle::new(i, 1)))
                .unwrap();
        }
        assert_eq!(
            m.push_handle::<crate::kind::Any>(Handle::from_raw(hsync_abi::Handle::NULL)),
            Err(Error::MessageTooLong)
        );
    }

    #[test]
    fn malformed_replies_are_bad_reply() {
        let cases: Vec<(Message, ProtocolError<TestError>)> = std::vec![
            (Message::new(status::SERVER_ERROR), ProtocolError::BadReply),
            (Message::new(77), ProtocolError::BadReply),
            (request(status::OK, ()), ProtocolError::BadReply), // no value
            (request(status::OK, (1u64, 2u64)), ProtocolError::BadReply), // extra word
            (request(status::APP_ERROR, 3u64), ProtocolError::BadReply), // unknown error
            (
                request(status::APP_ERROR, (1u64, 1u64)),
                ProtocolError::BadReply
            ),
            (
                request(status::APP_ERROR, 7u64),
                ProtocolError::App(TestError::Denied)
            ),
            (Message::new(status::BAD_REQUEST), ProtocolError::BadRequest),
        ];
        for (i, (mut m, want)) in cases.into_iter().enumerate() {
            assert_eq!(m.into_result::<u64, TestError>(), Err(want), "case {i}");
        }
        let mut ok = request(status::OK, 5u64);
        assert_eq!(ok.into_result::<u64, TestError>(), Ok(5));
    }

    #[test]
    fn kernel_errors_map_peer_death_to_server_died() {
        assert_eq!(
            ProtocolError::<Infallible>::from_kernel(Error::PeerDied),
            ProtocolError::ServerDied
        );
        assert_eq!(
            ProtocolError::<Infallible>::from_kernel(Error::InvalidHandle),
            ProtocolError::Kernel(Error::InvalidHandle)
        );
    }

    #[test]
    fn messages_move_through_registers_and_buffer() {
        let mut mem = hsync_abi::IpcBuffer::new();
        // SAFETY: `mem` is a live, aligned IpcBuffer used only through `ipc` in this test.
        let mut ipc = unsafe { IpcBuf::new(core::ptr::addr_of_mut!(mem) as u64) };
        let data: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        let req = request(6, (1u64, &data[..], 2u64));
        let msg = req.load(&mut ipc).unwrap();
        assert_eq!(msg.info.words(), req.words());
        assert_eq!((msg.regs[0], msg.regs[1]), (1, 200));
        let mut back = Message::receive(&msg, &mut ipc);
        assert_eq!(back.label(), 6);
        let mut d = back.decoder();
        assert_eq!(d.take::<u64>(), Some(1));
        assert_eq!(d.take::<&[u8]>(), Some(&data[..]));
        assert_eq!(d.take::<u64>(), Some(2));
        assert!(d.finish());
        assert_eq!(
            Message::new(1 << 48).load(&mut ipc),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn word_types_reject_out_of_range_words() {
        assert_eq!(u8::from_word(256), None);
        assert_eq!(u16::from_word(65535), Some(65535));
        assert_eq!(i8::from_word((-128i64) as u64), Some(-128));
        assert_eq!(i8::from_word(128), None);
        assert_eq!(i64::from_word(u64::MAX), Some(-1));
        assert_eq!(bool::from_word(1), Some(true));
        assert_eq!(Infallible::from_word(0), None);
        assert_eq!(Colour::from_word(5), Some(Colour::Green));
        assert_eq!(Colour::Green.to_word(), 5);
    }
}
