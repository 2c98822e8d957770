//! The `vga` server's protocol: the display console (VGA text mode or a framebuffer console).
//!
//! Clients depend on this crate and call [`VgaClient`]; the server (`servers/vga`) implements
//! [`VgaServer`]. Coordinates are cells (`x` = column, `y` = row, from the top left) for the
//! text operations and pixels for the pixel operations. Colours of text are the 16 VGA palette
//! indices ([`Color`]); a cell's attribute byte is `background << 4 | foreground`. The crate
//! holds only the definition; console logic lives in the server.
#![no_std]
#![forbid(unsafe_code)]

pub use libhsync::protocol::{Bytes, Protocol, ProtocolError};

libhsync::wire_enum! {
    /// Why a `vga` request failed.
    pub enum VgaError {
        /// A coordinate, a colour index or a size is outside the display.
        OutOfRange = 1,
        /// The operation needs a framebuffer and the display is in text mode.
        NotSupported = 2,
    }
}

libhsync::wire_enum! {
    /// What kind of display the server drives.
    pub enum Mode {
        /// 80x25 VGA text mode at 0xB8000 (cells only; no pixels).
        Text = 1,
        /// A linear framebuffer with an 8x16 anti-aliased font (cells and pixels).
        Framebuffer = 2,
    }
}

libhsync::wire_enum! {
    /// The 16 colours of the VGA text palette (also used on a framebuffer).
    pub enum Color {
        /// 0
        Black = 0,
        /// 1
        Blue = 1,
        /// 2
        Green = 2,
        /// 3
        Cyan = 3,
        /// 4
        Red = 4,
        /// 5
        Magenta = 5,
        /// 6
        Brown = 6,
        /// 7 (the default foreground)
        LightGray = 7,
        /// 8
        DarkGray = 8,
        /// 9
        LightBlue = 9,
        /// 10
        LightGreen = 10,
        /// 11
        LightCyan = 11,
        /// 12
        LightRed = 12,
        /// 13
        Pink = 13,
        /// 14
        Yellow = 14,
        /// 15
        White = 15,
    }
}

libhsync::protocol! {
    /// The `vga` protocol: a text console plus cell and pixel plotting.
    pub protocol Vga {
        server VgaServer;
        client VgaClient;
        error VgaError;
        /// Writes bytes at the cursor in the current colours and moves the cursor: `\n` starts
        /// a new line, `\r` returns to column 0, `\t` advances to the next multiple of 8,
        /// `0x08` steps back one cell and blanks it; the console region scrolls up at its
        /// bottom. ANSI escape sequences as a terminal sends them: `ESC [ ... m` sets colours
        /// (0 reset, 1 bright, 30..=37 and 90..=97 foreground, 40..=47 and 100..=107
        /// background, 39/49 default), `ESC [ 2 J` clears the console region, `ESC [ H` homes
        /// the cursor, `ESC [ K` erases to the end of the line; other sequences are dropped.
        /// Other bytes are code page 437 glyphs; control bytes without a meaning show as `0xFE`
        /// (■). Returns the number of bytes consumed (all of them).
        fn write(text: &[u8]) -> u64 = 1;
        /// Sets the colours used by `write`, `clear` and `scroll`.
        fn set_color(fg: Color, bg: Color) = 2;
        /// Moves the cursor to column `x`, row `y` ([`VgaError::OutOfRange`] outside).
        fn set_cursor(x: u16, y: u16) = 3;
        /// The cursor: `(x, y)`. `x` equals the column count right after a write filled a
        /// row (the next glyph wraps to the next row).
        fn cursor() -> (u16, u16) = 4;
        /// Blanks the screen in the current colours; the cursor goes to (0, 0).
        fn clear() = 5;
        /// Scrolls the text up by `lines` rows (at most the screen height), blanking the rows
        /// that appear at the bottom; the cursor stays where it is.
        fn scroll(lines: u16) = 6;
        /// Puts glyph `ch` with attribute `attr` (`bg << 4 | fg`) at column `x`, row `y`
        /// without moving the cursor: the cell plotting operation.
        fn put_cell(x: u16, y: u16, ch: u8, attr: u8) = 7;
        /// Reads back the glyph and attribute at `(x, y)`.
        fn get_cell(x: u16, y: u16) -> (u8, u8) = 8;
        /// The display: `(mode, columns, rows)`.
        fn info() -> (Mode, u16, u16) = 9;
        /// The framebuffer size in pixels `(width, height)`; [`VgaError::NotSupported`] in
        /// text mode.
        fn pixel_size() -> (u32, u32) = 10;
        /// Sets pixel `(x, y)` to `rgb` (`0xRRGGBB`); [`VgaError::NotSupported`] in text mode.
        fn put_pixel(x: u32, y: u32, rgb: u32) = 11;
        /// Fills the rectangle `w` x `h` at `(x, y)` with `rgb`, clipped to the screen;
        /// [`VgaError::NotSupported`] in text mode.
        fn fill_rect(x: u32, y: u32, w: u32, h: u32, rgb: u32) = 12;
        /// Puts a row of cells starting at `(x, y)`: `cells` holds (glyph, attribute) byte
        /// pairs; cells past the right edge are [`VgaError::OutOfRange`] (nothing is drawn).
        fn put_cells(x: u16, y: u16, cells: &[u8]) = 13;
        /// Faults the server on purpose (a deliberate page fault at address 0): a test hook
        /// for supervision (root logs the fault and restarts the server). Never replies.
        fn crash() = 14;
        /// Opens (`true`) or closes the wave panel at the bottom of the screen; returns whether
        /// it was open. While it is open the console region ends above it (text scrolls there
        /// only; text that was on the panel's rows scrolls up first); closing gives the rows
        /// back, blank. [`VgaError::NotSupported`] when the screen is too small for a panel.
        fn panel(on: bool) -> bool = 15;
        /// Draws one frame of HSYNC-Wave in the open panel: `samples` are little-endian `i16`
        /// values in `-32767..=32767` (the waveform, +1.0 = 32767), left to right, between 2
        /// and [`MAX_WAVE_SAMPLES`] of them; `phase` is the phase state shown in the readout.
        /// [`VgaError::NotSupported`] without an open panel, [`VgaError::OutOfRange`] for a bad
        /// sample count.
        fn wave(phase: u64, samples: &[u8]) = 16;
        /// The figures the status line and the wave readout show: phase steps per second, TSC
        /// cycles per transformed word (x100), the last dudect-style run's |t| (x100) and its
        /// sample count; [`NOT_MEASURED`] for a figure that was not measured.
        fn figures(steps_per_s: u64, cycles_per_word_x100: u64, dudect_t_x100: u64, dudect_samples: u64) = 17;
        /// Wave frame timing (render + present of each frame, measured by the server), as eight
        /// little-endian u64: frames drawn, median ns, p99 ns, min ns, frames per second x1000
        /// over the kept frames, bytes the last frame presented, frames kept, panel rows.
        fn frame_stats() -> Bytes = 18;
    }
}

/// The most samples one [`VgaClient::wave`] frame carries.
pub const MAX_WAVE_SAMPLES: usize = 252;

/// A [`VgaClient::figures`] value that was not measured.
pub const NOT_MEASURED: u64 = u64::MAX;

/// The caller's error type for every operation.
pub type Error = ProtocolError<VgaError>;

/// An attribute byte from two colours.
pub const fn attr(fg: Color, bg: Color) -> u8 {
    ((bg as u8) << 4) | (fg as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_stable() {
        assert_eq!(Vga::NAME, "Vga");
        assert_eq!(
            Vga::OPS,
            &[
                ("write", 1),
                ("set_color", 2),
                ("set_cursor", 3),
                ("cursor", 4),
                ("clear", 5),
                ("scroll", 6),
                ("put_cell", 7),
                ("get_cell", 8),
                ("info", 9),
                ("pixel_size", 10),
                ("put_pixel", 11),
                ("fill_rect", 12),
                ("put_cells", 13),
                ("crash", 14),
                ("panel", 15),
                ("wave", 16),
                ("figures", 17),
                ("frame_stats", 18),
            ]
        );
    }

    #[test]
    fn attribute_byte() {
        assert_eq!(attr(Color::Yellow, Color::Blue), 0x1E);
        assert_eq!(attr(Color::LightGray, Color::Black), 0x07);
    }
}
