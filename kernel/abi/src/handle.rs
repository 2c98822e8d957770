//! How a process names kernel objects: [`Handle`]s into its own table, each carrying
//! [`Rights`] over an object of some [`ObjectKind`].

use crate::Error;

/// A process-local name for a kernel object: an index into the caller's handle table plus the
/// generation of that slot.
///
/// Packing (one `u64`, so a handle fits in a register):
///
/// ```text
///  63                  32 31                   0
/// +----------------------+----------------------+
/// |      generation      |        index         |
/// +----------------------+----------------------+
/// ```
///
/// A slot's generation changes every time the slot is freed, so a closed handle never names
/// the object that later reuses its slot. Generation 0 is never issued, which makes
/// [`Handle::NULL`] (all zero bits) and every other generation-0 value permanently invalid.
/// Whether a handle is *live* is only known to the kernel; this type is just the encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Handle(u64);

impl Handle {
    /// "No handle": an optional handle argument that is absent. Never names an object.
    pub const NULL: Handle = Handle(0);

    /// Bits of the index field.
    pub const INDEX_BITS: u32 = 32;

    /// Largest generation; a slot whose generation reaches it is retired when freed.
    pub const MAX_GENERATION: u32 = u32::MAX;

    /// The handle for `index` at `generation`.
    pub const fn new(index: u32, generation: u32) -> Handle {
        Handle(((generation as u64) << Self::INDEX_BITS) | index as u64)
    }

    /// Reinterpret a register value. Any `u64` is a well-formed handle *encoding*; whether it
    /// names anything is decided by the handle table.
    pub const fn from_raw(raw: u64) -> Handle {
        Handle(raw)
    }

    /// The register value.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The table index.
    pub const fn index(self) -> u32 {
        self.0 as u32
    }

    /// The slot generation (0 only for values that never name an object).
    pub const fn generation(self) -> u32 {
        (self.0 >> Self::INDEX_BITS) as u32
    }

    /// Whether this is [`Handle::NULL`].
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }
}

bitflags::bitflags! {
    /// What a handle allows its holder to do with the object.
    ///
    /// Rights only ever shrink: [`handle_duplicate`](crate::Sysnum::HandleDuplicate),
    /// [`handle_grant`](crate::Sysnum::HandleGrant) and transfer copy a subset, and
    /// [`handle_restrict`](crate::Sysnum::HandleRestrict) removes rights in place. No call
    /// adds a right to an existing handle; a new object's creator gets
    /// [`ObjectKind::all_rights`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Rights: u32 {
        /// Frame: may be mapped readable and used as an ELF image.
        const READ = 1 << 0;
        /// Frame: may be mapped writable.
        const WRITE = 1 << 1;
        /// Frame: may be mapped executable.
        const EXECUTE = 1 << 2;
        /// Frame: may be mapped at all. Process: may map into and unmap from its address space.
        const MAP = 1 << 3;
        /// Any kind: may be duplicated (`handle_duplicate`).
        const DUPLICATE = 1 << 4;
        /// Any kind: may leave the process (`handle_grant`, handles in an IPC message).
        const TRANSFER = 1 << 5;
        /// Notification: may signal.
        const SIGNAL = 1 << 6;
        /// Notification: may wait and poll. Process: may wait for its end (`process_wait`).
        const WAIT = 1 << 7;
        /// Endpoint: may send and call. Reply: may reply.
        const SEND = 1 << 8;
        /// Endpoint: may receive.
        const RECV = 1 << 9;
        /// Process: may kill it, create threads in it, grant handles into it.
        /// Thread: may start it. IrqLine: bind and ack. IoPortRange: enable.
        /// HwAuthority: create hardware capabilities.
        const MANAGE = 1 << 10;
    }
}

impl Rights {
    /// Decode a rights argument. Unknown bits are [`Error::InvalidArgument`]: they would mean
    /// the caller expects a right this kernel does not know.
    pub fn from_raw(raw: u64) -> Result<Rights, Error> {
        u32::try_from(raw)
            .ok()
            .and_then(Rights::from_bits)
            .ok_or(Error::InvalidArgument)
    }

    /// The register value.
    pub const fn raw(self) -> u64 {
        self.bits() as u64
    }

    /// `requested` if it is a subset of `self`, else `None`: the check behind every
    /// copy-with-fewer-rights operation.
    pub fn shrink(self, requested: Rights) -> Option<Rights> {
        self.contains(requested).then_some(requested)
    }

    /// `self` without the rights outside `mask` (`self ∩ mask`); never more than `self`.
    pub fn restrict(self, mask: Rights) -> Rights {
        self & mask
    }

    /// Whether every right in `required` is present.
    pub fn allows(self, required: Rights) -> bool {
        self.contains(required)
    }
}

code_enum! {
    /// The kind of kernel object a handle names.
    pub enum ObjectKind: invalid = |_raw| -> Error { Error::InvalidArgument } {
        /// A process: an address space, a handle table and its threads.
        Process = 1 => "Process",
        /// A thread of some process.
        Thread = 2 => "Thread",
        /// A range of physical memory (RAM now; device MMIO later) that can be mapped.
        Frame = 3 => "Frame",
        /// A synchronous IPC rendezvous point.
        Endpoint = 4 => "Endpoint",
        /// A one-shot right to answer one `ipc_call`.
        Reply = 5 => "Reply",
        /// 64 asynchronous signal bits with wait/poll.
        Notification = 6 => "Notification",
        /// An interrupt line delivered to a notification (`irq_bind`, `irq_ack`).
        IrqLine = 7 => "IrqLine",
        /// A range of I/O ports a process may enable for itself (`ioport_enable`).
        IoPortRange = 8 => "IoPortRange",
        /// The authority to make hardware capabilities (I/O ports, IRQ lines, device Frames).
        /// The kernel gives root the only one, at [`ROOT_HW_AUTHORITY`](crate::ROOT_HW_AUTHORITY).
        HwAuthority = 9 => "HwAuthority",
    }
}

impl ObjectKind {
    /// The rights that mean something for this kind: what the creator of a new object gets.
    pub const fn all_rights(self) -> Rights {
        let common = Rights::DUPLICATE.union(Rights::TRANSFER);
        let specific = match self {
            ObjectKind::Process => Rights::MAP.union(Rights::WAIT).union(Rights::MANAGE),
            ObjectKind::Thread => Rights::MANAGE,
            ObjectKind::Frame => Rights::READ
                .union(Rights::WRITE)
                .union(Rights::EXECUTE)
                .union(Rights::MAP),
            ObjectKind::Endpoint => Rights::SEND.union(Rights::RECV),
            // One-shot: a duplicate would be a second answer to the same call.
            ObjectKind::Reply => return Rights::SEND.union(Rights::TRANSFER),
            ObjectKind::Notification => Rights::SIGNAL.union(Rights::WAIT),
            // MANAGE: bind/ack a line, enable ports, create hardware capabilities.
            ObjectKind::IrqLine | ObjectKind::IoPortRange | ObjectKind::HwAuthority => {
                Rights::MANAGE
            }
        };
        common.union(specific)
    }
}

/// One handle as `handle_list` reports it: [`HandleRecord::WORDS`] little-endian `u64`s —
/// the handle value, its [`ObjectKind`], its [`Rights`], and its badge (0 = none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleRecord {
    /// The handle value in the listed process's table.
    pub handle: Handle,
    /// What it names.
    pub kind: ObjectKind,
    /// What it allows.
    pub rights: Rights,
    /// Its badge (endpoints), or 0.
    pub badge: u64,
}

impl HandleRecord {
    /// Words per record.
    pub const WORDS: usize = 4;
    /// Bytes per record.
    pub const SIZE: usize = Self::WORDS * 8;

    /// The record as words.
    pub const fn to_words(&self) -> [u64; Self::WORDS] {
        [
            self.handle.raw(),
            self.kind as u64,
            self.rights.raw(),
            self.badge,
        ]
    }

    /// Decodes words written by the kernel; an unknown kind or right is an error.
    pub fn from_words(w: &[u64; Self::WORDS]) -> Result<HandleRecord, Error> {
        Ok(HandleRecord {
            handle: Handle::from_raw(w[0]),
            kind: ObjectKind::try_from(w[1])?,
            rights: Rights::from_raw(w[2])?,
            badge: w[3],
        })
    }
}
