//! The `serial` server's protocol (COM1): write bytes, read received bytes, be told when bytes
//! arrive, and the system log sink.
//!
//! `read` never blocks (a server that blocked one client would block them all): a client that
//! wants to wait `subscribe`s a notification of its own, waits on it, then reads until `read`
//! returns nothing. The log sink (`log_chunk`) is what `libhsync::logsink` calls; its label and
//! chunk encoding are defined there and checked against this definition by the tests below.
#![no_std]
#![forbid(unsafe_code)]

pub use libhsync::protocol::{Bytes, Protocol, ProtocolError};

libhsync::wire_enum! {
    /// Why a `serial` request failed.
    pub enum SerialError {
        /// Every subscriber slot is taken.
        TooManySubscribers = 1,
        /// A `log_chunk` whose `info` word or padding is malformed.
        BadChunk = 2,
        /// Only the server's own interrupt thread may send this.
        NotPermitted = 3,
    }
}

/// The bit a subscriber's notification gets when received bytes are waiting.
pub const RX_READY: u64 = 1;

libhsync::protocol! {
    /// The `serial` protocol.
    pub protocol Serial {
        server SerialServer;
        client SerialClient;
        error SerialError;
        /// Queues `data` for transmission; returns how many bytes were queued (fewer than given
        /// only when the transmit buffer is full).
        fn write(data: &[u8]) -> u64 = 1;
        /// Up to `max` received bytes (at most `Bytes::CAPACITY`), oldest first; empty when
        /// none are waiting. Never blocks.
        fn read(max: u64) -> Bytes = 2;
        /// Signals [`RX_READY`] on `notification` whenever received bytes are waiting.
        fn subscribe(notification: libhsync::Notification) = 3;
        /// One chunk of a log line (`libhsync::logsink`): `info = len | CHUNK_END`, bytes in
        /// `a, b, c`. Register-only, so logging never uses the caller's IPC buffer.
        fn log_chunk(info: u64, a: u64, b: u64, c: u64) = 4;
        /// Counters: bytes received, bytes transmitted, received bytes dropped (buffer full or
        /// UART overrun).
        fn stats() -> (u64, u64, u64) = 5;
        /// Faults the server on purpose (a deliberate page fault at address 0): a test hook
        /// for supervision (root logs the fault and restarts the server). Never replies.
        fn crash() = 6;
    }
}

/// The caller's error type for every operation.
pub type Error = ProtocolError<SerialError>;

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use libhsync::logsink;
    use libhsync::protocol::{Message, status};

    use super::*;

    #[test]
    fn labels_are_stable() {
        assert_eq!(Serial::NAME, "Serial");
        assert_eq!(
            Serial::OPS,
            &[
                ("write", 1),
                ("read", 2),
                ("subscribe", 3),
                ("log_chunk", 4),
                ("stats", 5),
                ("crash", 6),
            ]
        );
    }

    /// Records `log_chunk` calls.
    #[derive(Default)]
    struct Sink {
        lines: Vec<Vec<u8>>,
        partial: Vec<u8>,
    }

    impl SerialServer for Sink {
        fn write(&mut self, _: u64, data: &[u8]) -> Result<u64, SerialError> {
            Ok(data.len() as u64)
        }
        fn read(&mut self, _: u64, _: u64) -> Result<Bytes, SerialError> {
            Ok(Bytes::new())
        }
        fn subscribe(&mut self, _: u64, _: libhsync::Notification) -> Result<(), SerialError> {
            Err(SerialError::TooManySubscribers)
        }
        fn log_chunk(
            &mut self,
            _: u64,
            info: u64,
            a: u64,
            b: u64,
            c: u64,
        ) -> Result<(), SerialError> {
            let (buf, len, end) =
                logsink::unpack_chunk(info, a, b, c).ok_or(SerialError::BadChunk)?;
            self.partial.extend_from_slice(&buf[..len]);
            if end {
                self.lines.push(core::mem::take(&mut self.partial));
            }
            Ok(())
        }
        fn stats(&mut self, _: u64) -> Result<(u64, u64, u64), SerialError> {
            Ok((0, 0, 0))
        }
        fn crash(&mut self, _: u64) -> Result<(), SerialError> {
            Ok(())
        }
    }

    /// The requests `libhsync::logsink` builds are `log_chunk` calls of this protocol: same
    /// label, same words, accepted by the generated dispatch.
    #[test]
    fn logsink_requests_are_log_chunk_calls() {
        assert_eq!(
            Serial::OPS
                .iter()
                .find(|(n, _)| *n == "log_chunk")
                .map(|o| o.1),
            Some(logsink::LOG_CHUNK_LABEL)
        );
        let line = b"INFO  ps2: key 'h' pressed, a line longer than one chunk";
        let mut sink = Sink::default();
        assert!(logsink::for_each_chunk(line, |words| {
            let mut req = Message::new(logsink::LOG_CHUNK_LABEL);
            for w in words {
                req.push_word(w).unwrap();
            }
            let reply = sink.dispatch(7, &mut req);
            reply.label() == status::OK
        }));
        assert_eq!(sink.lines, [line.to_vec()]);
    }

    #[test]
    fn malformed_log_chunks_get_an_error_reply() {
        let mut sink = Sink::default();
        let mut req = Message::new(logsink::LOG_CHUNK_LABEL);
        for w in [99u64, 0, 0, 0] {
            req.push_word(w).unwrap();
        }
        let reply = sink.dispatch(1, &mut req);
        assert_eq!(reply.label(), status::APP_ERROR);
        assert!(sink.lines.is_empty());
    }
}
