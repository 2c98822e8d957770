//! Typed handles: [`Handle<K>`] names a kernel object of kind `K` in this process's table.
//!
//! A `Handle<K>` owns its table slot: dropping it closes the slot (errors ignored), and
//! [`Handle::close`] does the same but reports the result. The kind parameter is a promise made
//! by whoever built the value, not a proof: the kernel checks kind and rights on every call, so
//! a wrong promise is an error ([`Error::WrongKind`]), never unsafety. Conversions between kinds
//! are explicit: [`Handle::cast`] asks the kernel (`handle_inspect`), [`Handle::retype_unchecked`]
//! does not (for tests that exercise the kernel's checks).

use core::fmt;
use core::marker::PhantomData;

use hsync_abi::{Error, ObjectKind, Rights, Sysnum};

use crate::sys;

/// Marker types for [`Handle`]'s kind parameter.
pub mod kind {
    use hsync_abi::ObjectKind;

    /// A kind marker: which [`ObjectKind`] a `Handle<Self>` names (`None` for [`Any`]).
    pub trait Kind: 'static {
        /// The object kind, or `None` for an untyped handle.
        const KIND: Option<ObjectKind>;
    }

    macro_rules! kinds {
        ($($(#[$m:meta])* $name:ident => $kind:ident,)*) => {$(
            $(#[$m])*
            #[derive(Debug)]
            pub enum $name {}
            impl Kind for $name {
                const KIND: Option<ObjectKind> = Some(ObjectKind::$kind);
            }
        )*};
    }

    kinds! {
        /// A process.
        Process => Process,
        /// A thread.
        Thread => Thread,
        /// A mappable range of RAM.
        Frame => Frame,
        /// A synchronous IPC endpoint.
        Endpoint => Endpoint,
        /// A one-shot reply right.
        Reply => Reply,
        /// 64 asynchronous signal bits.
        Notification => Notification,
    }

    /// A handle of a kind not known yet (received in a message); see `Handle::cast`.
    #[derive(Debug)]
    pub enum Any {}
    impl Kind for Any {
        const KIND: Option<ObjectKind> = None;
    }
}

use kind::Kind;

/// An owned handle to a kernel object of kind `K`. Closed on drop.
///
/// ```no_run
/// use libhsync::{Endpoint, Rights};
/// let ep = Endpoint::create().unwrap();
/// let send_only = ep.duplicate(Rights::SEND | Rights::TRANSFER).unwrap();
/// assert_eq!(send_only.inspect().unwrap().rights, Rights::SEND | Rights::TRANSFER);
/// ```
pub struct Handle<K: Kind> {
    raw: hsync_abi::Handle,
    _kind: PhantomData<K>,
}

/// What `handle_inspect` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// The kind of object.
    pub kind: ObjectKind,
    /// The rights this handle carries.
    pub rights: Rights,
    /// The endpoint badge (0 = none).
    pub badge: u64,
}

impl<K: Kind> Handle<K> {
    /// Takes ownership of a raw handle value (from an argument, a message, or a test that
    /// forges one). Nothing is checked here; the kernel checks on use.
    pub const fn from_raw(raw: hsync_abi::Handle) -> Self {
        Handle {
            raw,
            _kind: PhantomData,
        }
    }

    /// The raw value (the handle stays owned by `self`).
    pub const fn raw(&self) -> hsync_abi::Handle {
        self.raw
    }

    /// Gives up ownership without closing: returns the raw value.
    pub fn into_raw(self) -> hsync_abi::Handle {
        let raw = self.raw;
        core::mem::forget(self);
        raw
    }

    /// Closes the handle and reports the kernel's answer (`InvalidHandle` if it was not live).
    pub fn close(self) -> Result<(), Error> {
        close_raw(self.into_raw())
    }

    /// What the handle names, and its rights and badge.
    pub fn inspect(&self) -> Result<Info, Error> {
        inspect_raw(self.raw)
    }

    /// A second handle to the same object with `rights` (a subset of this handle's).
    pub fn duplicate(&self, rights: Rights) -> Result<Handle<K>, Error> {
        let out = sys::pure(
            Sysnum::HandleDuplicate,
            [self.raw.raw(), rights.raw(), 0, 0, 0, 0],
        )?;
        Ok(Handle::from_raw(hsync_abi::Handle::from_raw(out[0])))
    }

    /// Drops every right outside `mask` from this handle; returns the remaining rights.
    pub fn restrict(&self, mask: Rights) -> Result<Rights, Error> {
        let out = sys::pure(
            Sysnum::HandleRestrict,
            [self.raw.raw(), mask.raw(), 0, 0, 0, 0],
        )?;
        Rights::from_raw(out[0])
    }

    /// The same handle, untyped.
    pub fn erase(self) -> Handle<kind::Any> {
        Handle::from_raw(self.into_raw())
    }

    /// The same handle seen as kind `T` after asking the kernel that it names a `T`; on a
    /// mismatch ([`Error::WrongKind`]) or a dead handle the original comes back with the error.
    pub fn cast<T: Kind>(self) -> Result<Handle<T>, (Error, Self)> {
        match self.inspect() {
            Ok(info) if T::KIND.is_none_or(|k| k == info.kind) => {
                Ok(Handle::from_raw(self.into_raw()))
            }
            Ok(_) => Err((Error::WrongKind, self)),
            Err(e) => Err((e, self)),
        }
    }

    /// The same handle seen as kind `T` without asking: the kernel still checks the kind on
    /// every call, so a wrong guess is [`Error::WrongKind`]. Meant for tests of those checks.
    pub fn retype_unchecked<T: Kind>(self) -> Handle<T> {
        Handle::from_raw(self.into_raw())
    }
}

impl<K: Kind> Drop for Handle<K> {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            let _ = close_raw(self.raw);
        }
    }
}

impl<K: Kind> fmt::Debug for Handle<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Handle<{}>({}:{})",
            K::KIND.map_or("Any", |k| k.name()),
            self.raw.index(),
            self.raw.generation()
        )
    }
}

/// `handle_close` on a raw value.
pub fn close_raw(h: hsync_abi::Handle) -> Result<(), Error> {
    sys::pure(Sysnum::HandleClose, [h.raw(), 0, 0, 0, 0, 0]).map(|_| ())
}

/// `handle_inspect` on a raw value.
pub fn inspect_raw(h: hsync_abi::Handle) -> Result<Info, Error> {
    let out = sys::pure(Sysnum::HandleInspect, [h.raw(), 0, 0, 0, 0, 0])?;
    Ok(Info {
        kind: ObjectKind::try_from(out[0])?,
        rights: Rights::from_raw(out[1])?,
        badge: out[2],
    })
}

/// A process handle.
pub type Process = Handle<kind::Process>;
/// A thread handle.
pub type Thread = Handle<kind::Thread>;
/// A frame (RAM) handle.
pub type Frame = Handle<kind::Frame>;
/// An endpoint handle.
pub type Endpoint = Handle<kind::Endpoint>;
/// A one-shot reply handle.
pub type Reply = Handle<kind::Reply>;
/// A notification handle.
pub type Notification = Handle<kind::Notification>;
/// A handle of unknown kind.
pub type AnyHandle = Handle<kind::Any>;

impl Endpoint {
    /// A new endpoint with every endpoint right (`SEND | RECV | DUPLICATE | TRANSFER`).
    pub fn create() -> Result<Endpoint, Error> {
        let out = sys::pure(Sysnum::EndpointCreate, [0; 6])?;
        Ok(Handle::from_raw(hsync_abi::Handle::from_raw(out[0])))
    }

    /// A copy of this (unbadged) endpoint handle carrying `badge` (non-zero) and `rights`:
    /// what a server hands each client so it can tell callers apart.
    pub fn badged(&self, rights: Rights, badge: u64) -> Result<Endpoint, Error> {
        let out = sys::pure(
            Sysnum::HandleDuplicate,
            [self.raw().raw(), rights.raw(), badge, 0, 0, 0],
        )?;
        Ok(Handle::from_raw(hsync_abi::Handle::from_raw(out[0])))
    }
}

impl Notification {
    /// A new notification with all bits clear.
    pub fn create() -> Result<Notification, Error> {
        let out = sys::pure(Sysnum::NotificationCreate, [0; 6])?;
        Ok(Handle::from_raw(hsync_abi::Handle::from_raw(out[0])))
    }

    /// ORs `bits` (non-zero) into the notification, waking a waiter.
    pub fn signal(&self, bits: u64) -> Result<(), Error> {
        sys::pure(
            Sysnum::NotificationSignal,
            [self.raw().raw(), bits, 0, 0, 0, 0],
        )
        .map(|_| ())
    }

    /// Blocks until a bit is set; returns and clears all set bits.
    pub fn wait(&self) -> Result<u64, Error> {
        sys::pure(Sysnum::NotificationWait, [self.raw().raw(), 0, 0, 0, 0, 0]).map(|o| o[0])
    }

    /// Like [`Notification::wait`] but [`Error::WouldBlock`] instead of blocking.
    pub fn poll(&self) -> Result<u64, Error> {
        sys::pure(Sysnum::NotificationPoll, [self.raw().raw(), 0, 0, 0, 0, 0]).map(|o| o[0])
    }

    /// Arms this notification's one-shot timer: when the clock ([`crate::clock`]) reaches
    /// `deadline`, the kernel signals `bits` (non-zero) on it. Replaces an armed timer. The
    /// kernel checks timers on its 2 ms tick, so it fires up to a tick late, never early.
    ///
    /// ```no_run
    /// # use libhsync::Notification;
    /// const KEY: u64 = 1;
    /// const TIMEOUT: u64 = 2;
    /// let n = Notification::create()?;
    /// // ... hand a SIGNAL copy of `n` to a driver that signals KEY ...
    /// n.signal_at(TIMEOUT, libhsync::clock() + 500_000_000)?;
    /// let bits = n.wait()?; // KEY, or TIMEOUT after half a second
    /// # let _ = bits;
    /// # Ok::<(), libhsync::Error>(())
    /// ```
    pub fn signal_at(&self, bits: u64, deadline: u64) -> Result<(), Error> {
        sys::pure(
            Sysnum::NotificationTimer,
            [self.raw().raw(), bits, deadline, 0, 0, 0],
        )
        .map(|_| ())
    }

    /// Disarms the timer [`Notification::signal_at`] armed (nothing if none is armed).
    pub fn cancel_timer(&self) -> Result<(), Error> {
        sys::pure(
            Sysnum::NotificationTimer,
            [self.raw().raw(), 0, hsync_abi::DEADLINE_NEVER, 0, 0, 0],
        )
        .map(|_| ())
    }
}
