//! Unvalidated system calls for tests of the kernel's checks.
//!
//! [`syscall`] issues any register values, but refuses (before entering the kernel) the few
//! combinations that could break this process's memory safety if the kernel *accepted* them:
//! a pointer the kernel writes through, a range it unmaps, or an entry/stack of a new thread,
//! must be *inert* — null, in the kernel half, non-canonical, overflowing, or inside libhsync's
//! never-mapped probe window. Everything else is safe to pass: the kernel validates it, and the
//! IPC buffer it may write is only accessed volatilely.
//!
//! ```no_run
//! use libhsync::raw::{self, BadPtr};
//! let r = raw::syscall(0, [0; 6]).unwrap();           // number 0 is never a syscall
//! assert_eq!(r.result(), Err(libhsync::Error::InvalidSyscall));
//! let log = hsync_abi::Sysnum::DebugLog.raw();
//! let r = raw::syscall(log, [BadPtr::Kernel.addr(), 8, 0, 0, 0, 0]).unwrap();
//! assert_eq!(r.result(), Err(libhsync::Error::BadAddress));
//! ```

use hsync_abi::Sysnum;
use hsync_abi::startup::{USER_END, USER_MIN};

use crate::memory::{PROBE_BASE, PROBE_END};
pub use crate::sys::RawReturn;

/// Addresses that no valid user buffer can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadPtr {
    /// The start of the kernel half.
    Kernel,
    /// An address above `USER_END` that is not canonical.
    NonCanonical,
    /// Inside libhsync's never-mapped probe window.
    Unmapped,
    /// Near the top of the address space: any length of 16 bytes or more wraps around.
    Overflowing,
    /// Page 0 (never mapped).
    Null,
}

impl BadPtr {
    /// Every kind, for loops.
    pub const ALL: [BadPtr; 5] = [
        BadPtr::Kernel,
        BadPtr::NonCanonical,
        BadPtr::Unmapped,
        BadPtr::Overflowing,
        BadPtr::Null,
    ];

    /// The address.
    pub const fn addr(self) -> u64 {
        match self {
            BadPtr::Kernel => 0xffff_8000_0000_0000,
            BadPtr::NonCanonical => 0x0000_8000_0000_0000,
            BadPtr::Unmapped => PROBE_BASE,
            BadPtr::Overflowing => u64::MAX - 7,
            BadPtr::Null => 0,
        }
    }
}

/// Whether `[addr, addr + len)` can name no memory this process uses: see the module docs.
pub fn is_inert(addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return true; // wraps: no mapping can cover it
    };
    end <= USER_MIN || addr >= USER_END || (addr >= PROBE_BASE && end <= PROBE_END)
}

/// Why [`syscall`] refused to issue a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused;

/// Issues system call `nr` with `args` unless the call could violate memory safety of this
/// process if the kernel accepted it (see the module docs).
pub fn syscall(nr: u64, args: [u64; 6]) -> Result<RawReturn, Refused> {
    let ok = match Sysnum::try_from(nr) {
        // The kernel writes a fault record through args[1].
        Ok(Sysnum::ProcessWait) => {
            args[1] == 0 || is_inert(args[1], hsync_abi::FaultRecord::WORDS as u64 * 8)
        }
        // The kernel writes whole handle records through args[1] (only when len >= one record).
        Ok(Sysnum::HandleList) => {
            args[2] < hsync_abi::HandleRecord::SIZE as u64 || is_inert(args[1], args[2])
        }
        // The kernel writes a framebuffer record through args[1].
        Ok(Sysnum::FramebufferInfo) => is_inert(args[1], args[2]),
        // Unmapping: only ranges this process never uses.
        Ok(Sysnum::FrameUnmap) => is_inert(args[1], args[2]),
        // Mapping over inert ranges only, so the heap and mappings keep their addresses.
        Ok(Sysnum::FrameMap) => is_inert(args[2], args[5]),
        // A thread may only be created to start at an inert address (it would fault at once).
        Ok(Sysnum::ThreadCreate) => is_inert(args[1], 1) && is_inert(args[2], 0),
        // Ending the caller is safe but never returns here; use the typed calls.
        Ok(Sysnum::ProcessExit | Sysnum::ThreadExit) => false,
        _ => true,
    };
    if !ok {
        return Err(Refused);
    }
    // SAFETY: the match above refuses every call that could write, unmap or execute memory of
    // this process; other calls only read memory (validated by the kernel) or act on objects.
    Ok(unsafe { crate::sys::syscall(nr, args) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pointers_are_inert_and_real_ones_are_not() {
        for b in BadPtr::ALL {
            assert!(is_inert(b.addr(), 16), "{b:?}");
        }
        assert!(!is_inert(0x40_0000, 8));
        assert!(!is_inert(crate::memory::HEAP_BASE, 4096));
        assert!(!is_inert(PROBE_END - 8, 16), "straddles the probe window");
        assert!(!is_inert(0, 0x2000), "reaches past page 0");
    }

    #[test]
    fn writes_through_live_memory_are_refused() {
        let wait = Sysnum::ProcessWait.raw();
        assert_eq!(syscall(wait, [1, 0x40_0000, 0, 0, 0, 0]), Err(Refused));
        assert!(syscall(wait, [1, BadPtr::Kernel.addr(), 0, 0, 0, 0]).is_ok());
        let unmap = Sysnum::FrameUnmap.raw();
        assert_eq!(syscall(unmap, [1, 0x40_0000, 4096, 0, 0, 0]), Err(Refused));
        assert_eq!(syscall(Sysnum::ProcessExit.raw(), [0; 6]), Err(Refused));
        assert!(syscall(0, [0; 6]).is_ok());
    }
}
