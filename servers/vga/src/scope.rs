//! HSYNC-Wave, the wave panel: the phase engine's waveform as the phase server sends it
//! (samples of the sine of its display phase), drawn in the panel rows the layout gives it.
//!
//! - On a framebuffer ([`Scope`]): a pixel oscilloscope. A readout row (phase state, steps per
//!   second, the constant-time figures the phase server measured), a graticule with axis
//!   labels, and the trace as connected line segments (`embedded-graphics` lines) at
//!   pixel resolution into a *phosphor* layer of 8-bit intensities that fades by a quarter
//!   every frame, so the previous sweeps glow out behind the current one. The layer is composed
//!   over the graticule into the back buffer ([`Canvas`]) and only the panel is presented.
//! - In text mode ([`text_frame`]): CP437 cells. Each cell row holds two dots of height with
//!   the half blocks `▀` `▄` and the full block `█`, so 8 plot rows give 16 levels; the
//!   graticule is drawn with `─` `│` `┼`; each column's dots reach the neighbour's, so the trace
//!   is connected.

use alloc::vec::Vec;
use core::convert::Infallible;
use core::fmt::Write;

use embedded_graphics::Drawable;
use embedded_graphics::pixelcolor::{Gray8, GrayColor, Rgb888};
use embedded_graphics::prelude::{
    DrawTarget, OriginDimensions, Pixel, Point, Primitive, RgbColor, Size,
};
use embedded_graphics::primitives::{Line, PrimitiveStyle, Rectangle};

use crate::canvas::{Canvas, Rect};
use crate::font::{GLYPH_H, GLYPH_W};

/// The most samples one frame carries.
pub const MAX_SAMPLES: usize = hsync_vga_api::MAX_WAVE_SAMPLES;
/// A sample of full amplitude (+1.0).
pub const SAMPLE_ONE: i32 = 32767;
/// A figure that was not measured.
pub const NOT_MEASURED: u64 = hsync_vga_api::NOT_MEASURED;

/// What the phase server reports besides the samples (each [`NOT_MEASURED`] until it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Figures {
    /// Phase steps taken per second (the server's shared phase), over the last second.
    pub steps_per_s: u64,
    /// TSC cycles per transformed word, x100, in the phase server's last timing run.
    pub cycles_per_word_x100: u64,
    /// |t| of the phase server's last dudect-style run, x100.
    pub dudect_t_x100: u64,
    /// Samples that run took.
    pub dudect_samples: u64,
}

impl Default for Figures {
    fn default() -> Figures {
        Figures {
            steps_per_s: NOT_MEASURED,
            cycles_per_word_x100: NOT_MEASURED,
            dudect_t_x100: NOT_MEASURED,
            dudect_samples: NOT_MEASURED,
        }
    }
}

/// One frame: the phase at the left edge and the samples across the panel.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// The phase state (raw 64-bit turn fraction) the frame shows.
    pub phase: u64,
    /// Samples, left to right, in `-SAMPLE_ONE..=SAMPLE_ONE`.
    pub samples: &'a [i16],
}

/// A fixed-point value x100 as `12.34`.
struct Hundredths(u64);

impl core::fmt::Display for Hundredths {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// The readout line: phase state, rate, constant-time figures (only the measured ones).
pub fn readout(out: &mut impl Write, phase: u64, f: &Figures) -> core::fmt::Result {
    write!(out, "HSYNC-Wave  phase {phase:#018x}")?;
    if f.steps_per_s != NOT_MEASURED {
        write!(out, "  steps/s {}", f.steps_per_s)?;
    }
    if f.cycles_per_word_x100 != NOT_MEASURED {
        write!(out, "  cycles/word {}", Hundredths(f.cycles_per_word_x100))?;
    }
    if f.dudect_t_x100 != NOT_MEASURED {
        write!(out, "  dudect |t| {}", Hundredths(f.dudect_t_x100))?;
        if f.dudect_samples != NOT_MEASURED {
            write!(out, " ({} samples)", f.dudect_samples)?;
        }
    }
    Ok(())
}

/// The sample at fraction `i / (n - 1)` of the way across, for `n` output points, linearly
/// interpolated; in `-SAMPLE_ONE..=SAMPLE_ONE`.
fn resample(samples: &[i16], i: usize, n: usize) -> i32 {
    match samples.len() {
        0 => 0,
        1 => i32::from(samples[0]),
        len => {
            let n = n.max(2) as i64;
            // Position in sample units, 16.16 fixed point.
            let pos = ((i as i64 * (len as i64 - 1)) << 16) / (n - 1);
            let k = (pos >> 16) as usize;
            let frac = pos & 0xFFFF;
            let a = i64::from(samples[k.min(len - 1)]);
            let b = i64::from(samples[(k + 1).min(len - 1)]);
            (a + (((b - a) * frac) >> 16)) as i32
        }
    }
}

/// Row `0..levels` of value `s` (+1 at the top, -1 at the bottom), rounded.
fn level(s: i32, levels: u32) -> u32 {
    let top = i64::from(levels.saturating_sub(1));
    let s = i64::from(s.clamp(-SAMPLE_ONE, SAMPLE_ONE));
    let one = i64::from(SAMPLE_ONE);
    (((one - s) * top + one) / (2 * one)) as u32
}

// ---- Text mode ------------------------------------------------------------------------------

/// Text-mode panel attributes: trace, graticule, readout.
pub const TEXT_TRACE: u8 = 0x0A;
/// Graticule and blank panel cells (dark grey on black).
pub const TEXT_GRID: u8 = 0x08;
/// The readout row (black on cyan).
pub const TEXT_READOUT: u8 = 0x30;

/// One text-mode frame: `cols` x `rows` cells (the readout row first), as (glyph, attribute)
/// written through `put`.
pub fn text_frame(
    cols: u16,
    rows: u16,
    frame: &Frame<'_>,
    figures: &Figures,
    mut put: impl FnMut(u16, u16, u8, u8),
) {
    if rows == 0 || cols == 0 {
        return;
    }
    let mut line = alloc::string::String::new();
    let _ = readout(&mut line, frame.phase, figures);
    let bytes = line.as_bytes();
    for x in 0..cols {
        let ch = bytes.get(usize::from(x)).copied().unwrap_or(b' ');
        put(x, 0, ch, TEXT_READOUT);
    }
    let plot_rows = rows - 1;
    if plot_rows == 0 {
        return;
    }
    let dots = u32::from(plot_rows) * 2;
    let axis = plot_rows / 2;
    // Each column's dots: from its own level up to (not including) the previous column's.
    let mut prev: Option<u32> = None;
    let mut col_dots: Vec<(u32, u32)> = Vec::with_capacity(usize::from(cols));
    for x in 0..usize::from(cols) {
        let y = level(resample(frame.samples, x, usize::from(cols)), dots);
        let span = match prev {
            Some(p) if p + 1 < y => (p + 1, y),
            Some(p) if y + 1 < p => (y, p - 1),
            _ => (y, y),
        };
        col_dots.push(span);
        prev = Some(y);
    }
    for (x, &(lo, hi)) in col_dots.iter().enumerate() {
        let x16 = x as u16;
        for r in 0..plot_rows {
            let (top, bottom) = (u32::from(r) * 2, u32::from(r) * 2 + 1);
            let on = |d: u32| lo <= d && d <= hi;
            let cell = match (on(top), on(bottom)) {
                (true, true) => (0xDB, TEXT_TRACE),
                (true, false) => (0xDF, TEXT_TRACE),
                (false, true) => (0xDC, TEXT_TRACE),
                (false, false) => {
                    let grid_col = x.is_multiple_of(10);
                    match (r == axis, grid_col) {
                        (true, true) => (0xC5, TEXT_GRID),
                        (true, false) => (0xC4, TEXT_GRID),
                        (false, true) => (0xB3, TEXT_GRID),
                        (false, false) => (b' ', TEXT_GRID),
                    }
                }
            };
            put(x16, r + 1, cell.0, cell.1);
        }
    }
}

// ---- Framebuffer ----------------------------------------------------------------------------

/// The panel's background.
pub const SCOPE_BG: u32 = 0x000A0C;
/// Graticule lines, the centre axes and the border.
const GRID: u32 = 0x103828;
const AXIS: u32 = 0x1F6048;
const BORDER: u32 = 0x2F8060;
/// Label and readout colours.
const LABEL: u32 = 0x7FBFA0;
const READOUT_BG: u32 = 0x0F2A20;
const READOUT_FG: u32 = 0xCFFFE0;
/// The trace at full intensity: green 0xFF (only the newest sweep reaches it).
pub const TRACE: (u32, u32, u32) = (0x40, 0xFF, 0x70);
/// Graticule divisions across and down.
const DIV_X: u32 = 10;
const DIV_Y: u32 = 8;
/// Left margin for the amplitude labels (5 glyphs) and right margin, in pixels.
const MARGIN_L: u32 = 6 * GLYPH_W;
const MARGIN_R: u32 = GLYPH_W;

/// An 8-bit layer as an `embedded-graphics` target (the phosphor).
struct Layer<'a> {
    w: u32,
    h: u32,
    v: &'a mut [u8],
}

impl OriginDimensions for Layer<'_> {
    fn size(&self) -> Size {
        Size::new(self.w, self.h)
    }
}

impl DrawTarget for Layer<'_> {
    type Color = Gray8;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Gray8>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        for Pixel(p, c) in pixels {
            if let (Ok(x), Ok(y)) = (u32::try_from(p.x), u32::try_from(p.y))
                && x < self.w
                && y < self.h
            {
                let at = (y * self.w + x) as usize;
                self.v[at] = self.v[at].max(c.luma());
            }
        }
        Ok(())
    }
}

/// A colour layer as an `embedded-graphics` target (the graticule).
struct Base<'a> {
    w: u32,
    h: u32,
    px: &'a mut [u32],
}

impl OriginDimensions for Base<'_> {
    fn size(&self) -> Size {
        Size::new(self.w, self.h)
    }
}

impl DrawTarget for Base<'_> {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        for Pixel(p, c) in pixels {
            if let (Ok(x), Ok(y)) = (u32::try_from(p.x), u32::try_from(p.y))
                && x < self.w
                && y < self.h
            {
                self.px[(y * self.w + x) as usize] =
                    (u32::from(c.r()) << 16) | (u32::from(c.g()) << 8) | u32::from(c.b());
            }
        }
        Ok(())
    }
}

fn rgb(c: u32) -> Rgb888 {
    Rgb888::new((c >> 16) as u8, (c >> 8) as u8, c as u8)
}

/// Draws `text` with the console font at pixel `(x, y)` in `fg` on `bg`, clipped to
/// `max_x`; returns the x after the last glyph.
pub fn draw_text(c: &mut Canvas, x: u32, y: u32, max_x: u32, text: &str, fg: u32, bg: u32) -> u32 {
    let mut at = x;
    for b in text.bytes() {
        if at + GLYPH_W > max_x {
            break;
        }
        crate::fb::draw_glyph(c, at, y, b, fg, bg, false);
        at += GLYPH_W;
    }
    at
}

/// The pixel oscilloscope of one panel (see the module documentation).
pub struct Scope {
    /// The panel in screen pixels.
    panel: Rect,
    /// The plot area in screen pixels (inside the graticule border).
    plot: Rect,
    base: Vec<u32>,
    phosphor: Vec<u8>,
    points: Vec<Point>,
}

impl Scope {
    /// A scope filling `panel` (at least 3 glyph rows high and 16 glyphs wide, else `None`);
    /// draws the empty panel (readout band, graticule, labels) into `c`.
    pub fn open(c: &mut Canvas, panel: Rect) -> Option<Scope> {
        let panel = c.clip(panel);
        if panel.h < 3 * GLYPH_H || panel.w < MARGIN_L + MARGIN_R + 10 * GLYPH_W {
            return None;
        }
        let plot = Rect {
            x: panel.x + MARGIN_L,
            y: panel.y + GLYPH_H + 4,
            w: panel.w - MARGIN_L - MARGIN_R,
            h: panel.h - 2 * GLYPH_H - 8,
        };
        let n = plot.w as usize * plot.h as usize;
        let mut s = Scope {
            panel,
            plot,
            base: alloc::vec![SCOPE_BG; n],
            phosphor: alloc::vec![0; n],
            points: Vec::with_capacity(MAX_SAMPLES),
        };
        s.draw_graticule();
        c.fill(panel, SCOPE_BG);
        s.draw_labels(c);
        s.compose(c);
        Some(s)
    }

    /// The panel and the plot area, in screen pixels.
    pub fn rects(&self) -> (Rect, Rect) {
        (self.panel, self.plot)
    }

    fn draw_graticule(&mut self) {
        let (w, h) = (self.plot.w, self.plot.h);
        let mut t = Base {
            w,
            h,
            px: &mut self.base,
        };
        let line = |a: (u32, u32), b: (u32, u32), colour: u32, t: &mut Base<'_>| {
            let _ = Line::new(
                Point::new(a.0 as i32, a.1 as i32),
                Point::new(b.0 as i32, b.1 as i32),
            )
            .into_styled(PrimitiveStyle::with_stroke(rgb(colour), 1))
            .draw(t);
        };
        for i in 1..DIV_X {
            let x = i * (w - 1) / DIV_X;
            let colour = if i == DIV_X / 2 { AXIS } else { GRID };
            line((x, 0), (x, h - 1), colour, &mut t);
        }
        for i in 1..DIV_Y {
            let y = i * (h - 1) / DIV_Y;
            let colour = if i == DIV_Y / 2 { AXIS } else { GRID };
            line((0, y), (w - 1, y), colour, &mut t);
        }
        let _ = Rectangle::new(Point::zero(), Size::new(w, h))
            .into_styled(PrimitiveStyle::with_stroke(rgb(BORDER), 1))
            .draw(&mut t);
    }

    fn draw_labels(&self, c: &mut Canvas) {
        let (p, plot) = (self.panel, self.plot);
        let right = p.x + p.w;
        // Amplitude: +1 at the top, 0 at the axis, -1 at the bottom (the sine's range).
        for (label, y) in [
            ("+1.0", plot.y),
            (" 0.0", plot.y + plot.h / 2),
            ("-1.0", plot.y + plot.h - 1),
        ] {
            let ty = y.saturating_sub(GLYPH_H / 2).max(p.y + GLYPH_H);
            draw_text(c, p.x + 4, ty, plot.x, label, LABEL, SCOPE_BG);
        }
        // Time: the display phase across the panel, in turns (two periods).
        let ly = plot.y + plot.h + 3;
        for (i, label) in ["0", "0.5", "1", "1.5", "2 turns"].iter().enumerate() {
            let x = plot.x + i as u32 * (plot.w - 1) / 4;
            let x = if i == 4 {
                (plot.x + plot.w).saturating_sub(label.len() as u32 * GLYPH_W)
            } else {
                x.saturating_sub(label.len() as u32 * GLYPH_W / 2)
                    .max(plot.x)
            };
            draw_text(c, x, ly, right, label, LABEL, SCOPE_BG);
        }
    }

    /// Draws one frame: fades the phosphor, draws the trace, composes the plot and the
    /// readout into `c`.
    pub fn frame(&mut self, c: &mut Canvas, frame: &Frame<'_>, figures: &Figures) {
        for v in &mut self.phosphor {
            *v -= (*v >> 2) + u8::from(*v > 0 && *v < 4);
        }
        let (w, h) = (self.plot.w, self.plot.h);
        // Samples across the plot; the trace keeps one pixel off the border.
        let n = frame.samples.len().clamp(2, MAX_SAMPLES);
        self.points.clear();
        for i in 0..n {
            let x = (i as u32 * (w - 3)) / (n as u32 - 1) + 1;
            let y = level(resample(frame.samples, i, n), h - 2) + 1;
            self.points.push(Point::new(x as i32, y as i32));
        }
        let mut layer = Layer {
            w,
            h,
            v: &mut self.phosphor,
        };
        // Connected segments, two pixels thick (the second one pixel lower). One-pixel lines
        // are Bresenham runs; the crate's thick polyline scans its whole bounding box per
        // scanline, 20x slower here.
        let style = PrimitiveStyle::with_stroke(Gray8::WHITE, 1);
        for pair in self.points.windows(2) {
            for dy in [0, 1] {
                let d = Point::new(0, dy);
                let _ = Line::new(pair[0] + d, pair[1] + d)
                    .into_styled(style)
                    .draw(&mut layer);
            }
        }
        self.compose(c);
        let mut line = alloc::string::String::new();
        let _ = readout(&mut line, frame.phase, figures);
        let p = self.panel;
        c.fill(Rect { h: GLYPH_H, ..p }, READOUT_BG);
        draw_text(c, p.x + 4, p.y, p.x + p.w, &line, READOUT_FG, READOUT_BG);
    }

    /// The phosphor over the graticule, into the plot area of `c`.
    fn compose(&self, c: &mut Canvas) {
        let (w, plot) = (self.plot.w as usize, self.plot);
        for y in 0..plot.h as usize {
            let base = &self.base[y * w..(y + 1) * w];
            let phos = &self.phosphor[y * w..(y + 1) * w];
            let row = c.row_mut(plot.x, plot.y + y as u32, plot.w);
            for ((out, &b), &v) in row.iter_mut().zip(base).zip(phos) {
                *out = if v == 0 { b } else { glow(b, v) };
            }
        }
    }
}

/// The phosphor at intensity `v` over background `b` (each channel the brighter of the two).
fn glow(b: u32, v: u8) -> u32 {
    let v = u32::from(v);
    let (r, g, bl) = (TRACE.0 * v / 255, TRACE.1 * v / 255, TRACE.2 * v / 255);
    let ch = |shift: u32, t: u32| ((b >> shift) & 0xFF).max(t) << shift;
    ch(16, r) | ch(8, g) | ch(0, bl)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::String;
    use std::vec;

    use super::*;

    fn sine_samples(n: usize, shift: f64) -> std::vec::Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / (n - 1) as f64 * 2.0 + shift;
                ((t * core::f64::consts::TAU).sin() * 32767.0) as i16
            })
            .collect()
    }

    #[test]
    fn readout_shows_only_what_was_measured() {
        let mut s = String::new();
        readout(&mut s, 0x10, &Figures::default()).unwrap();
        assert_eq!(s, "HSYNC-Wave  phase 0x0000000000000010");
        let mut s = String::new();
        let f = Figures {
            steps_per_s: 1200,
            cycles_per_word_x100: 1234,
            dudect_t_x100: 105,
            dudect_samples: 20000,
        };
        readout(&mut s, 0, &f).unwrap();
        assert!(s.ends_with("steps/s 1200  cycles/word 12.34  dudect |t| 1.05 (20000 samples)"));
    }

    #[test]
    fn resampling_and_levels() {
        let s = [0i16, 32767, -32767];
        assert_eq!(resample(&s, 0, 5), 0);
        assert_eq!(resample(&s, 2, 5), 32767);
        assert_eq!(resample(&s, 4, 5), -32767);
        assert_eq!(resample(&s, 1, 5), 16383);
        assert_eq!(resample(&[], 3, 5), 0);
        assert_eq!(level(SAMPLE_ONE, 16), 0);
        assert_eq!(level(-SAMPLE_ONE, 16), 15);
        assert_eq!(level(0, 17), 8);
        assert_eq!(level(i32::MIN, 16), 15, "clamped");
    }

    /// The text panel: the readout row, then half-block dots; every column has a dot and each
    /// column's dots touch the previous column's.
    #[test]
    fn text_panel_is_a_connected_half_block_trace() {
        let (cols, rows) = (80u16, 9u16);
        let mut cells = vec![(0u8, 0u8); 80 * 9];
        let samples = sine_samples(200, 0.0);
        let frame = Frame {
            phase: 7,
            samples: &samples,
        };
        text_frame(cols, rows, &frame, &Figures::default(), |x, y, ch, a| {
            cells[usize::from(y) * 80 + usize::from(x)] = (ch, a);
        });
        let top: String = cells[..80].iter().map(|c| c.0 as char).collect();
        assert!(top.starts_with("HSYNC-Wave  phase 0x0000000000000007"));
        assert!(cells[..80].iter().all(|c| c.1 == TEXT_READOUT));
        let mut prev: Option<(u32, u32)> = None;
        for x in 0..80 {
            let mut dots = std::vec::Vec::new();
            for r in 0..8u32 {
                let (ch, a) = cells[(r as usize + 1) * 80 + x];
                let (t, b) = match ch {
                    0xDB => (true, true),
                    0xDF => (true, false),
                    0xDC => (false, true),
                    _ => {
                        assert_eq!(a, TEXT_GRID, "({x}, {r})");
                        assert!(
                            matches!(ch, b' ' | 0xC4 | 0xB3 | 0xC5),
                            "({x}, {r}): {ch:#x}"
                        );
                        (false, false)
                    }
                };
                if t || b {
                    assert_eq!(a, TEXT_TRACE);
                }
                if t {
                    dots.push(r * 2);
                }
                if b {
                    dots.push(r * 2 + 1);
                }
            }
            assert!(!dots.is_empty(), "column {x} has no trace");
            let (lo, hi) = (dots[0], *dots.last().unwrap());
            assert_eq!(dots.len() as u32, hi - lo + 1, "column {x} is one run");
            if let Some((plo, phi)) = prev {
                assert!(
                    lo <= phi + 1 && plo <= hi + 1,
                    "columns {} and {x} do not touch",
                    x - 1
                );
            }
            prev = Some((lo, hi));
        }
        // A sine of full amplitude reaches the top and the bottom dot.
        let all: std::vec::Vec<u8> = cells[80..].iter().map(|c| c.0).collect();
        assert!(cells[80..160].iter().any(|c| matches!(c.0, 0xDB | 0xDF)));
        assert!(cells[8 * 80..].iter().any(|c| matches!(c.0, 0xDB | 0xDC)));
        assert!(all.contains(&0xC4), "the axis shows");
    }

    /// Columns of the plot holding pixels of the newest sweep (green channel 0xFF).
    fn trace_rows(c: &Canvas, plot: Rect, x: u32) -> std::vec::Vec<u32> {
        (plot.y..plot.y + plot.h)
            .filter(|&y| (c.pixel(x, y) >> 8) & 0xFF == TRACE.1)
            .collect()
    }

    #[test]
    fn pixel_scope_draws_a_connected_trace_with_fading_sweeps() {
        let mut c = Canvas::new(1024, 768);
        let panel = Rect {
            x: 0,
            y: 480,
            w: 1024,
            h: 288,
        };
        let mut s = Scope::open(&mut c, panel).unwrap();
        let (_, plot) = s.rects();
        assert!(plot.x >= panel.x && plot.y > panel.y && plot.y + plot.h < panel.y + panel.h);
        let frame_a = sine_samples(240, 0.0);
        s.frame(
            &mut c,
            &Frame {
                phase: 1,
                samples: &frame_a,
            },
            &Figures::default(),
        );
        // Every column between the border columns has trace pixels; neighbours touch.
        let mut prev: Option<(u32, u32)> = None;
        for x in plot.x + 1..plot.x + plot.w - 2 {
            let ys = trace_rows(&c, plot, x);
            assert!(!ys.is_empty(), "column {x} has no trace");
            let (lo, hi) = (ys[0], *ys.last().unwrap());
            if let Some((plo, phi)) = prev {
                assert!(
                    lo <= phi + 1 && plo <= hi + 1,
                    "columns {} and {x} apart",
                    x - 1
                );
            }
            prev = Some((lo, hi));
        }
        // The graticule shows where the trace is not, and nothing is drawn outside the panel.
        assert_eq!(c.pixel(plot.x, plot.y + 3), BORDER);
        assert_eq!(c.pixel(5, 100), 0);
        // A second sweep moved: the first fades (no longer full green) but still glows.
        let frame_b = sine_samples(240, 0.25);
        let x = plot.x + plot.w / 3;
        let old = trace_rows(&c, plot, x);
        s.frame(
            &mut c,
            &Frame {
                phase: 2,
                samples: &frame_b,
            },
            &Figures::default(),
        );
        let new = trace_rows(&c, plot, x);
        let faded: std::vec::Vec<u32> = old.iter().copied().filter(|y| !new.contains(y)).collect();
        assert!(!faded.is_empty());
        for y in faded {
            let g = (c.pixel(x, y) >> 8) & 0xFF;
            assert!(
                g > 0x60 && g < TRACE.1,
                "faded pixel at ({x}, {y}): green {g:#x}"
            );
        }
    }

    #[test]
    fn a_frame_damages_only_the_panel() {
        let mut c = Canvas::new(320, 200);
        let mut mem = crate::canvas::tests_support::Mem::new(320 * 4 * 200);
        let f = crate::canvas::Format {
            bytes: 4,
            rgb: [(8, 16), (8, 8), (8, 0)],
            pitch: 320 * 4,
        };
        c.present(&mut mem, &f);
        let panel = Rect {
            x: 0,
            y: 120,
            w: 320,
            h: 80,
        };
        let mut s = Scope::open(&mut c, panel).unwrap();
        c.present(&mut mem, &f);
        let samples = sine_samples(100, 0.0);
        s.frame(
            &mut c,
            &Frame {
                phase: 0,
                samples: &samples,
            },
            &Figures::default(),
        );
        assert!(c.damaged_pixels() <= u64::from(panel.w * panel.h));
        let bytes = c.present(&mut mem, &f);
        assert!(bytes <= (panel.w * panel.h * 4) as usize && bytes > 0);
        assert!(
            Scope::open(
                &mut c,
                Rect {
                    x: 0,
                    y: 0,
                    w: 320,
                    h: 40
                }
            )
            .is_none()
        );
    }
}
