//! The safe, typed syscall dispatcher behind arch's unsafe entry shell: decode `Sysnum`,
//! validate every argument (handles, rights, user pointers), act, encode the result.
//!
//! OWNER: kcore2 (kernel-core wave). Called by arch's syscall entry stub.

use crate::arch::UserRegs;

/// Handles one syscall of the current thread: `regs` holds the user registers (number in rax,
/// args in rdi, rsi, rdx, r10, r8, r9); on return they hold the results (status in rax).
/// May block (switching to another thread) before returning.
/// (Contract placeholder: answers `null` with success and everything else with
/// `InvalidSyscall`, so arch can test the entry path; kcore2 writes the real dispatcher.)
pub fn handle(regs: &mut UserRegs) {
    regs.rax = match hsync_abi::Sysnum::try_from(regs.rax) {
        Ok(hsync_abi::Sysnum::Null) => 0,
        _ => hsync_abi::Error::InvalidSyscall as u64,
    };
}
