//! Starting root, the first and only process the kernel creates by itself.
//!
//! Root's image is the initfs file `root`. The kernel maps the whole initfs read-only at
//! `startup::ROOT_INITFS_ADDR` and starts root's main thread with `rdi` = a handle to root's own
//! Process and `rsi` = a handle to the initfs Frame (`READ | MAP | DUPLICATE | TRANSFER`), at the
//! highest priority, which is also the most root may grant. Root's table also holds the
//! hardware authority, at the fixed `hsync_abi::ROOT_HW_AUTHORITY` (the only one there is).

use alloc::sync::Arc;

use hsync_abi::{ExitStatus, MapFlags, PAGE_SIZE, PRIORITY_LEVELS, Rights, startup};

use crate::boot::BootInfo;
use crate::object::process::Process;
use crate::object::thread::{Block, Wake};
use crate::object::{Frame, KObject};
use crate::sched;

/// Root's priority (and the highest it may give its children).
pub const ROOT_PRIORITY: u8 = (PRIORITY_LEVELS - 1) as u8;

/// Why root could not be started.
#[derive(Debug)]
#[allow(dead_code, reason = "the field is read through Debug in the boot log")]
pub enum RootError {
    /// The initfs has no `root` file.
    Missing,
    /// Building the process failed.
    Failed(&'static str),
}

/// Creates and starts root from the initfs. Returns its process.
pub fn start(info: &BootInfo) -> Result<Arc<Process>, RootError> {
    let archive = crate::initfs::open(info).ok_or(RootError::Missing)?;
    let image = archive.get("root").ok_or(RootError::Missing)?;
    let module = info.initfs().ok_or(RootError::Missing)?;
    let p = Process::new("root", ROOT_PRIORITY).map_err(|_| RootError::Failed("address space"))?;
    let loaded = p
        .with_aspace(|a| crate::mm::elf::load(a, image).map_err(|_| hsync_abi::Error::BadElf))
        .map_err(|_| RootError::Failed("root is not a loadable ELF"))?;
    let pages = usize::try_from(module.len.div_ceil(PAGE_SIZE))
        .map_err(|_| RootError::Failed("initfs size"))?;
    let mem = crate::mm::memory::Memory::from_physical(module.phys, pages)
        .map_err(|_| RootError::Failed("initfs memory"))?;
    p.with_aspace(|a| {
        a.map(startup::ROOT_INITFS_ADDR, &mem, 0, pages, MapFlags::READ)
            .map_err(|_| hsync_abi::Error::OutOfMemory)
    })
    .map_err(|_| RootError::Failed("mapping the initfs"))?;
    let (own, initfs, hw) = {
        let mut table = p.handles.lock();
        let own = table.insert(
            KObject::Process(p.clone()),
            hsync_abi::ObjectKind::Process.all_rights(),
        );
        let fs = table.insert(
            KObject::Frame(Arc::new(Frame::new(mem))),
            Rights::READ | Rights::MAP | Rights::DUPLICATE | Rights::TRANSFER,
        );
        // Third, so that it lands at the fixed `ROOT_HW_AUTHORITY` (see `hsync_abi::hw`).
        let hw = table.insert(
            crate::hw::authority(),
            hsync_abi::ObjectKind::HwAuthority.all_rights(),
        );
        (own, fs, hw)
    };
    let (Ok(own), Ok(initfs), Ok(hw)) = (own, initfs, hw) else {
        return Err(RootError::Failed("handle table"));
    };
    if hw != hsync_abi::ROOT_HW_AUTHORITY {
        return Err(RootError::Failed(
            "hardware authority not at ROOT_HW_AUTHORITY",
        ));
    }
    let t = crate::syscall::new_thread(
        &p,
        loaded.entry,
        loaded.stack_top,
        loaded.ipc_buffer,
        ROOT_PRIORITY,
    )
    .map_err(|_| RootError::Failed("main thread"))?;
    if let Some(regs) = t.inner.lock().start.as_mut() {
        regs.rdi = own.raw();
        regs.rsi = initfs.raw();
        regs.rdx = loaded.ipc_buffer;
    }
    sched::start(&t).map_err(|_| RootError::Failed("start"))?;
    p.running_threads
        .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    log::info!(target: "proc", "root started (process {}, entry {:#x})", p.id, loaded.entry);
    Ok(p)
}

/// Blocks the calling kernel thread until `p` has ended; returns how.
pub fn wait(p: &Arc<Process>) -> ExitStatus {
    loop {
        if let Some(end) = p.ending() {
            return end.status;
        }
        p.waiters.lock().push(sched::current());
        if let Wake::Err(_) = sched::block(Block::ProcessWait(p.clone())) {
            p.waiters
                .lock()
                .retain(|t| !Arc::ptr_eq(t, &sched::current()));
        }
    }
}
