//! The root process of the normal image (kernel-core milestone): the first user process.
//!
//! It proves the path kernel → initfs → user space works: it logs a hello line with the ABI
//! version and the initfs file list (read from the image the kernel mapped at
//! `ROOT_INITFS_ADDR`), then waits forever on a fresh notification. The supervisor (manifest,
//! servers, restarts) is the next milestone; this crate refuses to grow policy before then.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use libhsync::{Notification, StartArgs};

libhsync::entry!(main);

fn main(args: StartArgs) -> i32 {
    log::info!(
        "root: hello from user space, ABI version {}",
        libhsync::ABI_VERSION
    );
    match args.initfs().map(hsync_initfs::Archive::parse) {
        Some(Ok(archive)) => {
            for entry in archive.entries() {
                log::info!("root: initfs {} ({} bytes)", entry.name, entry.data.len());
            }
        }
        Some(Err(e)) => log::error!("root: the initfs is corrupt: {e}"),
        None => log::error!("root: no initfs handle in arg1"),
    }
    let parked = match Notification::create() {
        Ok(n) => n,
        Err(e) => {
            log::error!("root: notification_create failed: {e}");
            return 1;
        }
    };
    log::info!("root: nothing more to do until the supervisor lands; waiting");
    loop {
        if let Err(e) = parked.wait() {
            log::error!("root: notification_wait failed: {e}");
            return 1;
        }
    }
}
