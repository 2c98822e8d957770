//! The line editor: turns a stream of input bytes (serial) or typed characters (keyboard) into
//! completed lines, with backspace, Ctrl-C and Ctrl-U, and a hard length limit.

/// The longest line the editor keeps, in bytes. Longer input is discarded up to the end of
/// the line and reported as [`Event::TooLong`].
pub const LINE_MAX: usize = 120;

/// What one input byte did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing visible (a swallowed byte: the LF of a CRLF, an escape sequence, a NUL).
    None,
    /// The byte was appended; echo it.
    Echo(u8),
    /// The last byte was removed; echo a backspace-erase.
    Erase,
    /// The line was discarded (Ctrl-C / Ctrl-U); start a fresh prompt.
    Cancel,
    /// Enter: the line is complete; read it with [`LineEditor::line`], then call
    /// [`LineEditor::clear`].
    Line,
    /// Enter after a line longer than [`LINE_MAX`]: it was discarded.
    TooLong,
    /// A byte that is not printable ASCII nor a known control key; it was ignored.
    Rejected(u8),
}

/// Escape-sequence state: terminals send arrows etc. as `ESC [ ... final`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    No,
    Start,
    Csi,
}

/// A fixed-size line buffer (no allocation).
#[derive(Clone, Debug)]
pub struct LineEditor {
    buf: [u8; LINE_MAX],
    len: usize,
    overflow: bool,
    last_cr: bool,
    esc: Esc,
}

impl Default for LineEditor {
    fn default() -> Self {
        LineEditor::new()
    }
}

impl LineEditor {
    /// An empty editor.
    pub const fn new() -> LineEditor {
        LineEditor {
            buf: [0; LINE_MAX],
            len: 0,
            overflow: false,
            last_cr: false,
            esc: Esc::No,
        }
    }

    /// Feeds one byte.
    pub fn feed(&mut self, b: u8) -> Event {
        let after_cr = core::mem::replace(&mut self.last_cr, false);
        match self.esc {
            Esc::Start => {
                self.esc = if b == b'[' { Esc::Csi } else { Esc::No };
                return Event::None;
            }
            Esc::Csi => {
                // Parameters and intermediates are 0x20..=0x3F; a final byte ends it.
                if !(0x20..=0x3F).contains(&b) {
                    self.esc = Esc::No;
                }
                return Event::None;
            }
            Esc::No => {}
        }
        match b {
            b'\r' => {
                self.last_cr = true;
                self.finish()
            }
            b'\n' if after_cr => Event::None,
            b'\n' => self.finish(),
            0x08 | 0x7F => {
                if self.overflow {
                    Event::None
                } else if self.len > 0 {
                    self.len -= 1;
                    Event::Erase
                } else {
                    Event::None
                }
            }
            0x03 | 0x15 => {
                self.clear();
                Event::Cancel
            }
            0x1B => {
                self.esc = Esc::Start;
                Event::None
            }
            0 => Event::None,
            b' '..=b'~' => {
                if self.overflow {
                    Event::None
                } else if self.len < LINE_MAX {
                    self.buf[self.len] = b;
                    self.len += 1;
                    Event::Echo(b)
                } else {
                    self.overflow = true;
                    Event::None
                }
            }
            _ => Event::Rejected(b),
        }
    }

    fn finish(&mut self) -> Event {
        if self.overflow {
            self.clear();
            Event::TooLong
        } else {
            Event::Line
        }
    }

    /// The line typed so far (always printable ASCII, so valid UTF-8).
    pub fn line(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Forgets the current line.
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflow = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(ed: &mut LineEditor, s: &[u8]) -> Event {
        let mut last = Event::None;
        for &b in s {
            last = ed.feed(b);
        }
        last
    }

    #[test]
    fn a_line_with_crlf_is_one_line() {
        let mut ed = LineEditor::new();
        assert_eq!(feed_all(&mut ed, b"help\r"), Event::Line);
        assert_eq!(ed.line(), "help");
        ed.clear();
        assert_eq!(ed.feed(b'\n'), Event::None, "the LF of CRLF is swallowed");
        assert_eq!(
            ed.feed(b'\n'),
            Event::Line,
            "a lone LF ends an (empty) line"
        );
        assert_eq!(ed.line(), "");
    }

    #[test]
    fn backspace_and_delete_erase() {
        let mut ed = LineEditor::new();
        feed_all(&mut ed, b"pz");
        assert_eq!(ed.feed(0x7F), Event::Erase);
        assert_eq!(ed.feed(b's'), Event::Echo(b's'));
        assert_eq!(ed.feed(0x08), Event::Erase);
        assert_eq!(ed.feed(0x08), Event::Erase);
        assert_eq!(ed.feed(0x08), Event::None, "nothing left to erase");
        assert_eq!(ed.line(), "");
    }

    #[test]
    fn ctrl_c_cancels() {
        let mut ed = LineEditor::new();
        feed_all(&mut ed, b"reboot");
        assert_eq!(ed.feed(0x03), Event::Cancel);
        assert_eq!(ed.line(), "");
    }

    #[test]
    fn escape_sequences_are_swallowed() {
        let mut ed = LineEditor::new();
        // Up arrow, then "ps", then Right arrow with a parameter.
        assert_eq!(feed_all(&mut ed, b"\x1b[Aps\x1b[1;5C\r"), Event::Line);
        assert_eq!(ed.line(), "ps");
    }

    #[test]
    fn non_ascii_is_rejected_not_stored() {
        let mut ed = LineEditor::new();
        assert_eq!(ed.feed(0xC3), Event::Rejected(0xC3));
        assert_eq!(ed.feed(0x01), Event::Rejected(0x01));
        assert_eq!(feed_all(&mut ed, b"mem\r"), Event::Line);
        assert_eq!(ed.line(), "mem");
    }

    #[test]
    fn long_line_is_discarded_whole_and_the_next_works() {
        let mut ed = LineEditor::new();
        for _ in 0..LINE_MAX {
            assert!(matches!(ed.feed(b'x'), Event::Echo(b'x')));
        }
        assert_eq!(ed.feed(b'y'), Event::None, "over the limit: not echoed");
        assert_eq!(feed_all(&mut ed, &[b'z'; 1000]), Event::None);
        assert_eq!(ed.feed(0x7F), Event::None, "no editing an overflowed line");
        assert_eq!(ed.feed(b'\r'), Event::TooLong);
        assert_eq!(feed_all(&mut ed, b"help\r"), Event::Line);
        assert_eq!(ed.line(), "help");
    }

    #[test]
    fn garbage_never_panics_and_line_stays_printable() {
        let mut ed = LineEditor::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let e = ed.feed(x as u8);
            if e == Event::Line {
                assert!(ed.line().bytes().all(|b| (b' '..=b'~').contains(&b)));
                assert!(ed.line().len() <= LINE_MAX);
                ed.clear();
            }
        }
    }
}
