//! Synchronous IPC on endpoints: call, send, receive, reply (see `docs/ipc.md`).
//!
//! A rendezvous moves the register part of a message ([`Msg`]) between the two threads' kernel
//! state; words 4.. and handles are copied between the IPC buffers only when
//! `MsgInfo::uses_buffer()` says so. The fast path — `ipc_call` to a waiting receiver and
//! `ipc_reply_recv` back to a waiting caller — hands the CPU straight to the peer with
//! [`sched::fast_handoff`], without a run-queue pass and without touching user memory; a
//! thread it parks leaves its kernel stack empty but for its syscall frame, and whoever hands
//! it the result writes it there and leaves the kernel through that frame.

use alloc::sync::Arc;
use alloc::vec::Vec;

use hsync_abi::{Error, Handle, IpcBuffer, MsgInfo, REG_MSG_WORDS, Rights};
use hsync_kcore::cap::HandleTable;

use crate::arch::{self, SyscallExit, UserRegs};
use crate::object::thread::{Block, Msg, Resume, SendMsg, State, ThreadInner, Wake};
use crate::object::{Endpoint, KObject, Process, ReplyCap, Thread};
use crate::sched;
use crate::syscall::write_result;

/// Result registers `rdi, rsi, rdx, r10, r8, r9`.
pub type Out = [u64; 6];

/// Which side of a transfer made it fail.
enum Side {
    Sender(Error),
    Receiver(Error),
}

fn out_of(m: &Msg) -> Out {
    [m.badge, m.info, m.w[0], m.w[1], m.w[2], m.w[3]]
}

/// Copies words `4..info.words()` and `info.handles()` handles from `from`'s IPC buffer to
/// `to`'s, granting the handles into `to`'s table (all or nothing).
fn copy_extra(from: &Thread, to: &Thread, info: MsgInfo) -> Result<(), Side> {
    let (Some(fp), Some(tp)) = (from.process.as_ref(), to.process.as_ref()) else {
        return Err(Side::Sender(Error::InvalidState));
    };
    if from.ipc_buffer == 0 {
        return Err(Side::Sender(Error::BadAddress));
    }
    if to.ipc_buffer == 0 {
        return Err(Side::Receiver(Error::BadAddress));
    }
    let words = info.words().saturating_sub(REG_MSG_WORDS);
    if words > 0 {
        let mut buf = [0u8; 8 * (hsync_abi::MAX_MSG_WORDS - REG_MSG_WORDS)];
        let bytes = buf
            .get_mut(..words * 8)
            .ok_or(Side::Sender(Error::MessageTooLong))?;
        let off = (REG_MSG_WORDS * 8) as u64;
        fp.with_aspace(|a| a.copy_from_user(from.ipc_buffer + off, bytes))
            .map_err(Side::Sender)?;
        tp.with_aspace(|a| a.copy_to_user(to.ipc_buffer + off, bytes))
            .map_err(Side::Receiver)?;
    }
    let n = info.handles();
    if n == 0 {
        return Ok(());
    }
    let hoff = IpcBuffer::HANDLES_OFFSET as u64;
    let mut raw = [0u8; 8 * hsync_abi::MAX_MSG_HANDLES];
    let raw = raw
        .get_mut(..n * 8)
        .ok_or(Side::Sender(Error::MessageTooLong))?;
    fp.with_aspace(|a| a.copy_from_user(from.ipc_buffer + hoff, raw))
        .map_err(Side::Sender)?;
    // Phase 1: resolve in the sender's table (each needs TRANSFER).
    let mut objs: Vec<(KObject, hsync_abi::Rights, u64)> = Vec::new();
    objs.try_reserve(n)
        .map_err(|_| Side::Sender(Error::OutOfMemory))?;
    {
        let table = fp.handles.lock();
        for c in raw.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            let h = Handle::from_raw(u64::from_le_bytes(b));
            let e = table.entry(h).map_err(Side::Sender)?;
            if !e.rights().allows(hsync_abi::Rights::TRANSFER) {
                return Err(Side::Sender(Error::MissingRights));
            }
            objs.push((e.object().clone(), e.rights(), e.badge()));
        }
    }
    // Phase 2: insert into the receiver's table.
    let mut out = [0u8; 8 * hsync_abi::MAX_MSG_HANDLES];
    let mut inserted: Vec<Handle> = Vec::new();
    inserted
        .try_reserve(n)
        .map_err(|_| Side::Sender(Error::OutOfMemory))?;
    {
        let mut table = tp.handles.lock();
        table.reserve(n).map_err(Side::Sender)?;
        for (i, (obj, rights, badge)) in objs.drain(..).enumerate() {
            let h = table
                .insert_badged(obj, rights, badge)
                .map_err(Side::Sender)?;
            inserted.push(h);
            if let Some(dst) = out.get_mut(i * 8..i * 8 + 8) {
                dst.copy_from_slice(&h.raw().to_le_bytes());
            }
        }
    }
    let written = out
        .get(..n * 8)
        .ok_or(Side::Receiver(Error::BadAddress))
        .and_then(|o| {
            tp.with_aspace(|a| a.copy_to_user(to.ipc_buffer + hoff, o))
                .map_err(Side::Receiver)
        });
    if let Err(e) = written {
        let closed: Vec<KObject> = {
            let mut table = tp.handles.lock();
            inserted
                .iter()
                .filter_map(|h| table.close(*h).ok())
                .collect()
        };
        drop(closed);
        return Err(e);
    }
    Ok(())
}

fn call_result(w: Wake) -> Result<Out, Error> {
    match w {
        Wake::Msg(m) => Ok([0, m.info, m.w[0], m.w[1], m.w[2], m.w[3]]),
        Wake::Err(e) => Err(e),
        _ => Err(Error::PeerDied),
    }
}

fn recv_result(w: Wake) -> Result<Out, Error> {
    match w {
        Wake::Msg(m) => Ok(out_of(&m)),
        Wake::Err(e) => Err(e),
        _ => Err(Error::PeerDied),
    }
}

/// `ipc_call` (`call`), `ipc_send` / `ipc_try_send` (`!call`, `blocking`).
pub fn send(
    me: &Arc<Thread>,
    ep: &Arc<Endpoint>,
    msg: Msg,
    info: MsgInfo,
    call: bool,
    blocking: bool,
) -> Result<Out, Error> {
    loop {
        let rx = {
            let mut q = ep.queues.lock();
            if q.recv_handles == 0 {
                return Err(Error::PeerDied);
            }
            q.receivers.pop_front()
        };
        let Some(rx) = rx else { break };
        if info.uses_buffer() {
            match copy_extra(me, &rx, info) {
                Ok(()) => {}
                Err(Side::Sender(e)) => {
                    ep.queues.lock().receivers.push_front(rx);
                    return Err(e);
                }
                Err(Side::Receiver(e)) => {
                    rx.inner.lock().wake = Wake::Err(e);
                    sched::make_ready(rx);
                    continue;
                }
            }
        }
        let old = {
            let mut ri = rx.inner.lock();
            ri.wake = Wake::Msg(msg);
            if call {
                ri.pending.replace(ReplyCap::new(me.clone()))
            } else {
                None
            }
        };
        drop(old);
        if call {
            return call_result(sched::switch_to_blocked(Block::Reply, rx));
        }
        sched::make_ready(rx);
        return Ok([0; 6]);
    }
    if !blocking {
        return Err(Error::WouldBlock);
    }
    {
        let mut q = ep.queues.lock();
        if q.recv_handles == 0 {
            return Err(Error::PeerDied);
        }
        q.senders.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
        me.inner.lock().send = Some(SendMsg { msg, call });
        q.senders.push_back(me.clone());
    }
    let w = sched::block(Block::Send(ep.clone()));
    me.inner.lock().send = None;
    if call {
        call_result(w)
    } else {
        match w {
            Wake::Done => Ok([0; 6]),
            Wake::Err(e) => Err(e),
            _ => Err(Error::PeerDied),
        }
    }
}

/// `ipc_recv` / `ipc_try_recv`.
pub fn recv(me: &Arc<Thread>, ep: &Arc<Endpoint>, blocking: bool) -> Result<Out, Error> {
    loop {
        let tx = ep.queues.lock().senders.pop_front();
        let Some(tx) = tx else { break };
        let sm = tx.inner.lock().send.take();
        let Some(sm) = sm else { continue };
        let info = MsgInfo::from_raw(sm.msg.info).map_err(|_| Error::InvalidArgument)?;
        if info.uses_buffer() {
            match copy_extra(&tx, me, info) {
                Ok(()) => {}
                Err(Side::Sender(e)) => {
                    sched::wake_if(&tx, |b| matches!(b, Block::Send(_)), Wake::Err(e));
                    continue;
                }
                Err(Side::Receiver(e)) => {
                    tx.inner.lock().send = Some(sm);
                    ep.queues.lock().senders.push_front(tx);
                    return Err(e);
                }
            }
        }
        if sm.call {
            tx.inner.lock().state = State::Blocked(Block::Reply);
            let old = me.inner.lock().pending.replace(ReplyCap::new(tx));
            drop(old);
        } else {
            sched::wake_if(&tx, |b| matches!(b, Block::Send(_)), Wake::Done);
        }
        return Ok(out_of(&sm.msg));
    }
    if !blocking {
        return Err(Error::WouldBlock);
    }
    {
        let mut q = ep.queues.lock();
        q.receivers.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
        q.receivers.push_back(me.clone());
    }
    recv_result(sched::block(Block::Recv(ep.clone())))
}

/// Answers through `cap`. `Ok(Some(caller))` hands back a caller that still has to be woken
/// (with its wake result set) so that `reply_recv` can switch to it directly.
fn deliver_reply(
    me: &Thread,
    cap: ReplyCap,
    info: MsgInfo,
    msg: Msg,
) -> Result<Arc<Thread>, Error> {
    let caller = cap.take().ok_or(Error::PeerDied)?;
    if info.uses_buffer() {
        match copy_extra(me, &caller, info) {
            Ok(()) => {}
            Err(Side::Sender(e)) => {
                sched::wake_if(
                    &caller,
                    |b| matches!(b, Block::Reply),
                    Wake::Err(Error::PeerDied),
                );
                return Err(e);
            }
            Err(Side::Receiver(e)) => {
                sched::wake_if(&caller, |b| matches!(b, Block::Reply), Wake::Err(e));
                return Err(Error::PeerDied);
            }
        }
    }
    caller.inner.lock().wake = Wake::Msg(msg);
    Ok(caller)
}

/// `ipc_reply` through a reply right.
pub fn reply(me: &Thread, cap: ReplyCap, info: MsgInfo, msg: Msg) -> Result<Out, Error> {
    let caller = deliver_reply(me, cap, info, msg)?;
    sched::make_ready(caller);
    Ok([0; 6])
}

/// `ipc_reply_recv`: answer the pending caller (if any), then receive on `ep`.
pub fn reply_recv(
    me: &Arc<Thread>,
    ep: &Arc<Endpoint>,
    info: MsgInfo,
    msg: Msg,
) -> Result<Out, Error> {
    let cap = me.inner.lock().pending.take();
    if let Some(cap) = cap {
        match deliver_reply(me, cap, info, msg) {
            Ok(caller) => {
                let direct = {
                    let mut q = ep.queues.lock();
                    if q.senders.is_empty() && q.receivers.try_reserve(1).is_ok() {
                        q.receivers.push_back(me.clone());
                        true
                    } else {
                        false
                    }
                };
                if direct {
                    return recv_result(sched::switch_to_blocked(Block::Recv(ep.clone()), caller));
                }
                sched::make_ready(caller);
            }
            // A caller that died meanwhile is skipped silently.
            Err(Error::PeerDied) => {}
            Err(e) => return Err(e),
        }
    }
    recv(me, ep, true)
}

/// `MsgInfo` bits 0..16 (words, handles, reserved) of a message the fast path takes: at most
/// [`REG_MSG_WORDS`] words, no handles, reserved bits clear — i.e. the low 16 bits ≤ 4.
const FAST_INFO_MASK: u64 = 0xffff;

/// Whether the calling thread may be parked at this system call: a register-only message,
/// and a frame `sysretq` can leave through (see [`arch::make_sysret_ready`]).
#[inline(always)]
fn parkable(regs: &mut UserRegs) -> bool {
    regs.rsi & FAST_INFO_MASK <= REG_MSG_WORDS as u64 && arch::make_sysret_ready(regs)
}

/// Hands `msg` to `peer` (its inner state locked in `pi`), which is being taken out of its wait
/// structure: straight into its parked syscall frame when the fast path parked it (results as
/// `result` makes them), else as its wake result. Returns whether the frame was written.
#[inline(always)]
fn deliver(
    peer: &Thread,
    pi: &mut ThreadInner,
    msg: Msg,
    result: fn(Wake) -> Result<Out, Error>,
) -> bool {
    match core::mem::take(&mut pi.resume) {
        Resume::Kernel => {
            pi.wake = Wake::Msg(msg);
            false
        }
        _ => {
            // SAFETY: a thread with `Resume::Call`/`Resume::Recv` was parked by the fast path
            // at its system call: its kernel stack holds nothing but that syscall frame, which
            // no one reads or writes while it waits, and we hold its lock while taking it out
            // of its wait structure, so this is the only access.
            let frame = unsafe { &mut *peer.parked_frame() };
            write_result(frame, result(Wake::Msg(msg)));
            true
        }
    }
}

/// Blocks the running thread (`mi` is its locked state, which is `Running`) on `b`.
#[inline(always)]
fn leave_running(mi: &mut ThreadInner, b: Block) {
    let old = core::mem::replace(&mut mi.state, State::Blocked(b));
    debug_assert!(matches!(old, State::Running));
    // `Running` owns nothing: skip the generic drop.
    core::mem::forget(old);
    mi.wake = Wake::None;
}

/// Where a thread parked by the fast path starts again when the general scheduler (not a fast
/// path) resumes it — woken by a slow-path message, a kill, a dead peer: finishes the switch,
/// turns its wake result into its syscall's result registers and leaves through its frame.
pub extern "C" fn resume_parked(frame: *mut UserRegs, kind: u64) -> ! {
    sched::finish_switch();
    let w = sched::take_wake();
    let r = if kind == Resume::Call as u64 {
        call_result(w)
    } else {
        recv_result(w)
    };
    // SAFETY: `frame` is this thread's own syscall frame at the top of its kernel stack
    // (`sched::switch` passes `parked_frame`), and this function runs right below it.
    write_result(unsafe { &mut *frame }, r);
    sched::syscall_exit();
    // SAFETY: the running thread's own frame; nothing of this function is live after the jump.
    unsafe { arch::exit_to_user(frame) }
}

/// The running thread's process, borrowed for the rest of a fast path while the fast path
/// moves the thread's own reference (`me`) into a wait structure.
///
/// # Safety
/// Only inside the closure of [`sched::fast_handoff`] (or what it calls), whose `me` this is,
/// and only for the duration of that closure. There `me` is the running thread: its reference, wherever the
/// closure moves it (a reply right, an endpoint queue), can only be taken out by kernel code,
/// and this CPU holds the big kernel lock inside the closure (no other CPU runs kernel code)
/// with interrupts off. So the thread — and the `process` `Arc`
/// it holds in an immutable field — outlives the closure.
#[inline(always)]
unsafe fn running_process<'a>(me: &Thread) -> Option<&'a Process> {
    let p: *const Process = me.process.as_deref()?;
    // SAFETY: per the contract, the process outlives the borrow.
    Some(unsafe { &*p })
}

/// The endpoint `handle` names in `table` and the handle's badge (one lookup: the IPC hot
/// path). Errors: the handle's, `WrongKind`, `MissingRights` without `rights`.
#[inline(always)]
pub fn endpoint_in(
    table: &HandleTable<KObject>,
    handle: Handle,
    rights: Rights,
) -> Result<(&Arc<Endpoint>, u64), Error> {
    let e = table.entry(handle)?;
    let KObject::Endpoint(ep) = e.object() else {
        return Err(Error::WrongKind);
    };
    if !e.rights().allows(rights) {
        return Err(Error::MissingRights);
    }
    Ok((ep, e.badge()))
}

/// The `ipc_call` fast path: a register-only message through an endpoint handle with `SEND` to
/// a receiver already waiting whose priority is at least that of every ready thread. One
/// handle lookup, the endpoint lock once, each thread's lock once; the receiver gets the
/// message (written straight into its parked frame when the fast path parked it) and the reply
/// right (this thread's own reference, moved); this thread is parked at its syscall
/// (`Resume::Call`) and the CPU goes straight to the receiver ([`sched::fast_handoff`]).
/// `None`, with nothing changed, when any condition does not hold: the general path then
/// handles the call (and its errors).
#[inline(always)]
pub fn fast_call(regs: &mut UserRegs) -> Option<SyscallExit> {
    if !parkable(regs) {
        return None;
    }
    let msg_info = regs.rsi;
    let words = [regs.rdx, regs.r10, regs.r8, regs.r9];
    let handle = Handle::from_raw(regs.rdi);
    sched::fast_handoff(
        #[inline(always)]
        |me, ready| call_handoff(me, ready, handle, msg_info, words),
    )
}

/// `fast_call`'s decision, under the CPU lock (see [`sched::fast_handoff`]).
#[inline(always)]
fn call_handoff(
    me: Arc<Thread>,
    ready: Option<u8>,
    handle: Handle,
    msg_info: u64,
    words: [u64; 4],
) -> Result<sched::Handoff<Arc<Endpoint>>, Arc<Thread>> {
    // SAFETY: called from `fast_handoff`'s closure, with its `me`.
    let Some(p) = (unsafe { running_process(&me) }) else {
        return Err(me);
    };
    let table = p.handles.lock();
    let Ok((ep, badge)) = endpoint_in(&table, handle, Rights::SEND) else {
        return Err(me);
    };
    let mut q = ep.queues.lock();
    if q.recv_handles == 0 {
        return Err(me);
    }
    let Some(rx) = q.receivers.pop_front() else {
        return Err(me);
    };
    let mut ri = rx.inner.lock();
    let mut mi = me.inner.lock();
    // The receiver may run now, has no unanswered caller (whose reply right a fast path
    // must not drop) and is not being killed (a killed thread is never left blocked in a
    // queue); this thread is not being killed either.
    if ready.is_some_and(|r| r > rx.priority)
        || rx.home() != arch::cpu_id() as usize
        || ri.pending.is_some()
        || !matches!(ri.state, State::Blocked(Block::Recv(_)))
        || mi.killed
    {
        drop((mi, ri));
        // Back where it was; popping it freed the slot, so this does not allocate.
        q.receivers.push_front(rx);
        return Err(me);
    }
    leave_running(&mut mi, Block::Reply);
    mi.resume = Resume::Call;
    drop(mi);
    let State::Blocked(Block::Recv(old_ep)) = core::mem::replace(&mut ri.state, State::Running)
    else {
        unreachable!("checked under the same lock");
    };
    let msg = Msg {
        badge,
        info: msg_info,
        w: words,
    };
    let via_frame = deliver(&rx, &mut ri, msg, recv_result);
    // Checked empty above: nothing to drop.
    core::mem::forget(ri.pending.replace(ReplyCap::new(me)));
    drop(ri);
    Ok(sched::Handoff {
        next: rx,
        via_frame,
        // Its `Block` held an endpoint reference: dropped after the CPU lock.
        leftover: old_ep,
    })
}

/// The `ipc_reply_recv` fast path: the pending caller is still waiting for the reply with a
/// priority at least that of every ready thread, the message is register-only, and no sender
/// is queued on the endpoint (a handle with `RECV`). The reply goes into the caller (its parked
/// frame, or its wake result), this thread joins the endpoint's receivers parked at its syscall
/// (`Resume::Recv`), and the CPU goes straight to the caller. `None`, with nothing changed,
/// otherwise.
#[inline(always)]
pub fn fast_reply_recv(regs: &mut UserRegs) -> Option<SyscallExit> {
    if !parkable(regs) {
        return None;
    }
    let msg = Msg {
        badge: 0,
        info: regs.rsi,
        w: [regs.rdx, regs.r10, regs.r8, regs.r9],
    };
    let handle = Handle::from_raw(regs.rdi);
    sched::fast_handoff(
        #[inline(always)]
        |me, ready| reply_recv_handoff(me, ready, handle, msg),
    )
}

/// `fast_reply_recv`'s decision, under the CPU lock (see [`sched::fast_handoff`]).
#[inline(always)]
fn reply_recv_handoff(
    me: Arc<Thread>,
    ready: Option<u8>,
    handle: Handle,
    msg: Msg,
) -> Result<sched::Handoff<()>, Arc<Thread>> {
    // SAFETY: called from `fast_handoff`'s closure, with its `me`.
    let Some(p) = (unsafe { running_process(&me) }) else {
        return Err(me);
    };
    let table = p.handles.lock();
    let Ok((ep, _)) = endpoint_in(&table, handle, Rights::RECV) else {
        return Err(me);
    };
    let mut q = ep.queues.lock();
    // No sender to take first, and room for this thread without allocating (the slow
    // path grows the queue).
    if !q.senders.is_empty() || q.receivers.len() == q.receivers.capacity() {
        return Err(me);
    }
    let mut mi = me.inner.lock();
    let Some((caller, via_frame)) = answer_caller(&mut mi, msg, ready) else {
        drop(mi);
        return Err(me);
    };
    leave_running(&mut mi, Block::Recv(ep.clone()));
    mi.resume = Resume::Recv;
    drop(mi);
    q.receivers.push_back(me);
    Ok(sched::Handoff {
        next: caller,
        via_frame,
        leftover: (),
    })
}

/// `fast_reply_recv`'s middle: if the running thread's pending caller (`mi` is its locked
/// state) is not being killed, still waits for the reply and may run now, hands it `msg` and
/// takes it out of the reply right. `None`, with nothing changed, otherwise. The thread itself
/// must not be killed either.
#[inline(always)]
fn answer_caller(mi: &mut ThreadInner, msg: Msg, ready: Option<u8>) -> Option<(Arc<Thread>, bool)> {
    if mi.killed {
        return None;
    }
    let caller = mi.pending.as_ref().and_then(ReplyCap::caller)?;
    let via_frame = {
        let mut ci = caller.inner.lock();
        if !matches!(ci.state, State::Blocked(Block::Reply))
            || ready.is_some_and(|r| r > caller.priority)
            || caller.home() != arch::cpu_id() as usize
        {
            return None;
        }
        // `Blocked(Reply)` owns nothing: no drop to run.
        core::mem::forget(core::mem::replace(&mut ci.state, State::Running));
        deliver(caller, &mut ci, msg, call_result)
    };
    let caller = mi.pending.take().and_then(ReplyCap::into_caller)?;
    Some((caller, via_frame))
}
