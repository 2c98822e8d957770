//! The `vga` server's console logic, free of hardware so it is tested on the host.
//!
//! A [`Console`] keeps the cursor and the current colours and implements the whole
//! [`VgaServer`] protocol over a [`Screen`]: anything that stores a grid of (glyph, attribute)
//! cells and, for a framebuffer, pixels. The server binary (`main.rs`) supplies the screen
//! backed by the real text buffer at 0xB8000; tests supply an array. Nothing here panics on
//! what a client sends: every coordinate and size is checked and answered with
//! [`VgaError::OutOfRange`] or [`VgaError::NotSupported`].
//!
//! The framebuffer console is [`fb::FbScreen`]: the same cells drawn with the built-in 8x16
//! font ([`font`]) into a linear framebuffer, plus pixels. On a screen without pixels (text
//! mode) the pixel operations answer `NotSupported`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod fb;
pub mod font;

use hsync_vga_api::{Color, Mode, VgaError, VgaServer, attr};

/// Glyph shown for control bytes that have no meaning on the console (CP437 `■`).
pub const UNPRINTABLE: u8 = 0xFE;
/// The attribute a fresh console uses: light grey on black.
pub const DEFAULT_ATTR: u8 = attr(Color::LightGray, Color::Black);

/// A grid of character cells (and optionally pixels) a [`Console`] draws on.
pub trait Screen {
    /// Columns and rows (both at least 1).
    fn size(&self) -> (u16, u16);
    /// The (glyph, attribute) at `(x, y)`; only called with in-range coordinates.
    fn cell(&self, x: u16, y: u16) -> (u8, u8);
    /// Stores a cell; only called with in-range coordinates.
    fn set_cell(&mut self, x: u16, y: u16, ch: u8, attr: u8);
    /// The visible cursor should be at `(x, y)` (`x` may equal the column count right after a
    /// write filled a row: the next glyph wraps; clamp it then).
    fn show_cursor(&mut self, _x: u16, _y: u16) {}
    /// Pixel size, when the screen has pixels.
    fn pixel_size(&self) -> Option<(u32, u32)> {
        None
    }
    /// Sets one pixel; only called with in-range coordinates on a screen with pixels.
    fn put_pixel(&mut self, _x: u32, _y: u32, _rgb: u32) {}
}

/// The console: a [`Screen`], the cursor and the current attribute.
#[derive(Debug)]
pub struct Console<S> {
    screen: S,
    x: u16,
    y: u16,
    attr: u8,
}

impl<S: Screen> Console<S> {
    /// A console over `screen`, cursor at (0, 0), default colours; the screen is not cleared
    /// (what the firmware left stays until someone clears it).
    pub fn new(screen: S) -> Console<S> {
        Console {
            screen,
            x: 0,
            y: 0,
            attr: DEFAULT_ATTR,
        }
    }

    /// The screen.
    pub fn screen(&self) -> &S {
        &self.screen
    }

    fn blank_row(&mut self, y: u16) {
        let (cols, _) = self.screen.size();
        for x in 0..cols {
            self.screen.set_cell(x, y, b' ', self.attr);
        }
    }

    fn scroll_up(&mut self, lines: u16) {
        let (cols, rows) = self.screen.size();
        let lines = lines.min(rows);
        for y in 0..rows - lines {
            for x in 0..cols {
                let (ch, a) = self.screen.cell(x, y + lines);
                self.screen.set_cell(x, y, ch, a);
            }
        }
        for y in rows - lines..rows {
            self.blank_row(y);
        }
    }

    /// Puts the cursor back on the screen before a glyph is drawn (scrolling if it is past
    /// the last row).
    fn settle(&mut self) {
        let (cols, rows) = self.screen.size();
        if self.x >= cols {
            self.x = 0;
            self.y = self.y.saturating_add(1);
        }
        if self.y >= rows {
            self.scroll_up(self.y - rows + 1);
            self.y = rows - 1;
        }
    }

    /// Writes one byte at the cursor (see [`VgaServer::write`] for the control bytes).
    pub fn put_byte(&mut self, b: u8) {
        let (cols, _) = self.screen.size();
        match b {
            b'\n' => {
                // Eager: the new row is on screen at once (a full last row scrolls now).
                self.x = 0;
                self.y = self.y.saturating_add(1);
                self.settle();
            }
            b'\r' => self.x = 0,
            b'\t' => {
                self.settle();
                let next = (self.x / 8 + 1) * 8;
                self.x = next.min(cols);
            }
            0x08 => {
                if self.x > 0 {
                    self.x = self.x.min(cols) - 1;
                    self.screen.set_cell(self.x, self.y, b' ', self.attr);
                }
            }
            _ => {
                self.settle();
                let glyph = if b < 0x20 || b == 0x7F {
                    UNPRINTABLE
                } else {
                    b
                };
                self.screen.set_cell(self.x, self.y, glyph, self.attr);
                self.x += 1;
            }
        }
    }

    fn sync_cursor(&mut self) {
        self.screen.show_cursor(self.x, self.y);
    }

    fn check_cell(&self, x: u16, y: u16) -> Result<(), VgaError> {
        let (cols, rows) = self.screen.size();
        if x < cols && y < rows {
            Ok(())
        } else {
            Err(VgaError::OutOfRange)
        }
    }

    fn pixels(&self) -> Result<(u32, u32), VgaError> {
        self.screen.pixel_size().ok_or(VgaError::NotSupported)
    }
}

impl<S: Screen> VgaServer for Console<S> {
    fn write(&mut self, _badge: u64, text: &[u8]) -> Result<u64, VgaError> {
        for &b in text {
            self.put_byte(b);
        }
        self.sync_cursor();
        Ok(text.len() as u64)
    }

    fn set_color(&mut self, _badge: u64, fg: Color, bg: Color) -> Result<(), VgaError> {
        self.attr = attr(fg, bg);
        Ok(())
    }

    fn set_cursor(&mut self, _badge: u64, x: u16, y: u16) -> Result<(), VgaError> {
        self.check_cell(x, y)?;
        (self.x, self.y) = (x, y);
        self.sync_cursor();
        Ok(())
    }

    fn cursor(&mut self, _badge: u64) -> Result<(u16, u16), VgaError> {
        Ok((self.x, self.y))
    }

    fn clear(&mut self, _badge: u64) -> Result<(), VgaError> {
        let (_, rows) = self.screen.size();
        for y in 0..rows {
            self.blank_row(y);
        }
        (self.x, self.y) = (0, 0);
        self.sync_cursor();
        Ok(())
    }

    fn scroll(&mut self, _badge: u64, lines: u16) -> Result<(), VgaError> {
        if lines > self.screen.size().1 {
            return Err(VgaError::OutOfRange);
        }
        self.scroll_up(lines);
        Ok(())
    }

    fn put_cell(&mut self, _badge: u64, x: u16, y: u16, ch: u8, attr: u8) -> Result<(), VgaError> {
        self.check_cell(x, y)?;
        self.screen.set_cell(x, y, ch, attr);
        Ok(())
    }

    fn get_cell(&mut self, _badge: u64, x: u16, y: u16) -> Result<(u8, u8), VgaError> {
        self.check_cell(x, y)?;
        Ok(self.screen.cell(x, y))
    }

    fn info(&mut self, _badge: u64) -> Result<(Mode, u16, u16), VgaError> {
        let (cols, rows) = self.screen.size();
        let mode = match self.screen.pixel_size() {
            Some(_) => Mode::Framebuffer,
            None => Mode::Text,
        };
        Ok((mode, cols, rows))
    }

    fn pixel_size(&mut self, _badge: u64) -> Result<(u32, u32), VgaError> {
        self.pixels()
    }

    fn put_pixel(&mut self, _badge: u64, x: u32, y: u32, rgb: u32) -> Result<(), VgaError> {
        let (w, h) = self.pixels()?;
        if x >= w || y >= h || rgb > 0xFF_FFFF {
            return Err(VgaError::OutOfRange);
        }
        self.screen.put_pixel(x, y, rgb);
        Ok(())
    }

    fn fill_rect(
        &mut self,
        _badge: u64,
        x: u32,
        y: u32,
        w: u32,
        h: u32,
        rgb: u32,
    ) -> Result<(), VgaError> {
        let (pw, ph) = self.pixels()?;
        if rgb > 0xFF_FFFF {
            return Err(VgaError::OutOfRange);
        }
        let x_end = x.saturating_add(w).min(pw);
        let y_end = y.saturating_add(h).min(ph);
        for py in y..y_end {
            for px in x..x_end {
                self.screen.put_pixel(px, py, rgb);
            }
        }
        Ok(())
    }

    fn put_cells(&mut self, _badge: u64, x: u16, y: u16, cells: &[u8]) -> Result<(), VgaError> {
        let (cols, _) = self.screen.size();
        self.check_cell(x, y)?;
        let n = cells.len() / 2;
        if !cells.len().is_multiple_of(2) || usize::from(x) + n > usize::from(cols) {
            return Err(VgaError::OutOfRange);
        }
        for (i, pair) in cells.chunks_exact(2).enumerate() {
            // `x + i < cols` was checked above.
            self.screen.set_cell(x + i as u16, y, pair[0], pair[1]);
        }
        Ok(())
    }

    fn crash(&mut self, badge: u64) -> Result<(), VgaError> {
        log::warn!("vga: crash requested by client {badge}; faulting on purpose");
        libhsync::fault::page_fault(0)
    }
}

#[cfg(test)]
mod tests;
