//! `selftest`: the root of the TEST and BENCH images, and its own helper processes.
//!
//! As root (no start words), it reads the initfs the kernel mapped for it: with a file `fuzz`
//! it runs the system-call fuzzer ([`fuzz`]), with a file `bench` the benchmarks ([`bench`]),
//! otherwise the user-space test suite ([`tests`]), which
//! prints `[utest] start|pass|fail <name>` lines and `[utest] done passed=N failed=M`, then exits
//! 0 iff everything passed. Helpers (IPC peers, fault victims, sleepers) are this same image
//! spawned again with a role in start word 0 ([`roles`]). Everything goes through libhsync;
//! the crate has no `unsafe`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

mod bench;
mod fuzz;
mod roles;
mod tests;

use libhsync::StartArgs;

libhsync::entry!(main);

fn main(args: StartArgs) -> i32 {
    match args.word(0) {
        Some(role) => roles::run(role, args),
        None => {
            let Some(initfs) = args.initfs() else {
                libhsync::println!("[utest] fail setup: no initfs (not started as root?)");
                libhsync::println!("[utest] done passed=0 failed=1");
                return 1;
            };
            let archive = match hsync_initfs::Archive::parse(initfs) {
                Ok(a) => a,
                Err(e) => {
                    libhsync::println!("[utest] fail setup: initfs: {e}");
                    libhsync::println!("[utest] done passed=0 failed=1");
                    return 1;
                }
            };
            let Some(me) = archive.get("root") else {
                libhsync::println!("[utest] fail setup: no `root` in the initfs");
                libhsync::println!("[utest] done passed=0 failed=1");
                return 1;
            };
            if let Some(conf) = archive.get("fuzz") {
                return fuzz::run(me, conf, tests::own_priority());
            }
            match archive.get("bench") {
                Some(mode) => bench::run(me, mode, args),
                None => tests::run(me, args),
            }
        }
    }
}
