//! How a process ended: [`ExitStatus`] from `process_wait`, and the [`FaultRecord`] written when
//! a CPU exception killed it.
//!
//! The record crosses the boundary as an array of `u64` words ([`FaultRecord::to_words`] /
//! [`FaultRecord::from_words`]) rather than by reinterpreting bytes, so neither side needs
//! `unsafe` and a corrupt record is an error, not undefined behaviour.

use crate::Error;

/// Why a process was killed by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// #PF outside the stack guard: `address` is CR2, `error_code` the #PF error code.
    PageFault,
    /// #GP (e.g. a privileged instruction, a non-canonical address).
    GeneralProtection,
    /// #UD: an invalid or unsupported instruction (including `ud2`).
    InvalidOpcode,
    /// #DE: division by zero or quotient overflow.
    DivideError,
    /// #PF on the guard page below a thread's stack: reported separately because it is the
    /// most common way a server dies and means "grow the stack", not "wild pointer".
    StackOverflow,
    /// #BP (`int3`) with no debugger attached.
    Breakpoint,
    /// Any other exception, by vector number.
    Other(u8),
}

impl FaultKind {
    const OTHER_BASE: u64 = 0x100;

    /// The stable number: 1..=6 for the named kinds, `0x100 + vector` for [`FaultKind::Other`].
    pub const fn raw(self) -> u64 {
        match self {
            FaultKind::PageFault => 1,
            FaultKind::GeneralProtection => 2,
            FaultKind::InvalidOpcode => 3,
            FaultKind::DivideError => 4,
            FaultKind::StackOverflow => 5,
            FaultKind::Breakpoint => 6,
            FaultKind::Other(vector) => Self::OTHER_BASE + vector as u64,
        }
    }
}

impl TryFrom<u64> for FaultKind {
    type Error = Error;

    fn try_from(raw: u64) -> Result<Self, Error> {
        Ok(match raw {
            1 => FaultKind::PageFault,
            2 => FaultKind::GeneralProtection,
            3 => FaultKind::InvalidOpcode,
            4 => FaultKind::DivideError,
            5 => FaultKind::StackOverflow,
            6 => FaultKind::Breakpoint,
            _ => match raw.checked_sub(Self::OTHER_BASE).map(u8::try_from) {
                Some(Ok(vector)) => FaultKind::Other(vector),
                _ => return Err(Error::InvalidArgument),
            },
        })
    }
}

/// What the kernel saw when a thread of a process faulted. Written by `process_wait` to the
/// caller's buffer as [`FaultRecord::WORDS`] little-endian `u64`s in field order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FaultRecord {
    /// Which exception.
    pub kind: FaultKind,
    /// The exception's error code (0 when it has none).
    pub error_code: u64,
    /// The faulting address for page faults and stack overflows (CR2), else 0.
    pub address: u64,
    /// Kernel-assigned id of the faulting thread (stable for the thread's lifetime, also
    /// shown in logs); not a handle.
    pub thread_id: u64,
    /// Instruction pointer of the faulting instruction.
    pub rip: u64,
    /// Stack pointer at the fault.
    pub rsp: u64,
    /// Frame pointer (the start of a user backtrace; user code keeps frame pointers).
    pub rbp: u64,
    /// Flags register.
    pub rflags: u64,
    /// General registers most useful in a post-mortem (syscall arguments, return value).
    pub rax: u64,
    /// See `rax`.
    pub rdi: u64,
    /// See `rax`.
    pub rsi: u64,
    /// See `rax`.
    pub rdx: u64,
}

impl FaultRecord {
    /// Length of the record on the wire, in `u64` words.
    pub const WORDS: usize = 12;

    /// Encode for copying to user memory.
    pub const fn to_words(&self) -> [u64; Self::WORDS] {
        [
            self.kind.raw(),
            self.error_code,
            self.address,
            self.thread_id,
            self.rip,
            self.rsp,
            self.rbp,
            self.rflags,
            self.rax,
            self.rdi,
            self.rsi,
            self.rdx,
        ]
    }

    /// Decode a record read from the kernel; an unknown kind is [`Error::InvalidArgument`].
    pub fn from_words(w: &[u64; Self::WORDS]) -> Result<FaultRecord, Error> {
        Ok(FaultRecord {
            kind: FaultKind::try_from(w[0])?,
            error_code: w[1],
            address: w[2],
            thread_id: w[3],
            rip: w[4],
            rsp: w[5],
            rbp: w[6],
            rflags: w[7],
            rax: w[8],
            rdi: w[9],
            rsi: w[10],
            rdx: w[11],
        })
    }
}

/// How a process ended, as `process_wait` returns it in two registers (`rdi` = tag,
/// `rsi` = value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// Tag 1: it called `process_exit(code)` (or its last thread exited: code 0).
    Exited(u64),
    /// Tag 2: someone called `process_kill` on it.
    Killed,
    /// Tag 3: a CPU exception killed it; the [`FaultRecord`] was written if a buffer was given.
    /// The value register holds the [`FaultKind`] number, so the kind is known without one.
    Faulted(FaultKind),
}

impl ExitStatus {
    /// Encode as `(tag, value)`.
    pub const fn to_regs(self) -> (u64, u64) {
        match self {
            ExitStatus::Exited(code) => (1, code),
            ExitStatus::Killed => (2, 0),
            ExitStatus::Faulted(kind) => (3, kind.raw()),
        }
    }

    /// Decode `(tag, value)`; an unknown tag or fault kind is [`Error::InvalidArgument`].
    pub fn from_regs(tag: u64, value: u64) -> Result<ExitStatus, Error> {
        match (tag, value) {
            (1, code) => Ok(ExitStatus::Exited(code)),
            (2, 0) => Ok(ExitStatus::Killed),
            (3, kind) => Ok(ExitStatus::Faulted(FaultKind::try_from(kind)?)),
            _ => Err(Error::InvalidArgument),
        }
    }
}

const _: () = assert!(FaultRecord::WORDS * 8 == 96);
