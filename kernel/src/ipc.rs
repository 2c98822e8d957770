//! Synchronous IPC on endpoints: call, send, receive, reply (see `docs/ipc.md`).
//!
//! A rendezvous moves the register part of a message ([`Msg`]) between the two threads' kernel
//! state; words 4.. and handles are copied between the IPC buffers only when
//! `MsgInfo::uses_buffer()` says so. The fast path — `ipc_call` to a waiting receiver and
//! `ipc_reply_recv` back to a waiting caller — hands the CPU straight to the peer with
//! [`sched::switch_to_blocked`], without a run-queue pass and without touching user memory.

use alloc::sync::Arc;
use alloc::vec::Vec;

use hsync_abi::{Error, Handle, IpcBuffer, MsgInfo, REG_MSG_WORDS, Rights};

use crate::arch::UserRegs;
use crate::object::thread::{Block, Msg, SendMsg, State, Wake};
use crate::object::{Endpoint, KObject, ReplyCap, Thread};
use crate::sched;

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

/// Writes a blocking IPC call's result into the caller's saved registers.
fn write_result(regs: &mut UserRegs, r: Result<Out, Error>) {
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

/// The `ipc_call` fast path: a register-only message through an endpoint handle with `SEND`
/// to a receiver already waiting. One handle lookup, the endpoint lock once, the receiver gets
/// the message and the reply right (the caller's own reference, moved), and the CPU goes
/// straight to it ([`sched::direct_switch`]). Returns `false`, having changed nothing, when
/// any condition does not hold; the slow path then handles the call (and its errors).
pub fn fast_call(regs: &mut UserRegs) -> bool {
    let info = regs.rsi;
    if info & FAST_INFO_MASK > REG_MSG_WORDS as u64 {
        return false;
    }
    sched::with_current(|me| {
        let Some(p) = me.process.as_ref() else {
            return false;
        };
        let (rx, badge) = {
            let table = p.handles.lock();
            let Ok(e) = table.entry(Handle::from_raw(regs.rdi)) else {
                return false;
            };
            let KObject::Endpoint(ep) = e.object() else {
                return false;
            };
            if !e.rights().allows(Rights::SEND) {
                return false;
            }
            let mut q = ep.queues.lock();
            if q.recv_handles == 0 || q.receivers.is_empty() {
                return false;
            }
            // A killed thread takes the slow path, which ends it.
            let mut mi = me.inner.lock();
            if mi.killed {
                return false;
            }
            let Some(rx) = q.receivers.pop_front() else {
                return false;
            };
            mi.state = State::Blocked(Block::Reply);
            mi.wake = Wake::None;
            (rx, e.badge())
        };
        let msg = Msg {
            badge,
            info,
            w: [regs.rdx, regs.r10, regs.r8, regs.r9],
        };
        let w = sched::direct_switch(rx, |rx, me| {
            let mut ri = rx.inner.lock();
            let old_state = core::mem::replace(&mut ri.state, State::Running);
            ri.wake = Wake::Msg(msg);
            let old_pending = ri.pending.replace(ReplyCap::new(me));
            (old_state, old_pending)
        });
        write_result(regs, call_result(w));
        true
    })
}

/// The `ipc_reply_recv` fast path: the pending caller is still waiting for the reply, the
/// message is register-only, and no sender is queued on the endpoint (a handle with `RECV`).
/// The reply goes into the caller's state, this thread joins the endpoint's receivers, and the
/// CPU goes straight to the caller. Returns `false`, having changed nothing, otherwise.
pub fn fast_reply_recv(regs: &mut UserRegs) -> bool {
    let info = regs.rsi;
    if info & FAST_INFO_MASK > REG_MSG_WORDS as u64 {
        return false;
    }
    sched::with_current(|me| {
        let Some(p) = me.process.as_ref() else {
            return false;
        };
        let ep = {
            let table = p.handles.lock();
            let Ok(e) = table.entry(Handle::from_raw(regs.rdi)) else {
                return false;
            };
            let KObject::Endpoint(ep) = e.object() else {
                return false;
            };
            if !e.rights().allows(Rights::RECV) {
                return false;
            }
            ep.clone()
        };
        {
            let mut q = ep.queues.lock();
            if !q.senders.is_empty() || q.receivers.try_reserve(1).is_err() {
                return false;
            }
        }
        let cap = {
            let mut mi = me.inner.lock();
            if mi.killed {
                return false;
            }
            let Some(cap) = mi.pending.take() else {
                return false;
            };
            mi.wake = Wake::None;
            cap
        };
        let msg = Msg {
            badge: 0,
            info,
            w: [regs.rdx, regs.r10, regs.r8, regs.r9],
        };
        let waiting = cap.caller().is_some_and(|c| {
            let mut ci = c.inner.lock();
            if !matches!(ci.state, State::Blocked(Block::Reply)) {
                return false;
            }
            ci.state = State::Running;
            ci.wake = Wake::Msg(msg);
            true
        });
        if !waiting {
            // A caller killed meanwhile: the slow path skips it and receives.
            me.inner.lock().pending = Some(cap);
            return false;
        }
        let Some(caller) = cap.into_caller() else {
            return false;
        };
        let w = sched::direct_switch(caller, |_, me_arc| {
            ep.queues.lock().receivers.push_back(me_arc);
            core::mem::replace(&mut me.inner.lock().state, State::Blocked(Block::Recv(ep)))
        });
        write_result(regs, recv_result(w));
        true
    })
}
