//! The safe, typed syscall dispatcher behind arch's unsafe entry shell: decode `Sysnum`,
//! validate every argument (handles, rights, user pointers), act, encode the result.
//!
//! Every handle goes through the caller's table with a kind and rights check
//! (`HandleTable::get_kind`: `InvalidHandle`, then `WrongKind`, then `MissingRights`); every
//! user pointer through the address space's checked copy API. A handler returns
//! `Result<Out, Error>`; [`handle`] writes the status to `rax` and the six result registers (0
//! where a call defines none, and all 0 on error).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::Ordering;

use hsync_abi::{
    DEADLINE_NEVER, DEADLINE_NOW, DEBUG_LOG_MAX, Error, ExitStatus, FaultRecord, Handle, MapFlags,
    MsgInfo, ObjectKind, PAGE_SIZE, PRIORITY_LEVELS, PROCESS_NAME_MAX, Rights, Sysnum, startup,
};

use crate::arch::{self, SyscallExit, UserRegs};
use crate::ipc::{self, Out};
use crate::object::process::{self, Process};
use crate::object::thread::{Block, Msg, Wake};
use crate::object::{Endpoint, Frame, KObject, Notification, ReplyObject, Thread};
use crate::sched;

/// What the caller does after the handler.
enum Next {
    Return(Result<Out, Error>),
    Exit,
}

/// The system calls with a fast path: the syscall entry tries [`fast`] for these first.
pub const FAST_SYSCALLS: [u64; 2] = [Sysnum::IpcCall as u64, Sysnum::IpcReplyRecv as u64];

/// The IPC fast paths (docs/ipc.md): a straight-line handoff to a waiting peer, which leaves
/// the kernel in the peer's place, or `None` with nothing changed, and [`handle`] takes the
/// call.
#[inline(always)]
pub fn fast(regs: &mut UserRegs) -> Option<SyscallExit> {
    if regs.rax == Sysnum::IpcCall as u64 {
        ipc::fast_call(regs)
    } else {
        ipc::fast_reply_recv(regs)
    }
}

/// Handles one syscall of the current thread: `regs` holds the user registers (number in rax,
/// args in rdi, rsi, rdx, r10, r8, r9); on return they hold the results (status in rax).
/// May block (switching to another thread) before returning; never returns for the exit
/// calls or when the thread was killed meanwhile. (The IPC fast paths are [`fast`]; this is
/// everything they did not take, and always returns [`SyscallExit::Return`].)
pub fn handle(regs: &mut UserRegs) -> SyscallExit {
    let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
    let next = match Sysnum::try_from(regs.rax) {
        // The two cheapest calls skip the context lookup.
        Ok(Sysnum::Null) => Next::Return(Ok([0; 6])),
        Ok(Sysnum::ClockRead) => Next::Return(Ok([arch::uptime_ns(), 0, 0, 0, 0, 0])),
        Ok(nr) => dispatch(nr, args),
        Err(e) => Next::Return(Err(e)),
    };
    let result = match next {
        Next::Return(r) => r,
        Next::Exit => sched::exit_current(),
    };
    write_result(regs, result);
    // What the call dropped is destroyed here, iteratively (docs/architecture.md), and a free
    // span at the heap's top goes back to the PMM.
    crate::object::reap::drain();
    crate::mm::heap::trim();
    sched::syscall_exit();
    SyscallExit::Return
}

/// Writes a system call's result into the caller's saved registers: the status in `rax`, the
/// six result registers (all 0 on an error — docs/syscalls.md: no stale value, kernel or
/// user, reaches user space).
pub fn write_result(regs: &mut UserRegs, r: Result<Out, Error>) {
    let out = match r {
        Ok(out) => {
            regs.rax = 0;
            out
        }
        Err(e) => {
            regs.rax = e as u64;
            [0; 6]
        }
    };
    [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9] = out;
}

/// The calling thread and its process.
struct Ctx<'a> {
    me: &'a Arc<Thread>,
    p: &'a Arc<Process>,
}

impl Ctx<'_> {
    fn get(&self, h: u64, kind: ObjectKind, rights: Rights) -> Result<KObject, Error> {
        self.p
            .handles
            .lock()
            .get_kind(Handle::from_raw(h), kind, rights)
            .cloned()
    }

    /// An endpoint and the handle's badge, with one table lookup (the IPC hot path).
    fn endpoint(&self, h: u64, rights: Rights) -> Result<(Arc<Endpoint>, u64), Error> {
        let table = self.p.handles.lock();
        ipc::endpoint_in(&table, Handle::from_raw(h), rights).map(|(ep, badge)| (ep.clone(), badge))
    }

    fn process(&self, h: u64, rights: Rights) -> Result<Arc<Process>, Error> {
        match self.get(h, ObjectKind::Process, rights)? {
            KObject::Process(p) => Ok(p),
            _ => Err(Error::WrongKind),
        }
    }

    fn insert(&self, obj: KObject) -> Result<u64, Error> {
        process::insert(self.p, obj).map(Handle::raw)
    }

    fn read_user(&self, ptr: u64, buf: &mut [u8]) -> Result<(), Error> {
        check_range(ptr, buf.len() as u64)?;
        self.p.with_aspace(|a| a.copy_from_user(ptr, buf))
    }

    fn write_user(&self, ptr: u64, buf: &[u8]) -> Result<(), Error> {
        check_range(ptr, buf.len() as u64)?;
        self.p.with_aspace(|a| a.copy_to_user(ptr, buf))
    }
}

/// A user range must lie in the user half and not overflow (the copy API re-checks mapping).
fn check_range(ptr: u64, len: u64) -> Result<(), Error> {
    let end = ptr.checked_add(len).ok_or(Error::BadAddress)?;
    if ptr < startup::USER_MIN || end > startup::USER_END {
        return Err(Error::BadAddress);
    }
    Ok(())
}

fn priority(raw: u64, max: u8) -> Result<u8, Error> {
    match u8::try_from(raw) {
        Ok(p) if u64::from(p) < PRIORITY_LEVELS && p <= max => Ok(p),
        _ => Err(Error::InvalidArgument),
    }
}

fn msg(info: u64, a: &[u64; 6]) -> Result<(MsgInfo, Msg), Error> {
    let info = MsgInfo::from_raw(info)?;
    Ok((
        info,
        Msg {
            badge: 0,
            info: info.raw(),
            w: [a[2], a[3], a[4], a[5]],
        },
    ))
}

fn dispatch(nr: Sysnum, a: [u64; 6]) -> Next {
    let me = sched::current();
    let Some(p) = me.process.as_ref() else {
        return Next::Return(Err(Error::InvalidState));
    };
    let cx = Ctx { me: &me, p };
    let r = match nr {
        Sysnum::ProcessExit => {
            cx.p.end(ExitStatus::Exited(a[0]), None);
            return Next::Exit;
        }
        Sysnum::ThreadExit => {
            // `thread_exit(va, len)`: unmap the thread's own stack first (it is on its kernel
            // stack now); a bad range is ignored, the thread exits either way.
            let (va, len) = (a[0], a[1]);
            if len != 0
                && va % PAGE_SIZE == 0
                && len % PAGE_SIZE == 0
                && check_range(va, len).is_ok()
                && let Ok(pages) = usize::try_from(len / PAGE_SIZE)
            {
                let _ =
                    cx.p.with_aspace(|s| s.unmap(va, pages).map_err(Error::from));
            }
            if cx.p.running_threads.fetch_sub(1, Ordering::Relaxed) <= 1 {
                cx.p.end(ExitStatus::Exited(0), None);
            }
            return Next::Exit;
        }
        // Past the heap's headroom only the calls that allocate nothing go ahead
        // (`mm::heap::headroom`): every other call ends in `OutOfMemory`, never in a panic.
        nr if !frees_only(nr) && !crate::mm::heap::headroom() => Err(Error::OutOfMemory),
        nr => call(&cx, nr, a),
    };
    Next::Return(r)
}

/// The calls that never allocate from the kernel heap (they free, read or wait), which keep
/// working when the heap's headroom is gone so that a process can always clean up.
fn frees_only(nr: Sysnum) -> bool {
    matches!(
        nr,
        Sysnum::HandleClose
            | Sysnum::HandleInspect
            | Sysnum::HandleRestrict
            | Sysnum::ProcessKill
            | Sysnum::FrameUnmap
            | Sysnum::SystemInfo
            | Sysnum::Yield
            | Sysnum::DebugLog
    )
}

fn call(cx: &Ctx, nr: Sysnum, a: [u64; 6]) -> Result<Out, Error> {
    let ok = |v: u64| Ok([v, 0, 0, 0, 0, 0]);
    match nr {
        Sysnum::DebugLog => debug_log(cx, a[0], a[1]).map(|()| [0; 6]),
        Sysnum::HandleClose => {
            let obj = cx.p.handles.lock().close(Handle::from_raw(a[0]))?;
            if let KObject::IoPortRange(r) = &obj {
                crate::hw::revoke_unheld(cx.p, r);
            }
            drop(obj);
            crate::mm::heap::trim_soon();
            Ok([0; 6])
        }
        Sysnum::HandleDuplicate => {
            let rights = Rights::from_raw(a[1])?;
            let h =
                cx.p.handles
                    .lock()
                    .duplicate(Handle::from_raw(a[0]), rights, a[2])?;
            ok(h.raw())
        }
        Sysnum::HandleRestrict => {
            let mask = Rights::from_raw(a[1])?;
            let r = cx.p.handles.lock().restrict(Handle::from_raw(a[0]), mask)?;
            ok(r.raw())
        }
        Sysnum::HandleInspect => {
            let (kind, rights, badge) = cx.p.handles.lock().inspect(Handle::from_raw(a[0]))?;
            Ok([kind as u64, rights.raw(), badge, 0, 0, 0])
        }
        Sysnum::HandleGrant => {
            let target = cx.process(a[0], Rights::MANAGE)?;
            let rights = Rights::from_raw(a[2])?;
            let (obj, badge) = {
                let table = cx.p.handles.lock();
                let e = table.entry(Handle::from_raw(a[1]))?;
                if !e.rights().allows(Rights::TRANSFER) {
                    return Err(Error::MissingRights);
                }
                e.rights().shrink(rights).ok_or(Error::MissingRights)?;
                (e.object().clone(), e.badge())
            };
            if target.ending().is_some() {
                return Err(Error::InvalidState);
            }
            let h = target.handles.lock().insert_badged(obj, rights, badge)?;
            ok(h.raw())
        }
        Sysnum::EndpointCreate => ok(cx.insert(KObject::Endpoint(Arc::new(Endpoint::new())))?),
        Sysnum::IpcCall | Sysnum::IpcSend | Sysnum::IpcTrySend => {
            let (ep, badge) = cx.endpoint(a[0], Rights::SEND)?;
            let (info, mut m) = msg(a[1], &a)?;
            m.badge = badge;
            let call = nr == Sysnum::IpcCall;
            ipc::send(cx.me, &ep, m, info, call, nr != Sysnum::IpcTrySend)
        }
        Sysnum::IpcRecv | Sysnum::IpcTryRecv => {
            let (ep, _) = cx.endpoint(a[0], Rights::RECV)?;
            ipc::recv(cx.me, &ep, nr == Sysnum::IpcRecv)
        }
        Sysnum::IpcReply => {
            let (info, m) = msg(a[1], &a)?;
            let cap = if a[0] == 0 {
                cx.me.inner.lock().pending.take().ok_or(Error::NotFound)?
            } else {
                let h = Handle::from_raw(a[0]);
                let obj = {
                    let mut table = cx.p.handles.lock();
                    table.get_kind(h, ObjectKind::Reply, Rights::SEND)?;
                    table.close(h)?
                };
                let KObject::Reply(r) = obj else {
                    return Err(Error::WrongKind);
                };
                let cap = r.cap.lock().take();
                cap.ok_or(Error::NotFound)?
            };
            ipc::reply(cx.me, cap, info, m)
        }
        Sysnum::IpcReplyRecv => {
            let (ep, _) = cx.endpoint(a[0], Rights::RECV)?;
            let (info, m) = msg(a[1], &a)?;
            ipc::reply_recv(cx.me, &ep, info, m)
        }
        Sysnum::IpcReplySave => {
            cx.p.handles.lock().reserve(1)?;
            let cap = cx.me.inner.lock().pending.take().ok_or(Error::NotFound)?;
            ok(cx.insert(KObject::Reply(Arc::new(ReplyObject::new(cap))))?)
        }
        Sysnum::NotificationCreate => {
            ok(cx.insert(KObject::Notification(Arc::new(Notification::new())))?)
        }
        Sysnum::NotificationSignal => {
            let KObject::Notification(n) =
                cx.get(a[0], ObjectKind::Notification, Rights::SIGNAL)?
            else {
                return Err(Error::WrongKind);
            };
            if a[1] == 0 {
                return Err(Error::InvalidArgument);
            }
            n.signal(a[1]);
            Ok([0; 6])
        }
        Sysnum::NotificationTimer => {
            let KObject::Notification(n) =
                cx.get(a[0], ObjectKind::Notification, Rights::SIGNAL)?
            else {
                return Err(Error::WrongKind);
            };
            if a[1] == 0 && a[2] != hsync_abi::DEADLINE_NEVER {
                return Err(Error::InvalidArgument);
            }
            n.set_timer(a[1], a[2])?;
            Ok([0; 6])
        }
        Sysnum::NotificationWait | Sysnum::NotificationPoll => {
            let KObject::Notification(n) = cx.get(a[0], ObjectKind::Notification, Rights::WAIT)?
            else {
                return Err(Error::WrongKind);
            };
            notification_wait(cx, &n, nr == Sysnum::NotificationWait)
        }
        Sysnum::FrameCreate => {
            let size = a[0];
            if size == 0 {
                return Err(Error::InvalidArgument);
            }
            if !size.is_multiple_of(PAGE_SIZE) {
                return Err(Error::Misaligned);
            }
            let pages = size / PAGE_SIZE;
            if pages > crate::mm::pmm::stats().free {
                return Err(Error::OutOfMemory);
            }
            let pages = usize::try_from(pages).map_err(|_| Error::OutOfMemory)?;
            let mem =
                crate::mm::memory::Memory::new_zeroed(pages).map_err(|_| Error::OutOfMemory)?;
            ok(cx.insert(KObject::Frame(Arc::new(Frame::new(mem))))?)
        }
        Sysnum::FrameMap => frame_map(cx, a),
        Sysnum::FrameUnmap => {
            let target = cx.process(a[0], Rights::MAP)?;
            let (va, len) = (a[1], a[2]);
            if va % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 {
                return Err(Error::Misaligned);
            }
            if len == 0 {
                return Err(Error::InvalidArgument);
            }
            check_range(va, len)?;
            let pages = usize::try_from(len / PAGE_SIZE).map_err(|_| Error::BadAddress)?;
            target.with_aspace(|s| s.unmap(va, pages).map_err(Error::from))?;
            Ok([0; 6])
        }
        Sysnum::ProcessCreate => process_create(cx, a),
        Sysnum::ProcessKill => {
            let target = cx.process(a[0], Rights::MANAGE)?;
            target.end(ExitStatus::Killed, None);
            crate::mm::heap::trim_soon();
            Ok([0; 6])
        }
        Sysnum::ProcessWait => process_wait(cx, a),
        Sysnum::ThreadCreate => thread_create(cx, a),
        Sysnum::ThreadSetCpu => {
            let KObject::Thread(t) = cx.get(a[0], ObjectKind::Thread, Rights::MANAGE)? else {
                return Err(Error::WrongKind);
            };
            let cpu = usize::try_from(a[1]).map_err(|_| Error::InvalidArgument)?;
            sched::set_cpu(&t, cpu)?;
            Ok([0; 6])
        }
        Sysnum::ThreadStart => {
            let KObject::Thread(t) = cx.get(a[0], ObjectKind::Thread, Rights::MANAGE)? else {
                return Err(Error::WrongKind);
            };
            let Some(tp) = t.process.clone() else {
                return Err(Error::InvalidState);
            };
            if tp.ending().is_some() {
                return Err(Error::InvalidState);
            }
            {
                let mut inner = t.inner.lock();
                let Some(regs) = inner.start.as_mut() else {
                    return Err(Error::InvalidState);
                };
                regs.rdi = a[1];
                regs.rsi = a[2];
                regs.rdx = t.ipc_buffer;
            }
            // Counted before it can run (and exit), uncounted if it could not start.
            tp.running_threads.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = sched::start(&t) {
                tp.running_threads.fetch_sub(1, Ordering::Relaxed);
                return Err(e);
            }
            Ok([0; 6])
        }
        Sysnum::Yield => {
            sched::yield_now();
            Ok([0; 6])
        }
        Sysnum::SleepUntil => {
            sched::sleep_until(a[0])?;
            Ok([0; 6])
        }
        Sysnum::SystemInfo => match a[0] {
            hsync_abi::SYSINFO_MEMORY => {
                let s = crate::mm::pmm::stats();
                Ok([
                    s.free,
                    s.used(),
                    s.total,
                    crate::object::live(ObjectKind::Process),
                    crate::object::live(ObjectKind::Thread),
                    crate::object::live_total(),
                ])
            }
            hsync_abi::SYSINFO_COUNTERS => {
                let c = sched::counters();
                Ok([
                    arch::fpu_traps(),
                    c.fast_handoffs,
                    c.parked_resumes,
                    crate::object::thread::stack_check::high_water(),
                    crate::object::thread::stack_check::STACK_BYTES,
                    crate::object::reap::reaped(),
                ])
            }
            hsync_abi::SYSINFO_HEAP => {
                let c = crate::mm::heap::counters();
                Ok([
                    crate::mm::heap::mapped_bytes(),
                    c.allocated_bytes as u64,
                    crate::mm::pmm::reserve(),
                    crate::mm::vmm::table_frames(),
                    0,
                    0,
                ])
            }
            hsync_abi::SYSINFO_CPUS => Ok([
                u64::from(arch::cpus_online()),
                u64::from(arch::cpu_id()),
                0,
                0,
                0,
                0,
            ]),
            page if page >= hsync_abi::SYSINFO_CPU => {
                sched::cpu_info((page - hsync_abi::SYSINFO_CPU) as usize)
                    .ok_or(Error::InvalidArgument)
            }
            _ => Err(Error::InvalidArgument),
        },
        Sysnum::Null => Ok([0; 6]),
        Sysnum::ClockRead => ok(arch::uptime_ns()),
        Sysnum::ProcessExit | Sysnum::ThreadExit => Err(Error::InvalidState),
        Sysnum::IoportCreate
        | Sysnum::IoportEnable
        | Sysnum::IrqCreate
        | Sysnum::IrqBind
        | Sysnum::IrqAck
        | Sysnum::FrameCreatePhysical
        | Sysnum::SystemPower => crate::hw::call(cx.p, nr, a),
        Sysnum::HandleList => handle_list(cx, a),
        Sysnum::FramebufferInfo => framebuffer_info(cx, a),
    }
}

/// `handle_list(process, ptr, len) -> count`: as many whole [`HandleRecord`]s as fit in
/// `len` bytes at `ptr`, in slot order; the result counts every live handle.
fn handle_list(cx: &Ctx, a: [u64; 6]) -> Result<Out, Error> {
    use hsync_abi::HandleRecord;
    use hsync_kcore::cap::Object;
    let target = cx.process(a[0], Rights::MANAGE)?;
    let (ptr, len) = (a[1], a[2]);
    let room = usize::try_from(len / HandleRecord::SIZE as u64).unwrap_or(usize::MAX);
    if room > 0 {
        check_range(ptr, len)?;
    }
    let mut out = Vec::new();
    let count = {
        let table = target.handles.lock();
        out.try_reserve_exact(room.min(table.len()) * HandleRecord::SIZE)
            .map_err(|_| Error::OutOfMemory)?;
        let mut n = 0u64;
        for (h, e) in table.iter() {
            if out.len() < room * HandleRecord::SIZE {
                let r = HandleRecord {
                    handle: h,
                    kind: e.object().kind(),
                    rights: e.rights(),
                    badge: e.badge(),
                };
                for w in r.to_words() {
                    out.extend_from_slice(&w.to_le_bytes());
                }
            }
            n += 1;
        }
        n
    };
    if !out.is_empty() {
        cx.write_user(ptr, &out)?;
    }
    Ok([count, 0, 0, 0, 0, 0])
}

/// `framebuffer_info(authority, ptr, len)`: the boot framebuffer's [`FramebufferInfo`] record
/// at `ptr` (`len` at least its size).
fn framebuffer_info(cx: &Ctx, a: [u64; 6]) -> Result<Out, Error> {
    use hsync_abi::FramebufferInfo;
    crate::hw::authority_of(cx.p, a[0])?;
    let (ptr, len) = (a[1], a[2]);
    if len < FramebufferInfo::SIZE as u64 {
        return Err(Error::InvalidArgument);
    }
    let fb = crate::boot::info()
        .and_then(|b| b.framebuffer)
        .ok_or(Error::NotFound)?;
    let r = FramebufferInfo {
        phys: fb.phys,
        width: fb.width,
        height: fb.height,
        pitch: fb.pitch,
        bpp: u64::from(fb.bpp),
        red_size: u64::from(fb.rgb[0].0),
        red_shift: u64::from(fb.rgb[0].1),
        green_size: u64::from(fb.rgb[1].0),
        green_shift: u64::from(fb.rgb[1].1),
        blue_size: u64::from(fb.rgb[2].0),
        blue_shift: u64::from(fb.rgb[2].1),
    };
    let mut out = [0u8; FramebufferInfo::SIZE];
    for (chunk, w) in out.chunks_exact_mut(8).zip(r.to_words()) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    cx.write_user(ptr, &out)?;
    Ok([0; 6])
}

fn debug_log(cx: &Ctx, ptr: u64, len: u64) -> Result<(), Error> {
    if len > DEBUG_LOG_MAX {
        return Err(Error::MessageTooLong);
    }
    let mut buf = [0u8; DEBUG_LOG_MAX as usize];
    let bytes = buf.get_mut(..len as usize).ok_or(Error::MessageTooLong)?;
    if len > 0 {
        cx.read_user(ptr, bytes)?;
    }
    let text = core::str::from_utf8(bytes).unwrap_or("<invalid UTF-8>");
    let text = text.trim_end_matches(['\n', '\r']);
    let mut out = arch::console();
    if text.starts_with("[utest]") {
        let _ = writeln!(out, "{text}");
    } else {
        let _ = writeln!(out, "[{}] {text}", cx.p.name);
    }
    Ok(())
}

fn notification_wait(cx: &Ctx, n: &Arc<Notification>, blocking: bool) -> Result<Out, Error> {
    {
        let mut s = n.state.lock();
        let bits = core::mem::take(&mut s.bits);
        if bits != 0 {
            return Ok([bits, 0, 0, 0, 0, 0]);
        }
        if !blocking {
            return Err(Error::WouldBlock);
        }
        s.waiters.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
        s.waiters.push_back(cx.me.clone());
    }
    match sched::block(Block::Notification(n.clone())) {
        Wake::Bits(b) => Ok([b, 0, 0, 0, 0, 0]),
        Wake::Err(e) => Err(e),
        _ => Err(Error::PeerDied),
    }
}

fn frame_map(cx: &Ctx, a: [u64; 6]) -> Result<Out, Error> {
    let [frame, proc_h, va, flags, offset, len] = a;
    let flags = MapFlags::from_raw(flags)?;
    let KObject::Frame(f) = cx.get(frame, ObjectKind::Frame, flags.required_rights())? else {
        return Err(Error::WrongKind);
    };
    let target = cx.process(proc_h, Rights::MAP)?;
    if len == 0 {
        return Err(Error::InvalidArgument);
    }
    if va % PAGE_SIZE != 0 || offset % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 {
        return Err(Error::Misaligned);
    }
    check_range(va, len)?;
    let frame_len = (f.mem.pages() as u64).saturating_mul(PAGE_SIZE);
    match offset.checked_add(len) {
        Some(end) if end <= frame_len => {}
        _ => return Err(Error::BadAddress),
    }
    let first = (offset / PAGE_SIZE) as usize;
    let pages = (len / PAGE_SIZE) as usize;
    target.with_aspace(|s| s.map(va, &f.mem, first, pages, flags).map_err(Error::from))?;
    Ok([0; 6])
}

fn process_create(cx: &Ctx, a: [u64; 6]) -> Result<Out, Error> {
    let [image, name_ptr, name_len, prio, ..] = a;
    let mem = if image == 0 {
        None
    } else {
        let KObject::Frame(f) = cx.get(image, ObjectKind::Frame, Rights::READ)? else {
            return Err(Error::WrongKind);
        };
        Some(f.mem.clone())
    };
    if name_len > PROCESS_NAME_MAX {
        return Err(Error::MessageTooLong);
    }
    let mut name = [0u8; PROCESS_NAME_MAX as usize];
    let name = name
        .get_mut(..name_len as usize)
        .ok_or(Error::MessageTooLong)?;
    if !name.is_empty() {
        cx.read_user(name_ptr, name)?;
    }
    let name = core::str::from_utf8(name).map_err(|_| Error::InvalidArgument)?;
    let prio = priority(prio, cx.p.max_priority)?;
    cx.p.handles.lock().reserve(2)?;
    let child = Process::new(name, prio)?;
    let thread = match mem {
        None => None,
        Some(mem) => {
            // Parsed in place: the frame is mapped read-only into the kernel's image window
            // for the load, never copied whole into the heap.
            let loaded = crate::mm::vmm::with_image(&mem, |image| {
                child.with_aspace(|s| crate::mm::elf::load(s, image).map_err(Error::from))
            })
            .map_err(|_| Error::OutOfMemory)??;
            crate::mm::heap::trim_soon();
            Some(new_thread(
                &child,
                loaded.entry,
                loaded.stack_top,
                loaded.ipc_buffer,
                prio,
            )?)
        }
    };
    let ph = cx.insert(KObject::Process(child))?;
    let th = match thread {
        Some(t) => cx.insert(KObject::Thread(t))?,
        None => 0,
    };
    Ok([ph, th, 0, 0, 0, 0])
}

/// A not-yet-started user thread in `p` entering at `entry` with stack `stack_top`.
pub fn new_thread(
    p: &Arc<Process>,
    entry: u64,
    stack_top: u64,
    ipc_buffer: u64,
    prio: u8,
) -> Result<Arc<Thread>, Error> {
    let t = Thread::new_user(p, prio, ipc_buffer)?;
    t.inner.lock().start = Some(UserRegs {
        rip: entry,
        rsp: stack_top.wrapping_sub(8),
        rflags: 0x202,
        ..UserRegs::default()
    });
    p.add_thread(&t)?;
    Ok(t)
}

fn thread_create(cx: &Ctx, a: [u64; 6]) -> Result<Out, Error> {
    let [proc_h, entry, stack_top, ipc_buffer, prio, _] = a;
    let target = cx.process(proc_h, Rights::MANAGE)?;
    if stack_top % 16 != 0 || ipc_buffer % (hsync_abi::IpcBuffer::ALIGN as u64) != 0 {
        return Err(Error::Misaligned);
    }
    check_range(entry, 1)?;
    if !(startup::USER_MIN..startup::USER_END).contains(&stack_top) {
        return Err(Error::BadAddress);
    }
    if ipc_buffer != 0 {
        check_range(ipc_buffer, hsync_abi::IpcBuffer::SIZE as u64)?;
    }
    let prio = priority(prio, target.max_priority.min(cx.p.max_priority))?;
    if target.ending().is_some() {
        return Err(Error::InvalidState);
    }
    cx.p.handles.lock().reserve(1)?;
    let t = new_thread(&target, entry, stack_top, ipc_buffer, prio)?;
    Ok([cx.insert(KObject::Thread(t))?, 0, 0, 0, 0, 0])
}

fn process_wait(cx: &Ctx, a: [u64; 6]) -> Result<Out, Error> {
    let [proc_h, record_ptr, deadline, ..] = a;
    let target = cx.process(proc_h, Rights::WAIT)?;
    if record_ptr % 8 != 0 {
        return Err(Error::Misaligned);
    }
    if record_ptr != 0 {
        check_range(record_ptr, (FaultRecord::WORDS * 8) as u64)?;
    }
    loop {
        if let Some(end) = target.ending() {
            if let (Some(rec), true) = (end.record, record_ptr != 0) {
                let mut bytes = [0u8; FaultRecord::WORDS * 8];
                for (dst, w) in bytes.chunks_exact_mut(8).zip(rec.to_words()) {
                    dst.copy_from_slice(&w.to_le_bytes());
                }
                cx.write_user(record_ptr, &bytes)?;
            }
            let (tag, value) = end.status.to_regs();
            return Ok([tag, value, 0, 0, 0, 0]);
        }
        if deadline == DEADLINE_NOW {
            return Err(Error::WouldBlock);
        }
        if deadline != DEADLINE_NEVER && deadline <= arch::uptime_ns() {
            return Err(Error::TimedOut);
        }
        {
            let mut w = target.waiters.lock();
            w.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
            w.push(cx.me.clone());
        }
        if deadline != DEADLINE_NEVER
            && let Err(e) = sched::add_sleeper(deadline)
        {
            target.waiters.lock().retain(|t| !Arc::ptr_eq(t, cx.me));
            return Err(e);
        }
        match sched::block(Block::ProcessWait(target.clone())) {
            Wake::Err(e) => {
                target.waiters.lock().retain(|t| !Arc::ptr_eq(t, cx.me));
                return Err(e);
            }
            _ => continue,
        }
    }
}
