//! The `ps2` server's protocol: keyboard events for subscribers.
//!
//! Every client has its own queue of [`KeyEvent`]s (by badge; created by its first request), so
//! two clients never steal each other's keys. `next_key` never blocks: a client that wants to
//! wait `subscribe`s a notification, waits for [`KEY_READY`], then takes keys until `next_key`
//! says [`Ps2Error::Empty`]. A [`KeyEvent`] travels as one word (see its `Word` encoding).
#![no_std]
#![forbid(unsafe_code)]

pub use libhsync::protocol::{Bytes, Protocol, ProtocolError, Word};

libhsync::wire_enum! {
    /// Why a `ps2` request failed.
    pub enum Ps2Error {
        /// No key event is waiting (not a failure: the answer to a poll).
        Empty = 1,
        /// Every client queue is taken.
        TooManyClients = 2,
    }
}

libhsync::wire_enum! {
    /// Keys that do not type a character (or that a client may want by name).
    pub enum Special {
        /// The key is a character key (see [`KeyEvent::ch`]) or one not listed here.
        None = 0,
        /// Enter / Return.
        Enter = 1,
        /// Backspace.
        Backspace = 2,
        /// Tab.
        Tab = 3,
        /// Escape.
        Escape = 4,
        /// Cursor up.
        Up = 5,
        /// Cursor down.
        Down = 6,
        /// Cursor left.
        Left = 7,
        /// Cursor right.
        Right = 8,
        /// Home.
        Home = 9,
        /// End.
        End = 10,
        /// Page up.
        PageUp = 11,
        /// Page down.
        PageDown = 12,
        /// Insert.
        Insert = 13,
        /// Delete.
        Delete = 14,
        /// F1.
        F1 = 15,
        /// F2.
        F2 = 16,
        /// F3.
        F3 = 17,
        /// F4.
        F4 = 18,
        /// F5.
        F5 = 19,
        /// F6.
        F6 = 20,
        /// F7.
        F7 = 21,
        /// F8.
        F8 = 22,
        /// F9.
        F9 = 23,
        /// F10.
        F10 = 24,
        /// F11.
        F11 = 25,
        /// F12.
        F12 = 26,
        /// Either shift key.
        Shift = 27,
        /// Either control key.
        Control = 28,
        /// Either alt key (incl. AltGr).
        Alt = 29,
        /// Caps lock.
        CapsLock = 30,
    }
}

/// One key going down or up.
///
/// `ch` is the character the press types under the current modifiers and layout (US 104), also
/// for Enter (`'\n'`), Tab, Backspace (`'\u{8}'`), Escape and Delete; it is `None` for releases
/// and for keys that type nothing. `special` names the key when it is one of [`Special`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    /// Pressed (`true`) or released.
    pub pressed: bool,
    /// The character typed, if any.
    pub ch: Option<char>,
    /// The key's name, if it has one here.
    pub special: Special,
}

const CHAR_MASK: u64 = 0x1f_ffff;
const HAS_CHAR: u64 = 1 << 21;
const SPECIAL_SHIFT: u32 = 24;
const PRESSED: u64 = 1 << 32;

/// `bits 0..=20` the character, `bit 21` a character is present, `bits 24..=31` the
/// [`Special`], `bit 32` pressed; every other bit zero. Decoding rejects any other word (a
/// character bit without the flag, a surrogate, an unknown special, stray bits).
impl Word for KeyEvent {
    fn to_word(self) -> u64 {
        let ch = self.ch.map_or(0, |c| u64::from(u32::from(c)) | HAS_CHAR);
        ch | (self.special.to_word() << SPECIAL_SHIFT) | if self.pressed { PRESSED } else { 0 }
    }

    fn from_word(w: u64) -> Option<Self> {
        if w & !(CHAR_MASK | HAS_CHAR | (0xff << SPECIAL_SHIFT) | PRESSED) != 0 {
            return None;
        }
        let ch = if w & HAS_CHAR != 0 {
            Some(char::from_u32((w & CHAR_MASK) as u32)?)
        } else if w & CHAR_MASK != 0 {
            return None;
        } else {
            None
        };
        Some(KeyEvent {
            pressed: w & PRESSED != 0,
            ch,
            special: Special::from_word((w >> SPECIAL_SHIFT) & 0xff)?,
        })
    }
}

/// The bit a subscriber's notification gets when key events are waiting in its queue.
pub const KEY_READY: u64 = 1;

libhsync::protocol! {
    /// The `ps2` protocol.
    pub protocol Ps2 {
        server Ps2Server;
        client Ps2Client;
        error Ps2Error;
        /// The oldest key event in the caller's queue, or [`Ps2Error::Empty`]. Never blocks.
        fn next_key() -> KeyEvent = 1;
        /// Signals [`KEY_READY`] on `notification` whenever the caller's queue has events.
        fn subscribe(notification: libhsync::Notification) = 2;
        /// Counters: scancode bytes read, key events decoded, events dropped (a full queue).
        fn stats() -> (u64, u64, u64) = 3;
        /// Faults the server on purpose (a deliberate page fault at address 0): a test hook
        /// for supervision (root logs the fault and restarts the server). Never replies.
        fn crash() = 4;
    }
}

/// The caller's error type for every operation.
pub type Error = ProtocolError<Ps2Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_stable() {
        assert_eq!(Ps2::NAME, "Ps2");
        assert_eq!(
            Ps2::OPS,
            &[
                ("next_key", 1),
                ("subscribe", 2),
                ("stats", 3),
                ("crash", 4)
            ]
        );
    }

    #[test]
    fn key_events_round_trip() {
        let cases = [
            KeyEvent {
                pressed: true,
                ch: Some('h'),
                special: Special::None,
            },
            KeyEvent {
                pressed: false,
                ch: None,
                special: Special::None,
            },
            KeyEvent {
                pressed: true,
                ch: Some('\n'),
                special: Special::Enter,
            },
            KeyEvent {
                pressed: true,
                ch: Some('\u{10ffff}'),
                special: Special::None,
            },
            KeyEvent {
                pressed: true,
                ch: Some('\0'),
                special: Special::None,
            },
            KeyEvent {
                pressed: false,
                ch: None,
                special: Special::CapsLock,
            },
            KeyEvent {
                pressed: true,
                ch: None,
                special: Special::F12,
            },
        ];
        for ev in cases {
            assert_eq!(KeyEvent::from_word(ev.to_word()), Some(ev), "{ev:?}");
        }
    }

    #[test]
    fn malformed_words_are_rejected() {
        assert_eq!(KeyEvent::from_word(1 << 33), None, "stray bit");
        assert_eq!(
            KeyEvent::from_word(u64::from('a')),
            None,
            "char bits without the flag"
        );
        assert_eq!(KeyEvent::from_word(HAS_CHAR | 0xd800), None, "surrogate");
        assert_eq!(
            KeyEvent::from_word(HAS_CHAR | 0x11_0000),
            None,
            "past U+10FFFF"
        );
        assert_eq!(
            KeyEvent::from_word(200 << SPECIAL_SHIFT),
            None,
            "unknown special"
        );
        assert_eq!(KeyEvent::from_word(u64::MAX), None);
    }
}
