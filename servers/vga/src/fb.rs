//! The framebuffer console's [`Screen`]: a grid of 8x16 cells drawn with the console font
//! ([`crate::font`], anti-aliased: each pixel blends foreground and background by the glyph's
//! coverage) into the back buffer ([`Canvas`]), a cursor (an underline), the pixel operations,
//! and the pixel oscilloscope for the wave panel ([`Scope`]). [`Screen::flush`] presents: it
//! copies what changed to the framebuffer (a [`Surface`]: the mapped framebuffer in the server,
//! a byte array in the tests) in its pixel format.

use alloc::vec::Vec;
use core::ops::Range;

use hsync_root_api::FbGeometry;

use crate::Screen;
pub use crate::canvas::Surface;
use crate::canvas::{Canvas, Format, Rect};
use crate::font::{GLYPH_H, GLYPH_W, glyph};
use crate::scope::{Figures, Frame, Scope};

/// The 16 text colours (VGA palette order) as 0xRRGGBB.
pub const PALETTE: [u32; 16] = [
    0x000000, 0x0000AA, 0x00AA00, 0x00AAAA, 0xAA0000, 0xAA00AA, 0xAA5500, 0xAAAAAA, 0x555555,
    0x5555FF, 0x55FF55, 0x55FFFF, 0xFF5555, 0xFF55FF, 0xFFFF55, 0xFFFFFF,
];

/// Pixel rows the cursor underline covers (the bottom of the cell).
const CURSOR_ROWS: Range<usize> = 13..15;

/// `fg` over `bg` at coverage `a` (0..=255), per channel.
fn blend(fg: u32, bg: u32, a: u8) -> u32 {
    match a {
        0 => bg,
        255 => fg,
        _ => {
            let a = u32::from(a);
            let ch = |s: u32| {
                let (f, b) = ((fg >> s) & 0xFF, (bg >> s) & 0xFF);
                ((f * a + b * (255 - a) + 127) / 255) << s
            };
            ch(16) | ch(8) | ch(0)
        }
    }
}

/// Draws CP437 byte `b` as a cell at pixel `(x, y)` of `c` (with the underline cursor when
/// `cursor`).
pub fn draw_glyph(c: &mut Canvas, x: u32, y: u32, b: u8, fg: u32, bg: u32, cursor: bool) {
    let g = glyph(b);
    for (r, cov) in g.iter().enumerate() {
        let row = c.row_mut(x, y + r as u32, GLYPH_W);
        let under = cursor && CURSOR_ROWS.contains(&r);
        for (px, &a) in row.iter_mut().zip(cov) {
            *px = if under { fg } else { blend(fg, bg, a) };
        }
    }
}

/// A framebuffer as a [`Screen`]: `width / 8` by `height / 16` cells.
pub struct FbScreen<S> {
    surface: S,
    format: Format,
    canvas: Canvas,
    cols: u16,
    rows: u16,
    cells: Vec<(u8, u8)>,
    cursor: Option<(u16, u16)>,
    /// The oscilloscope of the open wave panel, and the rows it covers.
    scope: Option<(Range<u16>, Scope)>,
}

/// A cell value the console never stores: the next store of that cell always draws.
const STALE: (u8, u8) = (0, 0);

impl<S: Surface> FbScreen<S> {
    /// A screen over `surface` with geometry `g`, or why it cannot draw that framebuffer (a
    /// pixel format other than 16, 24 or 32 bits with masks of at most 8 bits, a pitch shorter
    /// than a row, or smaller than a cell). Nothing is drawn until cells are stored and
    /// flushed (clear the console first).
    pub fn new(surface: S, g: FbGeometry) -> Result<FbScreen<S>, &'static str> {
        let format = Format::of(&g)?;
        let cols = u16::try_from(g.width / GLYPH_W).map_err(|_| "too wide")?;
        let rows = u16::try_from(g.height / GLYPH_H).map_err(|_| "too tall")?;
        if cols == 0 || rows == 0 {
            return Err("smaller than one 8x16 cell");
        }
        Ok(FbScreen {
            surface,
            format,
            canvas: Canvas::new(g.width, g.height),
            cols,
            rows,
            cells: alloc::vec![STALE; usize::from(cols) * usize::from(rows)],
            cursor: None,
            scope: None,
        })
    }

    /// The surface.
    pub fn surface(&self) -> &S {
        &self.surface
    }

    /// The back buffer.
    pub fn canvas(&self) -> &Canvas {
        &self.canvas
    }

    /// The pixel format.
    pub fn format(&self) -> &Format {
        &self.format
    }

    fn draw_cell(&mut self, x: u16, y: u16) {
        let (ch, attr) = self.cells[usize::from(y) * usize::from(self.cols) + usize::from(x)];
        let fg = PALETTE[usize::from(attr & 0x0F)];
        let bg = PALETTE[usize::from(attr >> 4)];
        let cursor = self.cursor == Some((x, y));
        draw_glyph(
            &mut self.canvas,
            u32::from(x) * GLYPH_W,
            u32::from(y) * GLYPH_H,
            ch,
            fg,
            bg,
            cursor,
        );
    }

    fn in_panel(&self, y: u16) -> bool {
        self.scope
            .as_ref()
            .is_some_and(|(rows, _)| rows.contains(&y))
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
        if self.cells[i] == (ch, attr) {
            // Unchanged: scrolling a mostly empty screen redraws only what moved.
            return;
        }
        self.cells[i] = (ch, attr);
        if !self.in_panel(y) {
            self.draw_cell(x, y);
        }
    }

    fn show_cursor(&mut self, x: u16, y: u16) {
        let at = (x.min(self.cols - 1), y.min(self.rows - 1));
        if self.cursor == Some(at) {
            return;
        }
        let old = self.cursor.replace(at);
        if let Some((ox, oy)) = old
            && !self.in_panel(oy)
        {
            self.draw_cell(ox, oy);
        }
        if !self.in_panel(at.1) {
            self.draw_cell(at.0, at.1);
        }
    }

    fn pixel_size(&self) -> Option<(u32, u32)> {
        Some(self.canvas.size())
    }

    fn put_pixel(&mut self, x: u32, y: u32, rgb: u32) {
        self.canvas.set(x, y, rgb);
        // The cell under it is no longer what `cells` says: the next store redraws it.
        self.forget(x, y);
    }

    fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, rgb: u32) {
        let r = self.canvas.clip(Rect { x, y, w, h });
        self.canvas.fill(r, rgb);
        if r.w > 0 && r.h > 0 {
            for cy in r.y / GLYPH_H..=(r.y + r.h - 1) / GLYPH_H {
                for cx in r.x / GLYPH_W..=(r.x + r.w - 1) / GLYPH_W {
                    self.forget(cx * GLYPH_W, cy * GLYPH_H);
                }
            }
        }
    }

    fn flush(&mut self) -> usize {
        self.canvas.present(&mut self.surface, &self.format)
    }

    fn wave(&mut self, rows: Range<u16>, frame: &Frame<'_>, figures: &Figures) -> bool {
        if self.scope.as_ref().is_none_or(|(r, _)| *r != rows) {
            let panel = Rect {
                x: 0,
                y: u32::from(rows.start) * GLYPH_H,
                w: self.canvas.size().0,
                h: u32::from(rows.end - rows.start) * GLYPH_H,
            };
            let Some(scope) = Scope::open(&mut self.canvas, panel) else {
                return false;
            };
            self.scope = Some((rows, scope));
        }
        if let Some((_, scope)) = &mut self.scope {
            scope.frame(&mut self.canvas, frame, figures);
        }
        true
    }

    fn panel_closed(&mut self, rows: Range<u16>) {
        self.scope = None;
        for y in rows {
            for x in 0..self.cols {
                self.cells[usize::from(y) * usize::from(self.cols) + usize::from(x)] = STALE;
            }
        }
    }
}

impl<S> FbScreen<S> {
    /// Marks the cell holding pixel `(x, y)` as not what `cells` records.
    fn forget(&mut self, x: u32, y: u32) {
        let (cx, cy) = (x / GLYPH_W, y / GLYPH_H);
        if cx < u32::from(self.cols) && cy < u32::from(self.rows) {
            self.cells[cy as usize * usize::from(self.cols) + cx as usize] = STALE;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use hsync_vga_api::{Color, VgaServer, attr};

    use super::*;
    use crate::Console;
    use crate::canvas::tests_support::Mem;

    /// 32-bit xRGB, 10x4 cells (80x64 pixels), a pitch with padding.
    fn geometry() -> FbGeometry {
        FbGeometry {
            width: 80,
            height: 64,
            pitch: 80 * 4 + 16,
            bpp: 32,
            rgb: [(8, 16), (8, 8), (8, 0)],
        }
    }

    fn screen() -> FbScreen<Mem> {
        let g = geometry();
        FbScreen::new(Mem::new((g.pitch * g.height) as usize), g).unwrap()
    }

    /// The pixel at (x, y) in framebuffer memory (what was presented).
    fn pixel(s: &FbScreen<Mem>, x: u32, y: u32) -> u32 {
        let at = (y * (80 * 4 + 16) + x * 4) as usize;
        let b = &s.surface().0[at..at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The cell at (cx, cy) as presented: each pixel's coverage of `fg` over `bg`, recovered
    /// from the green channel.
    fn read_cell(s: &FbScreen<Mem>, cx: u32, cy: u32, fg: u32, bg: u32) -> crate::font::Glyph {
        let (f, b) = (((fg >> 8) & 0xFF) as i32, ((bg >> 8) & 0xFF) as i32);
        core::array::from_fn(|r| {
            core::array::from_fn(|px| {
                let g = ((pixel(s, cx * 8 + px as u32, cy * 16 + r as u32) >> 8) & 0xFF) as i32;
                ((g - b) * 255 / (f - b)).clamp(0, 255) as u8
            })
        })
    }

    /// Coverage equal up to the rounding of the blend.
    fn same(a: &crate::font::Glyph, b: &crate::font::Glyph) -> bool {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .all(|(&x, &y)| x.abs_diff(y) <= 2)
    }

    #[test]
    fn rejects_formats_it_cannot_draw() {
        let mut g = geometry();
        g.bpp = 8;
        assert!(FbScreen::new(Mem::new(0), g).is_err());
        let mut g = geometry();
        g.pitch = 10;
        assert!(FbScreen::new(Mem::new(0), g).is_err());
        let mut g = geometry();
        g.height = 15;
        assert!(FbScreen::new(Mem::new(0), g).is_err());
    }

    #[test]
    fn renders_anti_aliased_glyphs_in_colour() {
        let mut c = Console::new(screen());
        c.clear(0).unwrap();
        c.set_color(0, Color::Yellow, Color::Blue).unwrap();
        let top = c.cursor(0).unwrap().1;
        c.write(0, b"Ha").unwrap();
        let s = c.screen();
        assert_eq!(s.cell(0, top), (b'H', attr(Color::Yellow, Color::Blue)));
        let (fg, bg) = (0xFFFF55, 0x0000AA);
        let cy = u32::from(top);
        assert!(same(&read_cell(s, 0, cy, fg, bg), &glyph(b'H')));
        assert!(same(&read_cell(s, 1, cy, fg, bg), &glyph(b'a')));
        // Blended pixels: neither colour.
        assert!(
            (0..8).any(|x| (0..16).any(|y| {
                let p = pixel(s, 8 + x, cy * 16 + y);
                p != fg && p != bg
            })),
            "no anti-aliased pixel in `a`"
        );
        // Padding after each row is never written.
        assert_eq!(s.surface().0[80 * 4], 0xEE);
        // The cursor (an underline) sits on the next cell, in its foreground colour.
        let mut under = glyph(b' ');
        under[13] = [255; 8];
        under[14] = [255; 8];
        assert!(same(&read_cell(s, 2, cy, PALETTE[7], 0), &under));
    }

    #[test]
    fn scrolls_the_pixels_and_presents_only_what_changed() {
        let mut c = Console::new(screen());
        c.clear(0).unwrap();
        let top = c.cursor(0).unwrap().1;
        let rows = 4 - top;
        for i in 0..rows + 1 {
            c.write(0, std::format!("{i}\n").as_bytes()).unwrap();
        }
        let s = c.screen();
        let fg = PALETTE[7];
        // Two lines scrolled out of the 3-row console region (a newline ends each line).
        assert_eq!(s.cell(0, top).0, b'0' + 2);
        assert!(same(&read_cell(s, 0, u32::from(top), fg, 0), &glyph(b'2')));
        // Writing one glyph presents one cell plus the cursor cells, not the screen.
        c.write(0, b"x").unwrap();
        let bytes = c.screen().canvas().last_present_bytes();
        assert!(
            bytes <= 3 * 16 * 8 * 4,
            "{bytes} bytes presented for one glyph"
        );
    }

    #[test]
    fn pixel_ops_draw_and_clear_repaints() {
        let mut c = Console::new(screen());
        c.clear(0).unwrap();
        assert_eq!(c.pixel_size(0).unwrap(), (80, 64));
        c.put_pixel(0, 79, 63, 0xABCDEF).unwrap();
        assert_eq!(pixel(c.screen(), 79, 63), 0xABCDEF);
        c.fill_rect(0, 8, 16, 100, 100, 0x00FF00).unwrap();
        assert_eq!(pixel(c.screen(), 8, 16), 0x00FF00);
        assert_eq!(pixel(c.screen(), 79, 63), 0x00FF00);
        assert_eq!(pixel(c.screen(), 7, 16), 0x000000);
        c.clear(0).unwrap();
        assert_eq!(
            pixel(c.screen(), 79, 63),
            0x000000,
            "clear repaints drawn pixels"
        );
    }

    /// 640x400 (80x25 cells): the panel's pixels belong to the scope; console text, however
    /// much scrolls, never draws there; closing repaints the rows as console cells.
    #[test]
    fn the_scope_owns_the_panel_pixels() {
        let g = FbGeometry {
            width: 640,
            height: 400,
            pitch: 640 * 4,
            bpp: 32,
            rgb: [(8, 16), (8, 8), (8, 0)],
        };
        let mut c =
            Console::new(FbScreen::new(Mem::new((g.pitch * g.height) as usize), g).unwrap());
        c.clear(0).unwrap();
        c.panel(0, true).unwrap();
        let panel = c.layout().panel().unwrap();
        let top = u32::from(panel.start) * 16;
        let samples: std::vec::Vec<u8> = (0..120i32)
            .flat_map(|i| (((i % 40) - 20) as i16 * 1600).to_le_bytes())
            .collect();
        c.wave(0, 1, &samples).unwrap();
        let before: std::vec::Vec<u8> = c.screen().surface().0[(top * g.pitch) as usize..].to_vec();
        for i in 0..100 {
            c.write(
                0,
                std::format!("line {i} {}\n", "x".repeat(i % 90)).as_bytes(),
            )
            .unwrap();
        }
        assert_eq!(
            &c.screen().surface().0[(top * g.pitch) as usize..],
            &before[..],
            "console output changed panel pixels"
        );
        // A trace pixel of the newest sweep is in the panel.
        let trace = u32::from_le_bytes([0x70, 0xFF, 0x40, 0]);
        assert!(
            before
                .chunks_exact(4)
                .any(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]) == trace)
        );
        c.panel(0, false).unwrap();
        assert!(
            c.screen().surface().0[(top * g.pitch) as usize..]
                .chunks_exact(4)
                .all(|p| p[..3] == [0, 0, 0]),
            "the panel rows are blank console cells again"
        );
    }

    #[test]
    fn a_24_bit_odd_pitch_framebuffer_draws() {
        let g = FbGeometry {
            width: 80,
            height: 64,
            pitch: 80 * 3 + 5,
            bpp: 24,
            rgb: [(8, 16), (8, 8), (8, 0)],
        };
        let s = FbScreen::new(Mem::new((g.pitch * g.height) as usize), g).unwrap();
        let mut c = Console::new(s);
        c.clear(0).unwrap();
        c.set_color(0, Color::White, Color::Black).unwrap();
        c.write(0, b"\xDB").unwrap();
        let top = u32::from(c.cursor(0).unwrap().1);
        let at = (top * 16 * g.pitch) as usize;
        assert_eq!(&c.screen().surface().0[at..at + 3], &[0xFF, 0xFF, 0xFF]);
        assert_eq!(
            c.screen().surface().0[(g.pitch - 1) as usize],
            0xEE,
            "padding"
        );
    }
}
