//! The framebuffer console's [`Screen`]: a grid of cells drawn with the built-in 8x16 font
//! ([`crate::font`]) into a linear framebuffer, with a cursor (an underline) and the pixel
//! operations. The pixels go through a [`Surface`] — the mapped framebuffer in the server, a
//! byte array in the tests.

use alloc::vec::Vec;

use hsync_root_api::FbGeometry;

use crate::Screen;
use crate::font::{GLYPH_H, GLYPH_W, glyph};

/// Where the pixels go: `len` bytes of framebuffer memory.
pub trait Surface {
    /// Stores `bytes` at byte `offset` (the range is always inside the framebuffer).
    fn write(&mut self, offset: usize, bytes: &[u8]);
}

/// The 16 text colours (VGA palette order) as 0xRRGGBB.
pub const PALETTE: [u32; 16] = [
    0x000000, 0x0000AA, 0x00AA00, 0x00AAAA, 0xAA0000, 0xAA00AA, 0xAA5500, 0xAAAAAA, 0x555555,
    0x5555FF, 0x55FF55, 0x55FFFF, 0xFF5555, 0xFF55FF, 0xFFFF55, 0xFFFFFF,
];

/// Pixel rows the cursor underline covers (the bottom of the cell).
const CURSOR_ROWS: core::ops::Range<usize> = 13..15;

/// A framebuffer as a [`Screen`]: `width / 8` by `height / 16` cells.
pub struct FbScreen<S> {
    surface: S,
    g: FbGeometry,
    bytes_pp: usize,
    cols: u16,
    rows: u16,
    cells: Vec<(u8, u8)>,
    cursor: Option<(u16, u16)>,
    /// Set once a pixel operation drew over cells: from then on every cell store redraws.
    painted: bool,
}

impl<S: Surface> FbScreen<S> {
    /// A screen over `surface` with geometry `g`; `None` for a pixel format it cannot draw
    /// (not 16, 24 or 32 bits per pixel, a pitch shorter than a row, or smaller than a cell).
    /// Nothing is drawn until cells are stored (clear the console first).
    pub fn new(surface: S, g: FbGeometry) -> Option<FbScreen<S>> {
        let bytes_pp = match g.bpp {
            16 | 24 | 32 => usize::from(g.bpp / 8),
            _ => return None,
        };
        if u64::from(g.pitch) < u64::from(g.width) * bytes_pp as u64 {
            return None;
        }
        let cols = u16::try_from(g.width / GLYPH_W).ok()?;
        let rows = u16::try_from(g.height / GLYPH_H).ok()?;
        if cols == 0 || rows == 0 {
            return None;
        }
        Some(FbScreen {
            surface,
            g,
            bytes_pp,
            cols,
            rows,
            // (0, 0) is never stored by the console's clear, so the first store draws.
            cells: alloc::vec![(0, 0); usize::from(cols) * usize::from(rows)],
            cursor: None,
            painted: false,
        })
    }

    /// The surface.
    pub fn surface(&self) -> &S {
        &self.surface
    }

    /// Bytes the framebuffer spans (`pitch * height`).
    pub fn len(&self) -> usize {
        self.g.pitch as usize * self.g.height as usize
    }

    /// Whether the framebuffer is empty (never, for a screen `new` accepted).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `rgb` (0xRRGGBB) in the framebuffer's pixel format, little-endian bytes.
    pub fn encode(&self, rgb: u32) -> [u8; 4] {
        let channels = [(rgb >> 16) & 0xFF, (rgb >> 8) & 0xFF, rgb & 0xFF];
        let mut px = 0u32;
        for (c, (size, shift)) in channels.into_iter().zip(self.g.rgb) {
            let size = u32::from(size.min(8));
            if size == 0 || shift >= 32 {
                continue;
            }
            px |= (c >> (8 - size)) << shift;
        }
        px.to_le_bytes()
    }

    fn offset(&self, x: u32, y: u32) -> usize {
        y as usize * self.g.pitch as usize + x as usize * self.bytes_pp
    }

    fn draw_cell(&mut self, x: u16, y: u16) {
        let (ch, attr) = self.cells[usize::from(y) * usize::from(self.cols) + usize::from(x)];
        let fg = self.encode(PALETTE[usize::from(attr & 0x0F)]);
        let bg = self.encode(PALETTE[usize::from(attr >> 4)]);
        let cursor = self.cursor == Some((x, y));
        let rows = glyph(ch);
        let n = self.bytes_pp;
        let mut line = [0u8; GLYPH_W as usize * 4];
        for (r, bits) in rows.iter().enumerate() {
            let bits = if cursor && CURSOR_ROWS.contains(&r) {
                0xFF
            } else {
                *bits
            };
            for px in 0..GLYPH_W as usize {
                let on = bits & (0x80 >> px) != 0;
                line[px * n..(px + 1) * n].copy_from_slice(&(if on { fg } else { bg })[..n]);
            }
            let at = self.offset(u32::from(x) * GLYPH_W, u32::from(y) * GLYPH_H + r as u32);
            self.surface.write(at, &line[..GLYPH_W as usize * n]);
        }
    }
}

impl<S: Surface> Screen for FbScreen<S> {
    fn size(&self) -> (u16, u16) {
        (self.cols, self.rows)
    }

    fn cell(&self, x: u16, y: u16) -> (u8, u8) {
        self.cells[usize::from(y) * usize::from(self.cols) + usize::from(x)]
    }

    fn set_cell(&mut self, x: u16, y: u16, ch: u8, attr: u8) {
        let i = usize::from(y) * usize::from(self.cols) + usize::from(x);
        if self.cells[i] == (ch, attr) && !self.painted {
            // Unchanged: scrolling a mostly empty screen redraws only what moved.
            return;
        }
        self.cells[i] = (ch, attr);
        self.draw_cell(x, y);
    }

    fn show_cursor(&mut self, x: u16, y: u16) {
        let at = (x.min(self.cols - 1), y.min(self.rows - 1));
        if self.cursor == Some(at) {
            return;
        }
        let old = self.cursor.replace(at);
        if let Some((ox, oy)) = old {
            self.draw_cell(ox, oy);
        }
        self.draw_cell(at.0, at.1);
    }

    fn pixel_size(&self) -> Option<(u32, u32)> {
        Some((self.g.width, self.g.height))
    }

    fn put_pixel(&mut self, x: u32, y: u32, rgb: u32) {
        self.painted = true;
        let px = self.encode(rgb);
        let at = self.offset(x, y);
        let n = self.bytes_pp;
        self.surface.write(at, &px[..n]);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use hsync_vga_api::{Color, VgaServer, attr};

    use super::*;
    use crate::Console;

    /// Framebuffer memory in a vector.
    struct Mem(Vec<u8>);

    impl Surface for Mem {
        fn write(&mut self, offset: usize, bytes: &[u8]) {
            self.0[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
    }

    /// 32-bit xRGB, 10x3 cells (80x48 pixels), a pitch with padding.
    fn geometry() -> FbGeometry {
        FbGeometry {
            width: 80,
            height: 48,
            pitch: 80 * 4 + 16,
            bpp: 32,
            rgb: [(8, 16), (8, 8), (8, 0)],
        }
    }

    fn screen() -> FbScreen<Mem> {
        let g = geometry();
        FbScreen::new(Mem(std::vec![0xEE; (g.pitch * g.height) as usize]), g).unwrap()
    }

    fn pixel(s: &FbScreen<Mem>, x: u32, y: u32) -> u32 {
        let at = s.offset(x, y);
        let b = &s.surface().0[at..at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The glyph of the cell at (cx, cy) as read back from the pixels: 1 = foreground.
    fn read_cell(s: &FbScreen<Mem>, cx: u32, cy: u32, fg: u32) -> [u8; 16] {
        let mut rows = [0u8; 16];
        for (r, row) in rows.iter_mut().enumerate() {
            for px in 0..8 {
                if pixel(s, cx * 8 + px, cy * 16 + r as u32) == fg {
                    *row |= 0x80 >> px;
                }
            }
        }
        rows
    }

    #[test]
    fn glyph_lookup() {
        assert_eq!(glyph(b' '), [0; 16]);
        let a = glyph(b'A');
        assert_eq!(a[0], 0, "blank top row");
        assert_eq!(a[15], 0, "blank bottom row");
        assert_eq!(a[1], 0x0E << 2);
        assert_eq!(a[1], a[2], "dot rows are doubled");
        assert_eq!(a[7], 0x1F << 2, "the bar of the A");
        // Every printable glyph but the space has dots, and they differ from each other.
        for c in 0x21u8..=0x7E {
            assert_ne!(glyph(c), [0; 16], "{:?} is blank", c as char);
            for d in c + 1..=0x7E {
                assert_ne!(glyph(c), glyph(d), "{:?} = {:?}", c as char, d as char);
            }
        }
        // No glyph: a box.
        assert_eq!(glyph(0xFE), glyph(0x01));
        assert_ne!(glyph(0xFE), glyph(b' '));
    }

    #[test]
    fn rejects_formats_it_cannot_draw() {
        let mut g = geometry();
        g.bpp = 8;
        assert!(FbScreen::new(Mem(Vec::new()), g).is_none());
        let mut g = geometry();
        g.pitch = 10;
        assert!(FbScreen::new(Mem(Vec::new()), g).is_none());
        let mut g = geometry();
        g.height = 15;
        assert!(FbScreen::new(Mem(Vec::new()), g).is_none());
    }

    #[test]
    fn encodes_the_pixel_format() {
        let s = screen();
        assert_eq!(s.encode(0x123456), [0x56, 0x34, 0x12, 0]);
        let g = FbGeometry {
            bpp: 16,
            rgb: [(5, 11), (6, 5), (5, 0)],
            ..geometry()
        };
        let s16 = FbScreen::new(Mem(std::vec![0; 48 * 336]), g).unwrap();
        assert_eq!(s16.encode(0xFFFFFF)[..2], [0xFF, 0xFF]);
        assert_eq!(s16.encode(0xFF0000)[..2], 0xF800u16.to_le_bytes());
    }

    #[test]
    fn renders_a_char_in_colour() {
        let mut c = Console::new(screen());
        c.clear(0).unwrap();
        c.set_color(0, Color::Yellow, Color::Blue).unwrap();
        c.write(0, b"Hi").unwrap();
        let s = c.screen();
        assert_eq!(s.cell(0, 0), (b'H', attr(Color::Yellow, Color::Blue)));
        let (fg, bg) = (0xFFFF55, 0x0000AA);
        assert_eq!(read_cell(s, 0, 0, fg), glyph(b'H'));
        assert_eq!(read_cell(s, 1, 0, fg), glyph(b'i'));
        assert_eq!(pixel(s, 0, 0), bg, "background around the glyph");
        assert_eq!(pixel(s, 1, 1), fg, "left stroke of the H");
        // Padding after each row is never written.
        assert_eq!(s.surface().0[80 * 4], 0xEE);
        // The cursor (an underline) sits on the next cell, in its foreground colour.
        let mut under = glyph(b' ');
        under[13] = 0xFF;
        under[14] = 0xFF;
        assert_eq!(read_cell(s, 2, 0, PALETTE[7]), under);
    }

    #[test]
    fn scrolls_the_pixels() {
        let mut c = Console::new(screen());
        c.clear(0).unwrap();
        c.write(0, b"one\ntwo\nthree\nfour").unwrap();
        let s = c.screen();
        let fg = PALETTE[7];
        assert_eq!(s.cell(0, 0).0, b't');
        assert_eq!(read_cell(s, 0, 0, fg), glyph(b't'));
        assert_eq!(read_cell(s, 1, 0, fg), glyph(b'w'));
        assert_eq!(read_cell(s, 2, 1, fg), glyph(b'r'));
        assert_eq!(read_cell(s, 0, 2, fg), glyph(b'f'));
        // "three" was longer than "two": the old row's tail is blank now.
        assert_eq!(read_cell(s, 3, 0, fg), [0; 16]);
        assert_eq!(c.cursor(0).unwrap(), (4, 2));
    }

    #[test]
    fn pixel_ops_draw_and_clear_repaints() {
        let mut c = Console::new(screen());
        c.clear(0).unwrap();
        assert_eq!(c.pixel_size(0).unwrap(), (80, 48));
        c.put_pixel(0, 79, 47, 0xABCDEF).unwrap();
        assert_eq!(pixel(c.screen(), 79, 47), 0xABCDEF);
        c.fill_rect(0, 8, 16, 100, 100, 0x00FF00).unwrap();
        assert_eq!(pixel(c.screen(), 8, 16), 0x00FF00);
        assert_eq!(pixel(c.screen(), 79, 47), 0x00FF00);
        assert_eq!(pixel(c.screen(), 7, 16), 0x000000);
        c.clear(0).unwrap();
        assert_eq!(
            pixel(c.screen(), 79, 47),
            0x000000,
            "clear repaints drawn pixels"
        );
    }
}
