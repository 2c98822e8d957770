//! Where `log` records go: the serial server when this process has been given its endpoint,
//! else the kernel's debug log.
//!
//! Opt-in: a program that holds a `SEND` handle to the serial server calls
//! [`set_endpoint`] once (root's servers do it with their `serial` import); from then on every
//! record of the `log` backend ([`crate::rt`]) becomes one line on the serial server, which
//! writes it to COM1 whole (lines of different processes never interleave). When the server is
//! gone or refuses a chunk, the record falls back to `debug_log` and the sink is dropped, so a
//! dead serial server never silences a process.
//!
//! Wire: a line travels as *register-only* calls of the serial protocol's `log_chunk` operation
//! (label [`LOG_CHUNK_LABEL`], words `info, a, b, c`): up to [`CHUNK_BYTES`] bytes per call, little
//! endian in `a, b, c`, `info = len | CHUNK_END` on the line's last chunk. Register-only means
//! the backend never touches the calling thread's IPC buffer, so logging is safe from any thread
//! and between any two IPC operations. One thread of a process sends a line at a time; a record
//! logged while another thread of the same process is mid-line goes to the debug log instead
//! (whole, never interleaved, never waiting). `servers/serial-api` defines the same operation and its
//! tests check both definitions agree.

use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::handle::Endpoint;
use crate::ipc::Msg;
use crate::protocol::status;

/// The serial protocol's `log_chunk` label.
pub const LOG_CHUNK_LABEL: u64 = 4;
/// Bytes one chunk carries (three register words).
pub const CHUNK_BYTES: usize = 24;
/// `info` flag: this chunk ends the line.
pub const CHUNK_END: u64 = 1 << 8;

/// The raw serial endpoint handle, 0 when none.
static SINK: AtomicU64 = AtomicU64::new(0);

/// Sends every later `log` record of this process to the serial server behind `ep` (a `SEND`
/// handle). Replaces (and closes) an earlier one.
pub fn set_endpoint(ep: Endpoint) {
    let old = SINK.swap(ep.into_raw().raw(), Ordering::AcqRel);
    if old != 0 {
        drop(Endpoint::from_raw(hsync_abi::Handle::from_raw(old)));
    }
}

/// Stops using the serial server; records go to the debug log again. Returns the endpoint.
pub fn take_endpoint() -> Option<Endpoint> {
    let old = SINK.swap(0, Ordering::AcqRel);
    (old != 0).then(|| Endpoint::from_raw(hsync_abi::Handle::from_raw(old)))
}

/// Whether records currently go to the serial server.
pub fn active() -> bool {
    SINK.load(Ordering::Acquire) != 0
}

/// Splits `line` into `log_chunk` argument words, calling `f` for each (at least once: an
/// empty line is one empty final chunk). Stops early when `f` returns `false`; returns whether
/// every chunk was accepted.
pub fn for_each_chunk(line: &[u8], mut f: impl FnMut([u64; 4]) -> bool) -> bool {
    let mut chunks = line.chunks(CHUNK_BYTES).peekable();
    if chunks.peek().is_none() {
        return f([CHUNK_END, 0, 0, 0]);
    }
    while let Some(chunk) = chunks.next() {
        let mut words = [0u64; 4];
        words[0] = chunk.len() as u64
            | if chunks.peek().is_none() {
                CHUNK_END
            } else {
                0
            };
        for (i, b) in chunk.iter().enumerate() {
            words[1 + i / 8] |= u64::from(*b) << (8 * (i % 8));
        }
        if !f(words) {
            return false;
        }
    }
    true
}

/// Decodes one chunk: its bytes (`buf[..len]`) and whether it ends the line; `None` when
/// `info` is malformed (length over [`CHUNK_BYTES`], unknown flag bits, bytes set past `len`).
pub fn unpack_chunk(info: u64, a: u64, b: u64, c: u64) -> Option<([u8; CHUNK_BYTES], usize, bool)> {
    let len = (info & 0xff) as usize;
    if len > CHUNK_BYTES || info & !(0xff | CHUNK_END) != 0 {
        return None;
    }
    let mut buf = [0u8; CHUNK_BYTES];
    for (i, w) in [a, b, c].into_iter().enumerate() {
        buf[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    if buf[len..].iter().any(|&x| x != 0) {
        return None;
    }
    Some((buf, len, info & CHUNK_END != 0))
}

/// Held while a thread of this process sends a line: the server assembles chunks per badge,
/// so two threads' chunks must not interleave.
static SENDING: AtomicBool = AtomicBool::new(false);

/// Releases [`SENDING`] when dropped.
struct Sending;

impl Drop for Sending {
    fn drop(&mut self) {
        SENDING.store(false, Ordering::Release);
    }
}

/// Writes `line` through the sink; `false` when there is none, another thread of this process
/// is sending a line right now (never wait: the waiter could outrank the sender), or it
/// failed — the caller then uses the debug log, which writes whole lines. A failure drops the
/// sink.
pub(crate) fn write_line(line: &[u8]) -> bool {
    let raw = SINK.load(Ordering::Acquire);
    if raw == 0 {
        return false;
    }
    if SENDING
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    let _sending = Sending;
    // Borrowed, not owned: the static keeps the handle.
    let ep = ManuallyDrop::new(Endpoint::from_raw(hsync_abi::Handle::from_raw(raw)));
    let ok = for_each_chunk(line, |words| {
        let Ok(msg) = Msg::new(LOG_CHUNK_LABEL, &words) else {
            return false;
        };
        matches!(ep.call(msg), Ok(reply) if reply.label() == status::OK)
    });
    if !ok
        && SINK
            .compare_exchange(raw, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        drop(ManuallyDrop::into_inner(ep));
    }
    ok
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn roundtrip(line: &[u8]) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let mut calls = 0;
        let mut ended = false;
        assert!(for_each_chunk(line, |w| {
            assert!(!ended, "a chunk after the final one");
            let (buf, len, end) = unpack_chunk(w[0], w[1], w[2], w[3]).expect("valid chunk");
            out.extend_from_slice(&buf[..len]);
            ended = end;
            calls += 1;
            true
        }));
        assert!(ended, "the last chunk carries CHUNK_END");
        (out, calls)
    }

    #[test]
    fn lines_round_trip_in_chunks() {
        for len in [0usize, 1, 7, 8, 23, 24, 25, 48, 49, 200] {
            let line: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            let (out, calls) = roundtrip(&line);
            assert_eq!(out, line, "len {len}");
            assert_eq!(calls, len.div_ceil(CHUNK_BYTES).max(1), "len {len}");
        }
    }

    #[test]
    fn malformed_chunks_are_refused() {
        assert!(unpack_chunk(25, 0, 0, 0).is_none(), "length over 24");
        assert!(unpack_chunk(1 << 9, 0, 0, 0).is_none(), "unknown flag");
        assert!(unpack_chunk(1, 0x0100, 0, 0).is_none(), "byte past len");
        assert!(unpack_chunk(0, 0, 0, 1).is_none(), "byte past len");
        assert!(unpack_chunk(CHUNK_END | 24, u64::MAX, u64::MAX, u64::MAX).is_some());
    }

    #[test]
    fn a_refused_chunk_stops_the_line() {
        let mut calls = 0;
        assert!(!for_each_chunk(&[b'x'; 100], |_| {
            calls += 1;
            false
        }));
        assert_eq!(calls, 1);
    }
}
