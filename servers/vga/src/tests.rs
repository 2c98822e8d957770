//! Host tests of the console over an in-memory screen, through the generated `dispatch` (the
//! same decode path a request from another process takes).

extern crate std;

use std::vec::Vec;

use hsync_vga_api::{Color, Mode, VgaError, VgaServer};
use libhsync::protocol::{Message, ProtocolError, status};

use super::*;
use hsync_vga_api::NOT_MEASURED;

const COLS: u16 = 80;
const ROWS: u16 = 25;
/// The console region's first row (row 0 is the status line).
const TOP: u16 = 1;

/// 80x25 cells, optionally with pixels; records the cursor it was last shown.
struct Grid {
    cells: Vec<(u8, u8)>,
    shown: Option<(u16, u16)>,
    pixels: Option<(u32, u32, Vec<u32>)>,
}

impl Grid {
    fn text() -> Grid {
        Grid {
            cells: std::vec![(b'.', 0x99); usize::from(COLS * ROWS)],
            shown: None,
            pixels: None,
        }
    }
    fn row(&self, y: u16) -> std::string::String {
        let s = usize::from(y * COLS);
        self.cells[s..s + usize::from(COLS)]
            .iter()
            .map(|&(c, _)| c as char)
            .collect::<std::string::String>()
            .trim_end()
            .into()
    }
}

impl Screen for Grid {
    fn size(&self) -> (u16, u16) {
        (COLS, ROWS)
    }
    fn cell(&self, x: u16, y: u16) -> (u8, u8) {
        assert!(x < COLS && y < ROWS, "cell({x}, {y}) out of range");
        self.cells[usize::from(y * COLS + x)]
    }
    fn set_cell(&mut self, x: u16, y: u16, ch: u8, attr: u8) {
        assert!(x < COLS && y < ROWS, "set_cell({x}, {y}) out of range");
        self.cells[usize::from(y * COLS + x)] = (ch, attr);
    }
    fn show_cursor(&mut self, x: u16, y: u16) {
        self.shown = Some((x, y));
    }
    fn pixel_size(&self) -> Option<(u32, u32)> {
        self.pixels.as_ref().map(|(w, h, _)| (*w, *h))
    }
    fn put_pixel(&mut self, x: u32, y: u32, rgb: u32) {
        let (w, h, p) = self.pixels.as_mut().expect("pixels");
        assert!(x < *w && y < *h);
        p[(y * *w + x) as usize] = rgb;
    }
}

fn console() -> Console<Grid> {
    Console::new(Grid::text())
}

fn write(c: &mut Console<Grid>, s: &[u8]) {
    assert_eq!(c.write(1, s), Ok(s.len() as u64));
}

#[test]
fn write_puts_glyphs_in_the_current_colour_and_moves_the_cursor() {
    let mut c = console();
    c.clear(1).unwrap();
    c.set_color(1, Color::Yellow, Color::Blue).unwrap();
    write(&mut c, b"hello");
    assert_eq!(c.screen().row(TOP), "hello");
    assert_eq!(c.screen().cell(0, TOP), (b'h', 0x1E));
    assert_eq!(
        c.screen().cell(5, TOP),
        (b' ', 0x07),
        "clear used the default colours"
    );
    assert_eq!(c.cursor(1), Ok((5, TOP)));
    assert_eq!(c.screen().shown, Some((5, TOP)));
}

#[test]
fn control_bytes() {
    let mut c = console();
    c.clear(1).unwrap();
    write(&mut c, b"ab\tc\r\nxy\x08z\x01\x7f");
    assert_eq!(c.screen().row(TOP), "ab      c");
    assert_eq!(
        c.screen().row(TOP + 1),
        "xz\u{fe}\u{7f}".replace('\u{7f}', "\u{fe}")
    );
    assert_eq!(c.cursor(1), Ok((4, TOP + 1)));
    // Backspace at column 0 stays there.
    write(&mut c, b"\n\x08\x08");
    assert_eq!(c.cursor(1), Ok((0, TOP + 2)));
}

#[test]
fn a_full_row_wraps_lazily() {
    let mut c = console();
    c.clear(1).unwrap();
    write(&mut c, &[b'x'; 80]);
    assert_eq!(
        c.cursor(1),
        Ok((80, TOP)),
        "the wrap waits for the next glyph"
    );
    write(&mut c, b"\ny");
    assert_eq!(
        c.screen().row(TOP + 1),
        "y",
        "80 glyphs + newline is one row, not two"
    );
    write(&mut c, &[b'z'; 81]);
    assert_eq!(c.screen().row(TOP + 1), std::format!("y{}", "z".repeat(79)));
    assert_eq!(c.screen().row(TOP + 2), "zz");
    assert_eq!(c.cursor(1), Ok((2, TOP + 2)));
}

#[test]
fn output_past_the_last_row_scrolls() {
    let mut c = console();
    c.clear(1).unwrap();
    for i in 0..30 {
        write(&mut c, std::format!("line {i}\n").as_bytes());
    }
    // 30 lines and a newline after each: rows 1..24 hold lines 7..29, row 24 is empty; the
    // status line stayed.
    assert_eq!(c.screen().row(TOP), "line 7");
    assert_eq!(c.screen().row(23), "line 29");
    assert_eq!(c.screen().row(24), "");
    assert_eq!(c.cursor(1), Ok((0, 24)));
    assert!(c.screen().row(0).starts_with(" HSYNC-OS | up "));
    assert_eq!(c.screen().cell(1, 0).1, STATUS_ATTR);
}

#[test]
fn scroll_and_bounds() {
    let mut c = console();
    c.clear(1).unwrap();
    write(&mut c, b"top\nsecond");
    c.scroll(1, 1).unwrap();
    assert_eq!(c.screen().row(TOP), "second");
    assert_eq!(c.screen().row(24), "");
    c.scroll(1, 24).unwrap();
    assert_eq!(c.screen().row(TOP), "");
    assert!(
        !c.screen().row(0).is_empty(),
        "the status line does not scroll"
    );
    assert_eq!(c.scroll(1, 25), Err(VgaError::OutOfRange));
    assert_eq!(c.scroll(1, u16::MAX), Err(VgaError::OutOfRange));
}

#[test]
fn cells_and_cursor_are_range_checked() {
    let mut c = console();
    c.put_cell(1, 79, 24, b'#', 0x4F).unwrap();
    assert_eq!(c.get_cell(1, 79, 24), Ok((b'#', 0x4F)));
    for (x, y) in [(80, 0), (0, 25), (u16::MAX, u16::MAX)] {
        assert_eq!(c.put_cell(1, x, y, b'!', 7), Err(VgaError::OutOfRange));
        assert_eq!(c.get_cell(1, x, y), Err(VgaError::OutOfRange));
        assert_eq!(c.set_cursor(1, x, y), Err(VgaError::OutOfRange));
    }
    c.set_cursor(1, 10, 3).unwrap();
    write(&mut c, b"Q");
    assert_eq!(c.get_cell(1, 10, 3), Ok((b'Q', DEFAULT_ATTR)));
    assert_eq!(
        c.set_cursor(1, 0, 0),
        Err(VgaError::OutOfRange),
        "the status line"
    );
}

#[test]
fn put_cells_draws_a_row_or_nothing() {
    let mut c = console();
    c.put_cells(1, 78, 2, b"a\x01b\x02").unwrap();
    assert_eq!(c.get_cell(1, 78, 2), Ok((b'a', 1)));
    assert_eq!(c.get_cell(1, 79, 2), Ok((b'b', 2)));
    let before = c.screen().cells.clone();
    assert_eq!(
        c.put_cells(1, 78, 3, b"a\x01b\x02c\x03"),
        Err(VgaError::OutOfRange)
    );
    assert_eq!(c.put_cells(1, 0, 3, b"odd"), Err(VgaError::OutOfRange));
    assert_eq!(c.put_cells(1, 0, 25, b"ok"), Err(VgaError::OutOfRange));
    assert!(
        c.screen().cells == before,
        "a rejected request draws nothing"
    );
}

#[test]
fn pixels_need_a_framebuffer() {
    let mut c = console();
    assert_eq!(c.info(1), Ok((Mode::Text, 80, 25)));
    assert_eq!(c.pixel_size(1), Err(VgaError::NotSupported));
    assert_eq!(c.put_pixel(1, 0, 0, 0xFFFFFF), Err(VgaError::NotSupported));
    assert_eq!(c.fill_rect(1, 0, 0, 1, 1, 0), Err(VgaError::NotSupported));

    let mut grid = Grid::text();
    grid.pixels = Some((16, 8, std::vec![0; 128]));
    let mut c = Console::new(grid);
    assert_eq!(c.info(1), Ok((Mode::Framebuffer, 80, 25)));
    c.put_pixel(1, 15, 7, 0x123456).unwrap();
    assert_eq!(c.put_pixel(1, 16, 0, 1), Err(VgaError::OutOfRange));
    assert_eq!(c.put_pixel(1, 0, 0, 0x0100_0000), Err(VgaError::OutOfRange));
    // Clipped, and u32::MAX sizes do not overflow.
    c.fill_rect(1, 14, 6, u32::MAX, u32::MAX, 0xABCDEF).unwrap();
    let p = &c.screen().pixels.as_ref().unwrap().2;
    assert_eq!(p[7 * 16 + 15], 0xABCDEF);
    assert_eq!(p[6 * 16 + 14], 0xABCDEF);
    assert_eq!(p[6 * 16 + 13], 0);
}

/// Requests as another process sends them: encoded, then decoded by `dispatch`.
#[test]
fn dispatch_decodes_requests_and_rejects_garbage() {
    let mut c = console();
    let mut req = Message::new(1);
    req.push_bytes(b"via ipc").unwrap();
    let mut rep = c.dispatch(3, &mut req);
    assert_eq!(rep.label(), status::OK);
    assert_eq!(rep.into_result::<u64, VgaError>(), Ok(7));
    assert_eq!(c.screen().row(TOP).get(..7), Some("via ipc"));

    // A colour index past 15 does not decode: BAD_REQUEST, nothing changes.
    let mut req = Message::new(2);
    req.push_word(16).unwrap();
    req.push_word(0).unwrap();
    let rep = c.dispatch(3, &mut req);
    assert_eq!(rep.label(), status::BAD_REQUEST);

    // A coordinate wider than u16, an unknown label, a byte length past the message.
    let mut req = Message::new(7);
    for w in [1 << 16, 0, 65, 7] {
        req.push_word(w).unwrap();
    }
    assert_eq!(c.dispatch(3, &mut req).label(), status::BAD_REQUEST);
    assert_eq!(
        c.dispatch(3, &mut Message::new(99)).label(),
        status::UNKNOWN_OP
    );
    let mut req = Message::new(1);
    req.push_word(10_000).unwrap();
    assert_eq!(c.dispatch(3, &mut req).label(), status::BAD_REQUEST);

    // Application errors travel as APP_ERROR with the code.
    let mut req = Message::new(3);
    req.push_word(80).unwrap();
    req.push_word(0).unwrap();
    let mut rep = c.dispatch(3, &mut req);
    assert_eq!(
        rep.into_result::<(), VgaError>(),
        Err(ProtocolError::App(VgaError::OutOfRange))
    );
}

fn samples(n: usize) -> std::vec::Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let t = i as f64 / (n - 1) as f64 * 2.0;
            (((t * core::f64::consts::TAU).sin() * 32767.0) as i16).to_le_bytes()
        })
        .collect()
}

/// The panel takes the bottom rows; the console scrolls above it and never writes into it;
/// closing gives the rows back.
#[test]
fn wave_panel_and_console_never_overlap() {
    let mut c = console();
    c.clear(1).unwrap();
    for i in 0..30 {
        write(&mut c, std::format!("line {i}\n").as_bytes());
    }
    write(&mut c, b"hsync> ");
    assert_eq!(c.cursor(1), Ok((7, 24)));
    assert_eq!(c.wave(1, 0, &samples(100)), Err(VgaError::NotSupported));
    assert_eq!(c.panel(1, true), Ok(false));
    let panel = c.layout().panel().unwrap();
    assert_eq!(panel, 16..25, "9 rows of 25");
    assert_eq!(c.layout().console(), 1..16);
    // The prompt's row scrolled up above the panel, with the cursor.
    assert_eq!(c.cursor(1), Ok((7, 15)));
    assert_eq!(c.screen().row(15), "hsync>");
    assert_eq!(c.screen().row(14), "line 29");
    for f in 0..5u64 {
        c.wave(1, f, &samples(200)).unwrap();
        write(&mut c, b"output\nmore output that is long enough\n");
        write(&mut c, &[b'w'; 200]);
    }
    // Every panel cell is a panel cell (readout, trace or graticule), never console text.
    for y in panel.clone() {
        for x in 0..COLS {
            let (_, a) = c.screen().cell(x, y);
            assert!(
                matches!(
                    a,
                    scope::TEXT_READOUT | scope::TEXT_TRACE | scope::TEXT_GRID
                ),
                "console attribute {a:#x} at ({x}, {y})"
            );
        }
    }
    assert!(
        c.screen()
            .row(16)
            .starts_with("HSYNC-Wave  phase 0x0000000000000004")
    );
    assert_eq!(c.set_cursor(1, 0, 16), Err(VgaError::OutOfRange));
    assert_eq!(c.scroll(1, 16), Err(VgaError::OutOfRange));
    // Bad frames are refused.
    assert_eq!(c.wave(1, 0, &[0; 3]), Err(VgaError::OutOfRange));
    assert_eq!(
        c.wave(1, 0, &[0; 2]),
        Err(VgaError::OutOfRange),
        "one sample"
    );
    assert_eq!(c.wave(1, 0, &[0; 506]), Err(VgaError::OutOfRange));
    assert_eq!(c.panel(1, true), Ok(true), "already open");
    assert_eq!(c.panel(1, false), Ok(true));
    assert_eq!(c.layout().panel(), None);
    assert_eq!(c.layout().console(), 1..25);
    for y in panel {
        assert_eq!(c.screen().row(y), "", "row {y} given back blank");
    }
    write(&mut c, b"\n");
    for _ in 0..12 {
        write(&mut c, b"x\n");
    }
    assert_eq!(
        c.cursor(1),
        Ok((0, 24)),
        "the console reaches the bottom again"
    );
}

#[test]
fn status_line_shows_uptime_ipc_rate_and_phase_rate() {
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static NOW: AtomicU64 = AtomicU64::new(0);
    static IPC: AtomicU64 = AtomicU64::new(0);
    fn sample() -> Sample {
        Sample {
            now_ns: NOW.load(Relaxed),
            ipc: Some(IPC.load(Relaxed)),
            cpus: 1,
        }
    }
    let mut c = console();
    c.set_sampler(sample);
    NOW.store(3_723_000_000_000, Relaxed);
    IPC.store(1000, Relaxed);
    c.clear(1).unwrap();
    assert_eq!(
        c.screen().row(0),
        " HSYNC-OS | up 1:02:03 | cpus 1 | ipc/s - | steps/s - | wave off"
    );
    // Half a second later: not refreshed yet.
    NOW.store(3_723_500_000_000, Relaxed);
    IPC.store(1500, Relaxed);
    c.figures(1, 42, NOT_MEASURED, NOT_MEASURED, NOT_MEASURED)
        .unwrap();
    assert!(c.screen().row(0).contains("steps/s -"));
    // Two seconds after the first: 2000 handoffs in 2 s.
    NOW.store(3_725_000_000_000, Relaxed);
    IPC.store(3000, Relaxed);
    write(&mut c, b"x");
    assert_eq!(
        c.screen().row(0),
        " HSYNC-OS | up 1:02:05 | cpus 1 | ipc/s 1000 | steps/s 42 | wave off"
    );
}

#[test]
fn frame_stats_time_each_frame() {
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static NOW: AtomicU64 = AtomicU64::new(0);
    fn sample() -> Sample {
        // Every reading is 1 ms later: a frame (two readings) takes 1 ms.
        Sample {
            now_ns: NOW.fetch_add(1_000_000, Relaxed),
            ipc: None,
            cpus: 1,
        }
    }
    let mut c = console();
    c.set_sampler(sample);
    c.panel(1, true).unwrap();
    for f in 0..10 {
        c.wave(1, f, &samples(64)).unwrap();
    }
    let b = c.frame_stats(1).unwrap();
    let w: std::vec::Vec<u64> = b
        .as_slice()
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(w.len(), 8);
    assert_eq!(w[0], 10, "frames");
    assert_eq!((w[1], w[2], w[3]), (1_000_000, 1_000_000, 1_000_000));
    assert!(w[4] > 0, "fps");
    assert_eq!((w[6], w[7]), (10, 9));
}

#[test]
fn tiny_screens_have_no_status_line_or_panel() {
    let l = Layout::new(10, 3);
    assert_eq!(l.status_row(), None);
    assert_eq!(l.console(), 0..3);
    assert_eq!(l.panel_rows(), None);
    let l = Layout::new(128, 48);
    assert_eq!(l.status_row(), Some(0));
    assert_eq!(l.panel_rows(), Some(18));
}

/// ANSI colours and clearing, as a terminal would take them; unknown sequences vanish.
#[test]
fn ansi_escape_sequences() {
    let mut c = console();
    c.clear(1).unwrap();
    write(
        &mut c,
        b"\x1b[91merr\x1b[0m ok \x1b[1;34;47mX\x1b[m\x1b[?25lY",
    );
    assert_eq!(c.screen().row(TOP), "err ok XY");
    assert_eq!(c.screen().cell(0, TOP), (b'e', 0x0C), "bright red");
    assert_eq!(c.screen().cell(4, TOP), (b'o', DEFAULT_ATTR));
    assert_eq!(
        c.screen().cell(7, TOP),
        (b'X', 0x79),
        "bright blue on light grey"
    );
    assert_eq!(c.screen().cell(8, TOP), (b'Y', DEFAULT_ATTR));
    write(&mut c, b"\nsecond\x1b[2J\x1b[Hfirst");
    assert_eq!(c.screen().row(TOP), "first");
    assert_eq!(c.screen().row(TOP + 1), "");
    write(&mut c, b"\rfi\x1b[K");
    assert_eq!(c.screen().row(TOP), "fi");
    // A lone ESC followed by text drops one byte, not the rest of the line.
    write(&mut c, b"\x1bxyz");
    assert_eq!(c.screen().row(TOP), "fiyz");
    // Huge parameters saturate.
    write(&mut c, b"\x1b[99999999999;1;2;3;4;5;6m!");
    assert_eq!(c.screen().row(TOP), "fiyz!");
}
