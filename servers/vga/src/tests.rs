//! Host tests of the console over an in-memory screen, through the generated `dispatch` (the
//! same decode path a request from another process takes).

extern crate std;

use std::vec::Vec;

use hsync_vga_api::{Color, Mode, VgaError, VgaServer};
use libhsync::protocol::{Message, ProtocolError, status};

use super::*;

const COLS: u16 = 80;
const ROWS: u16 = 25;

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
    assert_eq!(c.screen().row(0), "hello");
    assert_eq!(c.screen().cell(0, 0), (b'h', 0x1E));
    assert_eq!(
        c.screen().cell(5, 0),
        (b' ', 0x07),
        "clear used the default colours"
    );
    assert_eq!(c.cursor(1), Ok((5, 0)));
    assert_eq!(c.screen().shown, Some((5, 0)));
}

#[test]
fn control_bytes() {
    let mut c = console();
    c.clear(1).unwrap();
    write(&mut c, b"ab\tc\r\nxy\x08z\x01\x7f");
    assert_eq!(c.screen().row(0), "ab      c");
    assert_eq!(
        c.screen().row(1),
        "xz\u{fe}\u{7f}".replace('\u{7f}', "\u{fe}")
    );
    assert_eq!(c.cursor(1), Ok((4, 1)));
    // Backspace at column 0 stays there.
    write(&mut c, b"\n\x08\x08");
    assert_eq!(c.cursor(1), Ok((0, 2)));
}

#[test]
fn a_full_row_wraps_lazily() {
    let mut c = console();
    c.clear(1).unwrap();
    write(&mut c, &[b'x'; 80]);
    assert_eq!(
        c.cursor(1),
        Ok((80, 0)),
        "the wrap waits for the next glyph"
    );
    write(&mut c, b"\ny");
    assert_eq!(
        c.screen().row(1),
        "y",
        "80 glyphs + newline is one row, not two"
    );
    write(&mut c, &[b'z'; 81]);
    assert_eq!(c.screen().row(1), std::format!("y{}", "z".repeat(79)));
    assert_eq!(c.screen().row(2), "zz");
    assert_eq!(c.cursor(1), Ok((2, 2)));
}

#[test]
fn output_past_the_last_row_scrolls() {
    let mut c = console();
    c.clear(1).unwrap();
    for i in 0..30 {
        write(&mut c, std::format!("line {i}\n").as_bytes());
    }
    // 30 lines and a newline after each: rows 0..24 hold lines 6..29, row 24 is empty.
    assert_eq!(c.screen().row(0), "line 6");
    assert_eq!(c.screen().row(23), "line 29");
    assert_eq!(c.screen().row(24), "");
    assert_eq!(c.cursor(1), Ok((0, 24)));
}

#[test]
fn scroll_and_bounds() {
    let mut c = console();
    c.clear(1).unwrap();
    write(&mut c, b"top\nsecond");
    c.scroll(1, 1).unwrap();
    assert_eq!(c.screen().row(0), "second");
    assert_eq!(c.screen().row(24), "");
    c.scroll(1, 25).unwrap();
    assert_eq!(c.screen().row(0), "");
    assert_eq!(c.scroll(1, 26), Err(VgaError::OutOfRange));
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
    assert_eq!(c.screen().row(0).get(..7), Some("via ipc"));

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
