//! The `phase` server's protocol: the HSYNC phase engine (`servers/phase-core`) over IPC, and
//! the switches for the HSYNC-Wave visualizer and serial telemetry.
//!
//! The engine is deterministic arithmetic; what the server adds is one shared, advancing phase
//! and counters. `transform`/`inverse` take their starting phase from the caller (so a client
//! can invert what it transformed); `step` advances the server's phase. The crate holds the
//! definition only.
#![no_std]
#![forbid(unsafe_code)]

pub use libhsync::protocol::{Bytes, Protocol, ProtocolError};

libhsync::wire_enum! {
    /// Why a `phase` request failed.
    pub enum PhaseError {
        /// The data is not a whole number of 64-bit words, or longer than [`MAX_WORDS`].
        NotWords = 1,
        /// The visualizer or telemetry has no display/serial to write to.
        NoOutput = 2,
    }
}

/// The most words one `transform`/`inverse` request carries (the phase and the length take two
/// of a message's 64 words).
pub const MAX_WORDS: usize = 62;

/// `status` flag: the visualizer is drawing.
pub const FLAG_WAVE: u64 = 1 << 0;
/// `status` flag: telemetry lines are streaming on serial.
pub const FLAG_TELEMETRY: u64 = 1 << 1;

libhsync::protocol! {
    /// The `phase` protocol.
    pub protocol Phase {
        server PhaseServer;
        client PhaseClient;
        error PhaseError;
        /// Advances the server's phase by `n` steps; returns the new raw phase.
        fn step(n: u64) -> u64 = 1;
        /// `(phase, steps, words, flags)`: the raw phase, steps taken since start, words
        /// transformed either way, [`FLAG_WAVE`] | [`FLAG_TELEMETRY`].
        fn status() -> (u64, u64, u64, u64) = 2;
        /// `data` (little-endian words) transformed, starting at phase `start`, one step per word.
        fn transform(start: u64, data: &[u8]) -> Bytes = 3;
        /// The exact inverse of `transform` with the same `start`.
        fn inverse(start: u64, data: &[u8]) -> Bytes = 4;
        /// Visualizer on or off; returns whether it was on.
        fn wave(on: bool) -> bool = 5;
        /// Telemetry on or off; returns whether it was on.
        fn telemetry(on: bool) -> bool = 6;
        /// Returns `x` unchanged: the shell's `bench` round trip (no engine work).
        fn echo(x: u64) -> u64 = 7;
        /// Faults the server on purpose (a deliberate page fault), so supervision can be shown.
        /// Never replies.
        fn crash() = 8;
    }
}

/// The caller's error type for every operation.
pub type Error = ProtocolError<PhaseError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_stable() {
        assert_eq!(Phase::NAME, "Phase");
        assert_eq!(
            Phase::OPS,
            &[
                ("step", 1),
                ("status", 2),
                ("transform", 3),
                ("inverse", 4),
                ("wave", 5),
                ("telemetry", 6),
                ("echo", 7),
                ("crash", 8),
            ]
        );
    }

    #[test]
    fn a_full_request_fits_one_message() {
        // start + length word + MAX_WORDS data words = one message of 64 words; the reply's
        // bytes fit `Bytes`.
        assert_eq!(2 + MAX_WORDS, hsync_abi_words());
        const { assert!(MAX_WORDS * 8 <= Bytes::CAPACITY) };
    }

    fn hsync_abi_words() -> usize {
        Bytes::CAPACITY / 8 + 1
    }
}
