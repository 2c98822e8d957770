//! The `template` server's protocol: the one definition both sides are generated from.
//!
//! Clients depend on this crate and call [`TemplateClient`]; the server (`servers/template`)
//! implements [`TemplateServer`] and runs its `serve` loop. Changing an operation here changes
//! both sides at once; a label, once published, keeps its meaning (add new labels instead).
//! The crate holds no code of its own beyond the definition and refuses any: logic belongs in
//! the server.
#![no_std]
#![forbid(unsafe_code)]

pub use libhsync::protocol::{Bytes, Protocol, ProtocolError};

libhsync::wire_enum! {
    /// Why a `template` request failed.
    pub enum TemplateError {
        /// The sum does not fit 64 bits.
        Overflow = 1,
    }
}

libhsync::protocol! {
    /// The `template` protocol: a worked example of every kind of operation.
    pub protocol Template {
        server TemplateServer;
        client TemplateClient;
        error TemplateError;
        /// Returns `x + 1` (wrapping).
        fn ping(x: u64) -> u64 = 1;
        /// Returns `a + b`, or [`TemplateError::Overflow`].
        fn add(a: u64, b: u64) -> u64 = 2;
        /// Returns the caller's badge: how the server tells its clients apart.
        fn whoami() -> u64 = 3;
        /// Returns `data` with its bytes in reverse order (through the IPC buffer).
        fn reverse(data: &[u8]) -> Bytes = 4;
        /// How many requests the server has answered before this one.
        fn stats() -> u64 = 5;
    }
}

libhsync::protocol! {
    /// The protocol of the interrupt-driven skeleton (`servers/template/src/irq.rs`, copied by
    /// `cargo xtask new-server NAME --irq`).
    pub protocol TemplateDevice {
        server TemplateDeviceServer;
        client TemplateDeviceClient;
        error TemplateError;
        /// How many interrupts the device has raised so far.
        fn interrupts() -> u64 = 1;
    }
}

/// The caller's error type for every operation.
pub type Error = ProtocolError<TemplateError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_stable() {
        // Published labels never change meaning; this test makes renumbering a visible decision.
        assert_eq!(Template::NAME, "Template");
        assert_eq!(
            Template::OPS,
            &[
                ("ping", 1),
                ("add", 2),
                ("whoami", 3),
                ("reverse", 4),
                ("stats", 5)
            ]
        );
        assert_eq!(TemplateDevice::OPS, &[("interrupts", 1)]);
    }
}
