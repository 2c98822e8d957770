//! The safe, typed syscall dispatcher behind arch's unsafe entry shell: decode `Sysnum`,
//! validate every argument (handles, rights, user pointers), act, encode the result.
//!
//! OWNER: kcore2 (kernel-core wave). Called by arch's syscall entry stub.

use crate::arch::UserRegs;

/// Handles one syscall of the current thread: `regs` holds the user registers (number in rax,
/// args in rdi, rsi, rdx, r10, r8, r9); on return they hold the results (status in rax).
/// May block (switching to another thread) before returning.
pub fn handle(_regs: &mut UserRegs) {
    todo!("kcore2")
}
