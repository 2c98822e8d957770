//! The `vga` server's console logic, free of hardware so it is tested on the host.
//!
//! A [`Console`] owns the screen's layout ([`Layout`]): a status line on the top row (uptime,
//! CPUs, IPC per second, phase steps per second), the console region below it where text is
//! written and scrolled, and — while the visualizer runs — the wave panel at the bottom
//! ([`scope`]), whose rows the console gives up while it is open and gets back when it closes.
//! It implements the whole [`VgaServer`] protocol over a [`Screen`]: anything that stores a
//! grid of (glyph, attribute) cells and, for a framebuffer, pixels. The server binary
//! (`main.rs`) supplies the screen backed by the real text buffer at 0xB8000 or the
//! framebuffer; tests supply an array. Nothing here panics on what a client sends: every
//! coordinate and size is checked and answered with [`VgaError::OutOfRange`] or
//! [`VgaError::NotSupported`].
//!
//! The framebuffer console is [`fb::FbScreen`]: the same cells drawn with the anti-aliased
//! font ([`font`]) into a back buffer ([`canvas`]) that is presented by damaged spans, plus
//! pixels and the pixel oscilloscope. On a screen without pixels (text mode) the pixel
//! operations answer `NotSupported` and the wave panel is drawn in CP437 cells.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod canvas;
pub mod fb;
pub mod font;
pub mod scope;

use alloc::vec::Vec;
use core::fmt::Write;
use core::ops::Range;

use hsync_vga_api::{Bytes, Color, Mode, VgaError, VgaServer, attr};

use scope::{Figures, Frame, MAX_SAMPLES, NOT_MEASURED};

/// Glyph shown for control bytes that have no meaning on the console (CP437 `■`).
pub const UNPRINTABLE: u8 = 0xFE;
/// The attribute a fresh console uses: light grey on black.
pub const DEFAULT_ATTR: u8 = attr(Color::LightGray, Color::Black);
/// The status line's attribute: black on light grey.
pub const STATUS_ATTR: u8 = attr(Color::Black, Color::LightGray);

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
    /// Fills a rectangle (clipped to the screen) on a screen with pixels.
    fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, rgb: u32) {
        let Some((pw, ph)) = self.pixel_size() else {
            return;
        };
        for py in y..y.saturating_add(h).min(ph) {
            for px in x..x.saturating_add(w).min(pw) {
                self.put_pixel(px, py, rgb);
            }
        }
    }
    /// Makes what was drawn visible (a back-buffered screen copies its damage out); returns
    /// the bytes that took.
    fn flush(&mut self) -> usize {
        0
    }
    /// Draws a wave frame in pixels over cell rows `rows`; `false` when the screen has no
    /// pixel oscilloscope (the console then draws the frame in cells).
    fn wave(&mut self, _rows: Range<u16>, _frame: &Frame<'_>, _figures: &Figures) -> bool {
        false
    }
    /// The wave panel over `rows` closed: those rows are console cells again.
    fn panel_closed(&mut self, _rows: Range<u16>) {}
}

/// Where the status line, the console region and the wave panel are (cell rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    cols: u16,
    rows: u16,
    status: bool,
    panel: u16,
}

/// The fewest rows the console region keeps while the panel is open.
const MIN_CONSOLE_ROWS: u16 = 4;

impl Layout {
    /// The layout of a `cols` x `rows` screen: a status line when there are at least 8 rows,
    /// no panel.
    pub fn new(cols: u16, rows: u16) -> Layout {
        Layout {
            cols,
            rows,
            status: rows >= 8,
            panel: 0,
        }
    }

    /// The status line's row, if there is one.
    pub fn status_row(&self) -> Option<u16> {
        self.status.then_some(0)
    }

    /// The console region's rows.
    pub fn console(&self) -> Range<u16> {
        u16::from(self.status)..self.rows - self.panel
    }

    /// The wave panel's rows, when it is open.
    pub fn panel(&self) -> Option<Range<u16>> {
        (self.panel > 0).then(|| self.rows - self.panel..self.rows)
    }

    /// How many rows a panel takes on this screen (three eighths of it, at least 3), or `None`
    /// when the console would keep fewer than [`MIN_CONSOLE_ROWS`].
    pub fn panel_rows(&self) -> Option<u16> {
        let rows = (self.rows * 3 / 8).max(3);
        let left = self.rows - u16::from(self.status);
        (left >= rows + MIN_CONSOLE_ROWS).then_some(rows)
    }

    /// The screen's columns.
    pub fn cols(&self) -> u16 {
        self.cols
    }
}

/// What the console reads about the system for its status line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Nanoseconds since boot.
    pub now_ns: u64,
    /// The kernel's IPC counter (fast-path handoffs since boot), when readable.
    pub ipc: Option<u64>,
    /// CPUs the kernel runs on.
    pub cpus: u32,
}

/// How often the status line is refreshed (at most).
const STATUS_PERIOD_NS: u64 = 1_000_000_000;
/// Frames whose times [`FrameStats`] keeps.
const STATS_FRAMES: usize = 256;

/// Render-and-present times of the last [`STATS_FRAMES`] wave frames.
#[derive(Debug, Default)]
pub struct FrameStats {
    /// Frames drawn since start.
    pub frames: u64,
    /// (start ns, duration ns) of the most recent frames, oldest first once full.
    ring: Vec<(u64, u64)>,
    /// Bytes the last frame presented.
    pub last_bytes: u64,
}

impl FrameStats {
    fn push(&mut self, start: u64, took: u64, bytes: usize) {
        if self.ring.len() == STATS_FRAMES {
            self.ring.remove(0);
        }
        self.ring.push((start, took));
        self.frames += 1;
        self.last_bytes = bytes as u64;
    }

    /// (median, p99, min) of the kept frame times in ns, and frames per second x1000 over
    /// their span (0 with fewer than two frames).
    pub fn summary(&self) -> (u64, u64, u64, u64) {
        let mut t: Vec<u64> = self.ring.iter().map(|r| r.1).collect();
        t.sort_unstable();
        let pick = |q: usize| t.get((t.len() * q / 100).min(t.len().saturating_sub(1)));
        let (median, p99, min) = (
            pick(50).copied().unwrap_or(0),
            pick(99).copied().unwrap_or(0),
            t.first().copied().unwrap_or(0),
        );
        let fps = match (self.ring.first(), self.ring.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                (self.ring.len() as u64 - 1) * 1_000_000_000_000 / (b.0 - a.0)
            }
            _ => 0,
        };
        (median, p99, min, fps)
    }

    /// Frame times kept.
    pub fn kept(&self) -> usize {
        self.ring.len()
    }
}

/// The console: a [`Screen`], its layout, the cursor, the current attribute, the status line
/// and the wave panel's state.
pub struct Console<S> {
    screen: S,
    layout: Layout,
    x: u16,
    y: u16,
    attr: u8,
    figures: Figures,
    sampler: fn() -> Sample,
    /// (time, IPC count) at the last status refresh, and the rate then.
    last_status: Option<(u64, Option<u64>)>,
    ipc_per_s: Option<u64>,
    stats: FrameStats,
    esc: Esc,
}

/// Where the console is in an ANSI escape sequence (`ESC [ params final`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    /// Plain text.
    None,
    /// After `ESC`.
    Start,
    /// After `ESC [`: up to four numeric parameters so far (`n` of them started).
    Csi { params: [u16; 4], n: usize },
}

/// ANSI colour number (0..8: black, red, green, yellow, blue, magenta, cyan, white) to the VGA
/// palette index.
const ANSI_TO_VGA: [u8; 8] = [0, 4, 2, 6, 1, 5, 3, 7];

fn no_sample() -> Sample {
    Sample::default()
}

impl<S: Screen> Console<S> {
    /// A console over `screen`, cursor at the console region's top left, default colours;
    /// the screen is not cleared (what the firmware left stays until someone clears it).
    pub fn new(screen: S) -> Console<S> {
        let (cols, rows) = screen.size();
        let layout = Layout::new(cols, rows);
        Console {
            screen,
            x: 0,
            y: layout.console().start,
            layout,
            attr: DEFAULT_ATTR,
            figures: Figures::default(),
            sampler: no_sample,
            last_status: None,
            ipc_per_s: None,
            stats: FrameStats::default(),
            esc: Esc::None,
        }
    }

    /// Where the status line reads the time, the IPC counter and the CPU count from.
    pub fn set_sampler(&mut self, f: fn() -> Sample) {
        self.sampler = f;
    }

    /// The screen.
    pub fn screen(&self) -> &S {
        &self.screen
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The wave frames' timing.
    pub fn stats(&self) -> &FrameStats {
        &self.stats
    }

    fn blank_row(&mut self, y: u16) {
        let (cols, _) = self.screen.size();
        for x in 0..cols {
            self.screen.set_cell(x, y, b' ', self.attr);
        }
    }

    /// Scrolls the console region up by `lines` (not the status line or the panel).
    fn scroll_up(&mut self, lines: u16) {
        let (cols, _) = self.screen.size();
        let region = self.layout.console();
        let lines = lines.min(region.end - region.start);
        for y in region.start..region.end - lines {
            for x in 0..cols {
                let (ch, a) = self.screen.cell(x, y + lines);
                self.screen.set_cell(x, y, ch, a);
            }
        }
        for y in region.end - lines..region.end {
            self.blank_row(y);
        }
    }

    /// Puts the cursor back in the console region before a glyph is drawn (scrolling if it
    /// is past the last row).
    fn settle(&mut self) {
        let (cols, _) = self.screen.size();
        let region = self.layout.console();
        if self.x >= cols {
            self.x = 0;
            self.y = self.y.saturating_add(1);
        }
        if self.y < region.start {
            self.y = region.start;
        }
        if self.y >= region.end {
            self.scroll_up(self.y - region.end + 1);
            self.y = region.end - 1;
        }
    }

    /// Applies the final byte `f` of a CSI sequence with `params`: `m` (colours: 0 reset, 1
    /// bright, 22 normal, 30..=37/90..=97 foreground, 39 default, 40..=47/100..=107
    /// background, 49 default), `J` (2: clear the console region), `H` (cursor to the top
    /// left), `K` (erase to the end of the line). Anything else is dropped.
    fn csi(&mut self, params: &[u16], f: u8) {
        let (fg, bg) = (self.attr & 0x0F, self.attr >> 4);
        match f {
            b'm' => {
                let (mut fg, mut bg) = (fg, bg);
                for &p in if params.is_empty() { &[0][..] } else { params } {
                    match p {
                        0 => (fg, bg) = (DEFAULT_ATTR & 0x0F, DEFAULT_ATTR >> 4),
                        1 => fg |= 0x08,
                        22 => fg &= 0x07,
                        30..=37 => fg = (fg & 0x08) | ANSI_TO_VGA[usize::from(p - 30)],
                        39 => fg = DEFAULT_ATTR & 0x0F,
                        40..=47 => bg = ANSI_TO_VGA[usize::from(p - 40)],
                        49 => bg = DEFAULT_ATTR >> 4,
                        90..=97 => fg = 0x08 | ANSI_TO_VGA[usize::from(p - 90)],
                        100..=107 => bg = 0x08 | ANSI_TO_VGA[usize::from(p - 100)],
                        _ => {}
                    }
                }
                self.attr = (bg << 4) | fg;
            }
            b'J' if params.first() == Some(&2) => {
                for y in self.layout.console() {
                    self.blank_row(y);
                }
            }
            b'H' => (self.x, self.y) = (0, self.layout.console().start),
            b'K' => {
                let (cols, _) = self.screen.size();
                for x in self.x.min(cols)..cols {
                    self.screen.set_cell(x, self.y, b' ', self.attr);
                }
            }
            _ => {}
        }
    }

    /// Feeds a byte to the escape-sequence parser; `true` when it was part of a sequence.
    fn escape(&mut self, b: u8) -> bool {
        match (self.esc, b) {
            (Esc::None, 0x1B) => self.esc = Esc::Start,
            (Esc::None, _) => return false,
            (Esc::Start, b'[') => {
                self.esc = Esc::Csi {
                    params: [0; 4],
                    n: 0,
                }
            }
            (Esc::Start, _) => self.esc = Esc::None,
            (Esc::Csi { mut params, mut n }, b'0'..=b'9') => {
                if n == 0 {
                    n = 1;
                }
                if let Some(p) = params.get_mut(n - 1) {
                    *p = p.saturating_mul(10).saturating_add(u16::from(b - b'0'));
                }
                self.esc = Esc::Csi { params, n };
            }
            (Esc::Csi { params, n }, b';') => {
                self.esc = Esc::Csi {
                    params,
                    n: (n.max(1) + 1).min(params.len() + 1),
                }
            }
            (Esc::Csi { params, n }, 0x40..=0x7E) => {
                self.esc = Esc::None;
                let n = n.min(params.len());
                self.csi(&params[..n], b);
            }
            // Intermediate bytes and the like: a sequence we do not handle; dropped whole.
            (Esc::Csi { .. }, 0x20..=0x3F) => {}
            (Esc::Csi { .. }, _) => self.esc = Esc::None,
        }
        true
    }

    /// Writes one byte at the cursor (see [`VgaServer::write`] for the control bytes and
    /// escape sequences).
    pub fn put_byte(&mut self, b: u8) {
        if self.escape(b) {
            return;
        }
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

    /// Redraws the status line if a period passed since the last time (or `force`).
    fn refresh_status(&mut self, force: bool) {
        let Some(row) = self.layout.status_row() else {
            return;
        };
        let s = (self.sampler)();
        if let Some((t, ipc)) = self.last_status {
            if !force && s.now_ns < t + STATUS_PERIOD_NS {
                return;
            }
            if let (Some(a), Some(b)) = (ipc, s.ipc)
                && s.now_ns > t
            {
                self.ipc_per_s = Some(b.saturating_sub(a) * 1_000_000_000 / (s.now_ns - t));
            }
        }
        if self
            .last_status
            .is_none_or(|(t, _)| s.now_ns >= t + STATUS_PERIOD_NS)
        {
            self.last_status = Some((s.now_ns, s.ipc));
        }
        let mut line = alloc::string::String::new();
        let _ = status_line(
            &mut line,
            &s,
            self.ipc_per_s,
            &self.figures,
            self.layout.panel().is_some(),
        );
        let (cols, _) = self.screen.size();
        let bytes = line.as_bytes();
        for x in 0..cols {
            let ch = bytes.get(usize::from(x)).copied().unwrap_or(b' ');
            self.screen.set_cell(x, row, ch, STATUS_ATTR);
        }
    }

    /// Opens or closes the wave panel; returns whether it was open.
    fn set_panel(&mut self, on: bool) -> Result<bool, VgaError> {
        let was = self.layout.panel();
        match (on, &was) {
            (true, None) => {
                let rows = self.layout.panel_rows().ok_or(VgaError::NotSupported)?;
                // Keep the cursor's row on screen: scroll the text above the new panel.
                let end = self.layout.rows - rows;
                if self.y >= end {
                    self.scroll_up(self.y - end + 1);
                    self.y = end - 1;
                }
                self.layout.panel = rows;
                // An empty panel until the first frame (no console text shows through).
                let (cols, total) = self.screen.size();
                for y in end..total {
                    for x in 0..cols {
                        self.screen.set_cell(x, y, b' ', scope::TEXT_GRID);
                    }
                }
            }
            (false, Some(rows)) => {
                self.layout.panel = 0;
                self.screen.panel_closed(rows.clone());
                for y in rows.clone() {
                    self.blank_row(y);
                }
            }
            _ => {}
        }
        self.refresh_status(true);
        self.sync_cursor();
        Ok(was.is_some())
    }

    /// Draws one wave frame in the open panel.
    fn wave_frame(&mut self, phase: u64, data: &[u8]) -> Result<(), VgaError> {
        let rows = self.layout.panel().ok_or(VgaError::NotSupported)?;
        let n = data.len() / 2;
        if !data.len().is_multiple_of(2) || !(2..=MAX_SAMPLES).contains(&n) {
            return Err(VgaError::OutOfRange);
        }
        let t0 = (self.sampler)().now_ns;
        let mut samples = [0i16; MAX_SAMPLES];
        for (s, b) in samples.iter_mut().zip(data.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]).max(-i16::MAX);
        }
        let frame = Frame {
            phase,
            samples: &samples[..n],
        };
        if !self.screen.wave(rows.clone(), &frame, &self.figures) {
            let top = rows.start;
            let screen = &mut self.screen;
            scope::text_frame(
                self.layout.cols,
                rows.end - rows.start,
                &frame,
                &self.figures,
                |x, y, ch, a| screen.set_cell(x, top + y, ch, a),
            );
        }
        let bytes = self.screen.flush();
        let t1 = (self.sampler)().now_ns;
        self.stats.push(t0, t1.saturating_sub(t0), bytes);
        Ok(())
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

    /// Presents what an operation drew, then answers with `r`.
    fn done<T>(&mut self, r: Result<T, VgaError>) -> Result<T, VgaError> {
        self.refresh_status(false);
        self.screen.flush();
        r
    }
}

/// The status line: system name, uptime, CPUs, IPC rate, phase rate, visualizer state.
pub fn status_line(
    out: &mut impl Write,
    s: &Sample,
    ipc_per_s: Option<u64>,
    f: &Figures,
    wave: bool,
) -> core::fmt::Result {
    let secs = s.now_ns / 1_000_000_000;
    write!(
        out,
        " HSYNC-OS | up {}:{:02}:{:02} | cpus {}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        s.cpus
    )?;
    match ipc_per_s {
        Some(r) => write!(out, " | ipc/s {r}")?,
        None => write!(out, " | ipc/s -")?,
    }
    if f.steps_per_s == NOT_MEASURED {
        write!(out, " | steps/s -")?;
    } else {
        write!(out, " | steps/s {}", f.steps_per_s)?;
    }
    write!(out, " | wave {}", if wave { "on" } else { "off" })
}

impl<S: Screen> VgaServer for Console<S> {
    fn write(&mut self, _badge: u64, text: &[u8]) -> Result<u64, VgaError> {
        for &b in text {
            self.put_byte(b);
        }
        self.sync_cursor();
        self.done(Ok(text.len() as u64))
    }

    fn set_color(&mut self, _badge: u64, fg: Color, bg: Color) -> Result<(), VgaError> {
        self.attr = attr(fg, bg);
        Ok(())
    }

    fn set_cursor(&mut self, _badge: u64, x: u16, y: u16) -> Result<(), VgaError> {
        self.check_cell(x, y)?;
        if !self.layout.console().contains(&y) {
            return Err(VgaError::OutOfRange);
        }
        (self.x, self.y) = (x, y);
        self.sync_cursor();
        self.done(Ok(()))
    }

    fn cursor(&mut self, _badge: u64) -> Result<(u16, u16), VgaError> {
        Ok((self.x, self.y))
    }

    fn clear(&mut self, _badge: u64) -> Result<(), VgaError> {
        for y in self.layout.console() {
            self.blank_row(y);
        }
        (self.x, self.y) = (0, self.layout.console().start);
        self.sync_cursor();
        self.refresh_status(true);
        self.done(Ok(()))
    }

    fn scroll(&mut self, _badge: u64, lines: u16) -> Result<(), VgaError> {
        let region = self.layout.console();
        if lines > region.end - region.start {
            return Err(VgaError::OutOfRange);
        }
        self.scroll_up(lines);
        self.done(Ok(()))
    }

    fn put_cell(&mut self, _badge: u64, x: u16, y: u16, ch: u8, attr: u8) -> Result<(), VgaError> {
        self.check_cell(x, y)?;
        self.screen.set_cell(x, y, ch, attr);
        self.done(Ok(()))
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
        self.done(Ok(()))
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
        self.pixels()?;
        if rgb > 0xFF_FFFF {
            return Err(VgaError::OutOfRange);
        }
        self.screen.fill_rect(x, y, w, h, rgb);
        self.done(Ok(()))
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
        self.done(Ok(()))
    }

    fn crash(&mut self, badge: u64) -> Result<(), VgaError> {
        log::warn!("vga: crash requested by client {badge}; faulting on purpose");
        libhsync::fault::page_fault(0)
    }

    fn panel(&mut self, _badge: u64, on: bool) -> Result<bool, VgaError> {
        let r = self.set_panel(on);
        self.done(r)
    }

    fn wave(&mut self, _badge: u64, phase: u64, samples: &[u8]) -> Result<(), VgaError> {
        // The frame presents itself (timed with its present); `done` then presents only a
        // refreshed status line, if any.
        let r = self.wave_frame(phase, samples);
        self.done(r)
    }

    fn figures(
        &mut self,
        _badge: u64,
        steps_per_s: u64,
        cycles_per_word_x100: u64,
        dudect_t_x100: u64,
        dudect_samples: u64,
    ) -> Result<(), VgaError> {
        self.figures = Figures {
            steps_per_s,
            cycles_per_word_x100,
            dudect_t_x100,
            dudect_samples,
        };
        self.done(Ok(()))
    }

    fn frame_stats(&mut self, _badge: u64) -> Result<Bytes, VgaError> {
        let (median, p99, min, fps) = self.stats.summary();
        let mut out = Bytes::new();
        let panel = self.layout.panel().map_or(0, |r| r.end - r.start);
        for w in [
            self.stats.frames,
            median,
            p99,
            min,
            fps,
            self.stats.last_bytes,
            self.stats.kept() as u64,
            u64::from(panel),
        ] {
            out.extend(&w.to_le_bytes());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
