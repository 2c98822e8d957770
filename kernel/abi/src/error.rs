//! Status codes returned in `rax`, and the two classes they fall into.
//!
//! STYLE §4: a *recoverable* error is a condition a correct program must expect and handle (the
//! peer died, memory ran out, nothing was waiting). *Misuse* means the caller has a bug (a stale
//! handle, a missing right, a wild pointer): a correct program never sees one.
//!
//! The kernel reports both kinds as a status code and never lets either touch anything but the
//! caller: it does not kill a process for a misuse it can report, because the in-QEMU misuse
//! tests must observe each specific code and keep going. `libhsync`'s typed wrappers turn a
//! misuse code into a panic of the calling process — which ends it and reaches its supervisor as
//! a fault report — so in ordinary code misuse *is* a fault of the caller only, while the raw
//! calls still let a test see the exact code.

code_enum! {
    /// A failed system call's status. 0 (success) is not an `Error`.
    ///
    /// Numbers are stable within an [`ABI_VERSION`](crate::ABI_VERSION).
    pub enum Error: invalid = |raw| -> UnknownError { UnknownError(raw) } {
        /// Misuse. `rax` held no system-call number (including 0).
        InvalidSyscall = 1 => "InvalidSyscall",
        /// Misuse. A handle argument names no live entry in the caller's table: it was closed,
        /// is stale (its slot was reused: the generation differs), is `Handle::NULL` where a
        /// handle is required, or was never issued (forged).
        InvalidHandle = 2 => "InvalidHandle",
        /// Misuse. The handle is live but names the wrong kind of object for this call.
        WrongKind = 3 => "WrongKind",
        /// Misuse. The handle lacks a right the call needs, or the call asked for rights the
        /// source handle does not have (duplicate, grant, map).
        MissingRights = 4 => "MissingRights",
        /// Misuse. A user pointer range is unmapped, lies (partly) in the kernel half, is
        /// non-canonical, or overflows the address space.
        BadAddress = 5 => "BadAddress",
        /// Misuse. An address, size or offset is not aligned as the call requires (page size
        /// for mappings, 8 bytes for word arrays, 1024 bytes for the IPC buffer).
        Misaligned = 6 => "Misaligned",
        /// Misuse. A message claims more than `MAX_MSG_WORDS` words or `MAX_MSG_HANDLES`
        /// handles, or a byte buffer exceeds the call's limit.
        MessageTooLong = 7 => "MessageTooLong",
        /// Misuse. An argument is out of its domain: unknown bits in rights or map flags,
        /// writable+executable mappings, reserved `MsgInfo` bits, a zero size, a priority above
        /// the caller's own.
        InvalidArgument = 8 => "InvalidArgument",
        /// Recoverable. The kernel could not allocate memory for the object, page tables or
        /// frames the call needs. Nothing was created.
        OutOfMemory = 9 => "OutOfMemory",
        /// Recoverable. The handle table (of the caller, or of the target process for
        /// `handle_grant` and handle transfer) has no free slot.
        HandleTableFull = 10 => "HandleTableFull",
        /// Recoverable. A non-blocking variant (`ipc_try_send`, `ipc_try_recv`,
        /// `notification_poll`, `process_wait` with `DEADLINE_NOW`) would have had to block.
        WouldBlock = 11 => "WouldBlock",
        /// Recoverable. The other side of an IPC went away: the server died while the caller was
        /// blocked in `ipc_call`, the endpoint lost its last receiver-capable handle while a
        /// sender waited, or the caller being replied to has died.
        PeerDied = 12 => "PeerDied",
        /// Recoverable. A deadline passed before the awaited event (`process_wait`).
        TimedOut = 13 => "TimedOut",
        /// Recoverable. `process_create` was given an image that is not a loadable ELF for this
        /// machine (malformed headers, wrong class/machine, overlapping or kernel-half segments,
        /// W+X segments). The image is data, often from storage, so this is not the caller's bug.
        BadElf = 14 => "BadElf",
        /// Recoverable. What the call would create is already there: a mapping already covers
        /// part of the range, or the endpoint handle already carries a badge.
        Exists = 15 => "Exists",
        /// Recoverable. What the call acts on is not there: `frame_unmap` over an unmapped
        /// range, `ipc_reply`/`ipc_reply_save` with no pending caller.
        NotFound = 16 => "NotFound",
        /// Recoverable. The object is not in a state that allows the call: starting a thread
        /// twice, creating a thread in a process that has ended.
        InvalidState = 17 => "InvalidState",
    }
}

/// Whether an [`Error`] is something a correct program handles or a bug in the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// A condition a correct program must expect; handle it and continue.
    Recoverable,
    /// The caller is wrong; `libhsync` treats it as a fault of the calling process.
    Misuse,
}

impl Error {
    /// The class of this error (see the module documentation).
    pub const fn class(self) -> ErrorClass {
        match self {
            Error::InvalidSyscall
            | Error::InvalidHandle
            | Error::WrongKind
            | Error::MissingRights
            | Error::BadAddress
            | Error::Misaligned
            | Error::MessageTooLong
            | Error::InvalidArgument => ErrorClass::Misuse,
            Error::OutOfMemory
            | Error::HandleTableFull
            | Error::WouldBlock
            | Error::PeerDied
            | Error::TimedOut
            | Error::BadElf
            | Error::Exists
            | Error::NotFound
            | Error::InvalidState => ErrorClass::Recoverable,
        }
    }

    /// Shorthand for `self.class() == ErrorClass::Misuse`.
    pub const fn is_misuse(self) -> bool {
        matches!(self.class(), ErrorClass::Misuse)
    }

    /// Decode a status register: 0 is success, a known code is its `Error`, anything else is
    /// an [`UnknownError`] (a kernel built against another ABI version).
    pub fn check_status(status: u64) -> Result<Result<(), Error>, UnknownError> {
        if status == crate::regs::STATUS_OK {
            Ok(Ok(()))
        } else {
            Error::try_from(status).map(Err)
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A status value that is neither 0 nor a known [`Error`] code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownError(pub u64);
