//! The raw `syscall` stubs: the only place in user space that executes the instruction.
//!
//! Register convention (`hsync_abi::regs`): number in `rax`, arguments in
//! `rdi, rsi, rdx, r10, r8, r9`; status back in `rax`, results in the same six registers;
//! `rcx` and `r11` are clobbered by the instruction. Everything above this module is typed.

use hsync_abi::{Error, Sysnum};

/// The registers a system call returned: the status (`rax`) and the six result registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawReturn {
    /// `rax`: 0 on success, else an error code.
    pub status: u64,
    /// `rdi, rsi, rdx, r10, r8, r9` in that order.
    pub out: [u64; 6],
}

impl RawReturn {
    /// The status as a `Result`, the results on success. A code this library does not know
    /// (a kernel of another ABI version) is reported as [`Error::InvalidSyscall`]'s neighbour
    /// [`Error::InvalidArgument`]; it cannot happen with a matching kernel.
    #[inline(always)]
    pub fn result(self) -> Result<[u64; 6], Error> {
        // Success is one compare inline; decoding an error code stays out of line.
        if self.status == hsync_abi::regs::STATUS_OK {
            Ok(self.out)
        } else {
            Err(Self::error(self.status))
        }
    }

    #[cold]
    #[inline(never)]
    fn error(status: u64) -> Error {
        match Error::check_status(status) {
            Ok(Err(e)) => e,
            Ok(Ok(())) | Err(_) => Error::InvalidArgument,
        }
    }
}

/// Executes `syscall` with number `nr` and arguments `args`.
///
/// # Safety
///
/// The caller must make sure the call cannot break Rust's guarantees for this process: any
/// pointer argument the kernel writes through must point to memory no Rust reference covers,
/// and the call must not unmap or remap memory this process still uses, nor start a thread at
/// an arbitrary address of this process. The typed wrappers in this crate uphold that; see
/// [`crate::raw`] for the checked way to issue arbitrary register values.
#[cfg(target_os = "none")]
#[inline(always)]
pub unsafe fn syscall(nr: u64, args: [u64; 6]) -> RawReturn {
    let status: u64;
    let (o0, o1, o2, o3, o4, o5): (u64, u64, u64, u64, u64, u64);
    // SAFETY: `syscall` enters the kernel, which preserves every register except rax (status),
    // the six result registers and rcx/r11, all declared here. Memory effects are the caller's
    // responsibility (this function's safety contract); the stack is not touched.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr => status,
            inlateout("rdi") args[0] => o0,
            inlateout("rsi") args[1] => o1,
            inlateout("rdx") args[2] => o2,
            inlateout("r10") args[3] => o3,
            inlateout("r8") args[4] => o4,
            inlateout("r9") args[5] => o5,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    RawReturn {
        status,
        out: [o0, o1, o2, o3, o4, o5],
    }
}

/// Host builds (unit tests) have no HSYNC kernel: every call fails with `InvalidSyscall`
/// instead of reaching the host's kernel.
///
/// # Safety
///
/// Always safe; `unsafe` only to match the target signature.
#[cfg(not(target_os = "none"))]
pub unsafe fn syscall(_nr: u64, _args: [u64; 6]) -> RawReturn {
    RawReturn {
        status: Error::InvalidSyscall.raw(),
        out: [0; 6],
    }
}

/// [`syscall`] with a typed number, decoded status.
///
/// # Safety
///
/// As [`syscall`].
#[inline(always)]
pub unsafe fn call(nr: Sysnum, args: [u64; 6]) -> Result<[u64; 6], Error> {
    // SAFETY: forwarded to the caller.
    unsafe { syscall(nr.raw(), args) }.result()
}

/// Issues a call that takes no pointer and changes no memory of this process: always safe.
#[inline(always)]
pub(crate) fn pure(nr: Sysnum, args: [u64; 6]) -> Result<[u64; 6], Error> {
    // SAFETY: callers in this crate only use this for calls whose arguments are values (handles,
    // rights, sizes, words) and which neither write this process's memory through a pointer nor
    // change its mappings; IPC calls may write the IPC buffer, which this crate only ever
    // accesses with volatile reads and writes through raw pointers (see `ipc::IpcBuf`).
    unsafe { call(nr, args) }
}
