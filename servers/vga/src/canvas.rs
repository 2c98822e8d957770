//! The back buffer: the whole screen as 0xRRGGBB words in the server's own memory, with a
//! record of what changed since the last present.
//!
//! Everything is drawn here first (cells, the status line, the oscilloscope), never into the
//! framebuffer directly, so the framebuffer only ever sees finished pixels (no half-drawn
//! frame) and only the damaged parts are copied out. Damage is kept as one span of columns per
//! pixel row (`x0..x1`, the union of the rectangles damaged on that row): [`Canvas::present`]
//! copies each row's span, converted to the framebuffer's pixel format, and forgets it. A cell
//! redraw costs 8x16 pixels; a full-width wave panel costs its rows.
//!
//! [`Canvas`] is also an `embedded-graphics` `DrawTarget` (`Rgb888`), so lines, rectangles and
//! styles from that crate draw into it (clipped to the screen, damage recorded).

use alloc::vec::Vec;
use core::convert::Infallible;

use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Pixel, Size};

use hsync_root_api::FbGeometry;

/// Where the pixels go: framebuffer memory.
pub trait Surface {
    /// Stores `bytes` at byte `offset` (the range is always inside the framebuffer).
    fn write(&mut self, offset: usize, bytes: &[u8]);
}

/// A framebuffer's pixel format: bytes per pixel and where each channel's bits go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// Bytes per pixel: 2, 3 or 4.
    pub bytes: usize,
    /// (size, shift) of red, green, blue, sizes at most 8.
    pub rgb: [(u8, u8); 3],
    /// Bytes per row.
    pub pitch: usize,
}

impl Format {
    /// The format of `g`, or why it cannot be drawn.
    pub fn of(g: &FbGeometry) -> Result<Format, &'static str> {
        let bytes = match g.bpp {
            16 | 24 | 32 => usize::from(g.bpp / 8),
            _ => return Err("only 16, 24 and 32 bits per pixel are drawn"),
        };
        if u64::from(g.pitch) < u64::from(g.width) * bytes as u64 {
            return Err("the pitch is shorter than a row of pixels");
        }
        for (size, shift) in g.rgb {
            if size == 0 || size > 8 || u32::from(size) + u32::from(shift) > u32::from(g.bpp) {
                return Err("a colour mask is empty, wider than 8 bits or outside the pixel");
            }
        }
        Ok(Format {
            bytes,
            rgb: g.rgb,
            pitch: g.pitch as usize,
        })
    }

    /// `rgb` (0xRRGGBB) as the framebuffer stores it, little-endian (the first `bytes` count).
    pub fn encode(&self, rgb: u32) -> [u8; 4] {
        let channels = [(rgb >> 16) & 0xFF, (rgb >> 8) & 0xFF, rgb & 0xFF];
        let mut px = 0u32;
        for (c, (size, shift)) in channels.into_iter().zip(self.rgb) {
            px |= (c >> (8 - u32::from(size))) << shift;
        }
        px.to_le_bytes()
    }

    /// Whether pixels are stored exactly as the back buffer holds them (32-bit xRGB).
    fn is_xrgb(&self) -> bool {
        self.bytes == 4 && self.rgb == [(8, 16), (8, 8), (8, 0)]
    }
}

/// A rectangle in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// No damage on a row.
const CLEAN: (u32, u32) = (u32::MAX, 0);

/// The back buffer (see the module documentation).
pub struct Canvas {
    width: u32,
    height: u32,
    px: Vec<u32>,
    /// Per row: the damaged columns `x0..x1` (`x0 >= x1`: none).
    damage: Vec<(u32, u32)>,
    /// Bytes the last [`Canvas::present`] copied.
    last_present: usize,
}

impl Canvas {
    /// A black canvas of `width` x `height`, all of it damaged (the first present fills the
    /// whole framebuffer).
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            px: alloc::vec![0; width as usize * height as usize],
            damage: alloc::vec![(0, width); height as usize],
            last_present: 0,
        }
    }

    /// Width and height.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The pixel at `(x, y)` (0 outside).
    pub fn pixel(&self, x: u32, y: u32) -> u32 {
        if x < self.width && y < self.height {
            self.px[(y * self.width + x) as usize]
        } else {
            0
        }
    }

    /// Row `y` from column `x`, `w` pixels (clipped), for drawing a span at once.
    pub fn row_mut(&mut self, x: u32, y: u32, w: u32) -> &mut [u32] {
        let r = self.clip(Rect { x, y, w, h: 1 });
        if r.w == 0 || r.h == 0 {
            return &mut [];
        }
        self.damage_clipped(r);
        let at = (r.y * self.width + r.x) as usize;
        &mut self.px[at..at + r.w as usize]
    }

    /// Sets one pixel (ignored outside).
    pub fn set(&mut self, x: u32, y: u32, rgb: u32) {
        if x < self.width && y < self.height {
            self.px[(y * self.width + x) as usize] = rgb;
            let d = &mut self.damage[y as usize];
            *d = (d.0.min(x), d.1.max(x + 1));
        }
    }

    /// Fills `r` (clipped) with `rgb`.
    pub fn fill(&mut self, r: Rect, rgb: u32) {
        let r = self.clip(r);
        for y in r.y..r.y + r.h {
            let at = (y * self.width + r.x) as usize;
            self.px[at..at + r.w as usize].fill(rgb);
        }
        self.damage_clipped(r);
    }

    /// `r` cut to the canvas.
    pub fn clip(&self, r: Rect) -> Rect {
        let x = r.x.min(self.width);
        let y = r.y.min(self.height);
        Rect {
            x,
            y,
            w: r.w.min(self.width - x),
            h: r.h.min(self.height - y),
        }
    }

    /// Marks `r` (clipped) as changed.
    pub fn damage(&mut self, r: Rect) {
        let r = self.clip(r);
        self.damage_clipped(r);
    }

    fn damage_clipped(&mut self, r: Rect) {
        if r.w == 0 {
            return;
        }
        for d in &mut self.damage[r.y as usize..(r.y + r.h) as usize] {
            *d = (d.0.min(r.x), d.1.max(r.x + r.w));
        }
    }

    /// Pixels damaged since the last present.
    pub fn damaged_pixels(&self) -> u64 {
        self.damage
            .iter()
            .map(|&(a, b)| u64::from(b.saturating_sub(a)))
            .sum()
    }

    /// Bytes the last [`Canvas::present`] wrote to the framebuffer.
    pub fn last_present_bytes(&self) -> usize {
        self.last_present
    }

    /// Copies every damaged span to `surface` in `format` and clears the damage; returns the
    /// bytes written.
    pub fn present(&mut self, surface: &mut impl Surface, format: &Format) -> usize {
        let mut line: Vec<u8> = Vec::new();
        let mut written = 0;
        for y in 0..self.height as usize {
            let (x0, x1) = self.damage[y];
            if x0 >= x1 {
                continue;
            }
            self.damage[y] = CLEAN;
            let src = &self.px[y * self.width as usize..][x0 as usize..x1 as usize];
            line.clear();
            if format.is_xrgb() {
                for &p in src {
                    line.extend_from_slice(&p.to_le_bytes());
                }
            } else {
                for &p in src {
                    line.extend_from_slice(&format.encode(p)[..format.bytes]);
                }
            }
            surface.write(y * format.pitch + x0 as usize * format.bytes, &line);
            written += line.len();
        }
        self.last_present = written;
        written
    }
}

fn rgb888(c: Rgb888) -> u32 {
    (u32::from(c.r()) << 16) | (u32::from(c.g()) << 8) | u32::from(c.b())
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        for Pixel(p, c) in pixels {
            if let (Ok(x), Ok(y)) = (u32::try_from(p.x), u32::try_from(p.y)) {
                self.set(x, y, rgb888(c));
            }
        }
        Ok(())
    }
}

/// Framebuffer memory for host tests.
#[cfg(test)]
pub(crate) mod tests_support {
    extern crate std;

    /// Framebuffer memory in a vector, and the bytes written to it.
    pub struct Mem(pub std::vec::Vec<u8>, pub usize);

    impl Mem {
        /// `len` bytes of 0xEE (so unwritten bytes show).
        pub fn new(len: usize) -> Mem {
            Mem(std::vec![0xEE; len], 0)
        }
    }

    impl super::Surface for Mem {
        fn write(&mut self, offset: usize, bytes: &[u8]) {
            self.0[offset..offset + bytes.len()].copy_from_slice(bytes);
            self.1 += bytes.len();
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use embedded_graphics::prelude::*;
    use embedded_graphics::primitives::{Line, PrimitiveStyle};

    use super::tests_support::Mem;
    use super::*;

    fn geometry(bpp: u8, pitch: u32) -> FbGeometry {
        FbGeometry {
            width: 10,
            height: 4,
            pitch,
            bpp,
            rgb: [(8, 16), (8, 8), (8, 0)],
        }
    }

    #[test]
    fn formats() {
        let f = Format::of(&geometry(32, 44)).unwrap();
        assert_eq!(f.encode(0x123456), [0x56, 0x34, 0x12, 0]);
        let f16 = Format::of(&FbGeometry {
            bpp: 16,
            rgb: [(5, 11), (6, 5), (5, 0)],
            ..geometry(16, 20)
        })
        .unwrap();
        assert_eq!(f16.encode(0xFFFFFF)[..2], [0xFF, 0xFF]);
        assert_eq!(f16.encode(0xFF0000)[..2], 0xF800u16.to_le_bytes());
        // BGR order (masks the other way round).
        let bgr = Format::of(&FbGeometry {
            rgb: [(8, 0), (8, 8), (8, 16)],
            ..geometry(32, 40)
        })
        .unwrap();
        assert_eq!(bgr.encode(0x123456), [0x12, 0x34, 0x56, 0]);
        assert!(Format::of(&geometry(8, 10)).is_err());
        assert!(
            Format::of(&geometry(32, 39)).is_err(),
            "pitch shorter than a row"
        );
        assert!(
            Format::of(&FbGeometry {
                rgb: [(8, 28), (8, 8), (8, 0)],
                ..geometry(32, 40)
            })
            .is_err(),
            "a mask past the pixel"
        );
    }

    #[test]
    fn present_copies_only_damage_in_the_format() {
        // 24 bpp with an odd pitch (31 bytes for 10 pixels of 3).
        let f = Format::of(&geometry(24, 31)).unwrap();
        let mut c = Canvas::new(10, 4);
        let mut mem = Mem(std::vec![0xEE; 31 * 4], 0);
        // First present: everything (a fresh canvas is all damage).
        assert_eq!(c.present(&mut mem, &f), 10 * 3 * 4);
        assert_eq!(mem.0[30], 0xEE, "padding after a row is never written");
        assert_eq!(c.damaged_pixels(), 0);
        assert_eq!(
            c.present(&mut mem, &f),
            0,
            "nothing changed, nothing copied"
        );
        c.fill(
            Rect {
                x: 2,
                y: 1,
                w: 3,
                h: 2,
            },
            0xAABBCC,
        );
        c.set(9, 3, 0x010203);
        assert_eq!(c.damaged_pixels(), 3 + 3 + 1);
        mem.1 = 0;
        assert_eq!(c.present(&mut mem, &f), (3 + 3 + 1) * 3);
        assert_eq!(mem.1, 21);
        assert_eq!(&mem.0[31 + 6..31 + 9], &[0xCC, 0xBB, 0xAA]);
        assert_eq!(&mem.0[31 * 2 + 12..31 * 2 + 15], &[0xCC, 0xBB, 0xAA]);
        assert_eq!(
            &mem.0[31 * 2 + 15..31 * 2 + 18],
            &[0, 0, 0],
            "outside the rect"
        );
        assert_eq!(&mem.0[31 * 3 + 27..31 * 3 + 30], &[3, 2, 1]);
    }

    #[test]
    fn clipping_and_the_draw_target() {
        let mut c = Canvas::new(10, 4);
        let mut mem = Mem(std::vec![0; 40 * 4], 0);
        let f = Format::of(&geometry(32, 40)).unwrap();
        c.present(&mut mem, &f);
        c.fill(
            Rect {
                x: 8,
                y: 3,
                w: u32::MAX,
                h: u32::MAX,
            },
            0xFFFFFF,
        );
        assert_eq!(c.damaged_pixels(), 2);
        assert_eq!(c.pixel(9, 3), 0xFFFFFF);
        assert_eq!(c.pixel(10, 3), 0, "outside reads as black");
        c.present(&mut mem, &f);
        // A line from off-screen to on-screen: clipped, drawn, damaged.
        Line::new(Point::new(-5, 0), Point::new(20, 0))
            .into_styled(PrimitiveStyle::with_stroke(Rgb888::new(0, 255, 0), 1))
            .draw(&mut c)
            .unwrap();
        assert!((0..10).all(|x| c.pixel(x, 0) == 0x00FF00));
        assert_eq!(c.damaged_pixels(), 10);
        assert!(c.row_mut(3, 9, 5).is_empty(), "row past the bottom");
        assert_eq!(c.row_mut(8, 1, 5).len(), 2);
    }
}
