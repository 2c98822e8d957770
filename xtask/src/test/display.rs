//! What the display shows, judged from the outside: the 80x25 VGA text buffer (`pmemsave` of
//! 0xB8000) and framebuffer pictures (QEMU `screendump`, a PPM).
//!
//! - [`text_panel`]: the wave panel in text mode (servers/vga `scope::text_frame`): its rows
//!   hold only panel cells (the readout, CP437 half/full blocks of the trace, the graticule's
//!   line characters) — no console text — and the trace is connected column to column.
//! - [`fb_trace`]: on a framebuffer, the oscilloscope's newest sweep (pixels of exactly the
//!   trace colour) covers every column of its span, neighbouring columns' pixels touch, and it
//!   lies in the panel at the bottom, not in the console above.
//! - [`fb_text`]: a string the console printed matches the font's glyphs (Noto Sans Mono
//!   16 px, blended over the background) at the cell it should be in.
//! - [`Ppm`] and [`write_png`]: QEMU's screendump read and written as PNG (screenshots).
//!
//! The `display-uefi` suite ([`run`]) boots the GRUB ISO under OVMF (a 1024x768 GOP
//! framebuffer) and checks the console text and the trace; `display-limine-uefi` does the same
//! with the real-Limine ISO when a Limine folder is given (`--limine DIR` or `LIMINE_DIR`), and
//! is reported as skipped without one.

use std::path::Path;
use std::time::{Duration, Instant};

use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster};

use super::shell::{Event, Input, Step, drive, report};
use super::vga::Monitor;
use super::{Case, check};
use crate::Result;
use crate::artifacts::{self, Artifacts};
use crate::qemu::{self, Boot};
use crate::symbolize::Symbolizer;

// ---- Text mode ------------------------------------------------------------------------------

/// The text-mode panel: its first row (the readout) and its row count (25 * 3 / 8).
pub const TEXT_PANEL_TOP: usize = 16;
const TEXT_PANEL_ROWS: usize = 9;
/// Panel attributes (servers/vga `scope`): readout, trace, graticule.
const TEXT_READOUT: u8 = 0x30;
const TEXT_TRACE: u8 = 0x0A;
const TEXT_GRID: u8 = 0x08;

/// Whether an 80x25 text-buffer dump shows the wave panel and nothing else in its rows (see
/// the module documentation); the reason when not.
pub fn text_panel(screen: &[u8]) -> Result<(), String> {
    let cell = |x: usize, y: usize| -> (u8, u8) {
        let i = (y * 80 + x) * 2;
        (
            screen.get(i).copied().unwrap_or(0),
            screen.get(i + 1).copied().unwrap_or(0),
        )
    };
    let top = TEXT_PANEL_TOP;
    let readout: String = (0..10).map(|x| cell(x, top).0 as char).collect();
    if readout != "HSYNC-Wave" {
        return Err(format!("row {top} starts {readout:?}, not the readout"));
    }
    if let Some(x) = (0..80).find(|&x| cell(x, top).1 != TEXT_READOUT) {
        return Err(format!("readout cell ({x}, {top}) is {:?}", cell(x, top)));
    }
    let mut prev: Option<(usize, usize)> = None;
    for x in 0..80 {
        let mut dots = Vec::new();
        for r in 0..TEXT_PANEL_ROWS - 1 {
            let y = top + 1 + r;
            let (t, b) = match cell(x, y) {
                (0xDB, TEXT_TRACE) => (true, true),
                (0xDF, TEXT_TRACE) => (true, false),
                (0xDC, TEXT_TRACE) => (false, true),
                (b' ' | 0xC4 | 0xB3 | 0xC5, TEXT_GRID) => (false, false),
                other => return Err(format!("cell ({x}, {y}) is {other:?}: not a panel cell")),
            };
            dots.extend(t.then_some(2 * r));
            dots.extend(b.then_some(2 * r + 1));
        }
        let (Some(&lo), Some(&hi)) = (dots.first(), dots.last()) else {
            return Err(format!("column {x} has no trace"));
        };
        if let Some((plo, phi)) = prev
            && (lo > phi + 1 || plo > hi + 1)
        {
            return Err(format!(
                "columns {} and {x} of the trace do not touch",
                x - 1
            ));
        }
        prev = Some((lo, hi));
    }
    Ok(())
}

// ---- Pictures -------------------------------------------------------------------------------

/// An RGB picture (QEMU's screendump).
pub struct Ppm {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Three bytes per pixel, rows top to bottom.
    pub rgb: Vec<u8>,
}

impl Ppm {
    /// Parses a binary PPM (`P6`, maxval 255).
    pub fn parse(data: &[u8]) -> Result<Ppm> {
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            while at < data.len() && data[at].is_ascii_whitespace() {
                at += 1;
            }
            if data.get(at) == Some(&b'#') {
                while at < data.len() && data[at] != b'\n' {
                    at += 1;
                }
                continue;
            }
            let start = at;
            while at < data.len() && !data[at].is_ascii_whitespace() {
                at += 1;
            }
            if start == at {
                return Err("PPM header cut short".into());
            }
            fields.push(String::from_utf8_lossy(&data[start..at]).into_owned());
        }
        at += 1; // the one whitespace byte before the pixels
        let num = |s: &str| {
            s.parse::<usize>()
                .map_err(|_| format!("PPM header field {s:?}"))
        };
        if fields[0] != "P6" || num(&fields[3])? != 255 {
            return Err(format!("not a P6 PPM with maxval 255: {fields:?}"));
        }
        let (width, height) = (num(&fields[1])?, num(&fields[2])?);
        let rgb = data
            .get(at..at + width * height * 3)
            .ok_or("PPM pixels cut short")?
            .to_vec();
        Ok(Ppm { width, height, rgb })
    }

    /// The pixel at `(x, y)` as 0xRRGGBB (0 outside).
    pub fn pixel(&self, x: usize, y: usize) -> u32 {
        if x >= self.width || y >= self.height {
            return 0;
        }
        let i = (y * self.width + x) * 3;
        (u32::from(self.rgb[i]) << 16)
            | (u32::from(self.rgb[i + 1]) << 8)
            | u32::from(self.rgb[i + 2])
    }
}

/// Writes `img` as a PNG.
pub fn write_png(path: &Path, img: &Ppm) -> Result<()> {
    let file =
        std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut enc = png::Encoder::new(
        std::io::BufWriter::new(file),
        img.width as u32,
        img.height as u32,
    );
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::High);
    let mut w = enc
        .write_header()
        .map_err(|e| format!("PNG {}: {e}", path.display()))?;
    w.write_image_data(&img.rgb)
        .map_err(|e| format!("PNG {}: {e}", path.display()))
}

/// The oscilloscope's newest sweep (servers/vga `scope::TRACE`, exact: older sweeps are dimmer).
const TRACE: u32 = 0x40FF70;

/// Whether the picture shows a connected trace (see the module documentation): at least
/// `min_span` columns wide, every column from its first to its last holding trace pixels,
/// neighbours touching, and all of it in the bottom half of the screen. The span when so.
pub fn fb_trace(img: &Ppm, min_span: usize) -> Result<(usize, usize), String> {
    let col = |x: usize| -> Option<(usize, usize)> {
        let ys: Vec<usize> = (0..img.height)
            .filter(|&y| img.pixel(x, y) == TRACE)
            .collect();
        Some((*ys.first()?, *ys.last()?))
    };
    let cols: Vec<usize> = (0..img.width).filter(|&x| col(x).is_some()).collect();
    let (Some(&first), Some(&last)) = (cols.first(), cols.last()) else {
        return Err("no trace pixels (0x40FF70) in the picture".into());
    };
    if last - first + 1 < min_span {
        return Err(format!(
            "the trace spans columns {first}..={last}, fewer than {min_span}"
        ));
    }
    let mut prev: Option<(usize, usize)> = None;
    for x in first..=last {
        let Some((lo, hi)) = col(x) else {
            return Err(format!(
                "column {x} has no trace pixels (the trace spans {first}..={last})"
            ));
        };
        if lo < img.height / 2 {
            return Err(format!(
                "trace pixel at ({x}, {lo}): above the panel, in the console"
            ));
        }
        // The pixels of one column form one run (no gap inside a column).
        let run = (lo..=hi).filter(|&y| img.pixel(x, y) == TRACE).count();
        if run != hi - lo + 1 {
            return Err(format!("column {x}: trace pixels {lo}..={hi} with gaps"));
        }
        if let Some((plo, phi)) = prev
            && (lo > phi + 1 || plo > hi + 1)
        {
            return Err(format!(
                "columns {} ({plo}..={phi}) and {x} ({lo}..={hi}) do not touch",
                x - 1
            ));
        }
        prev = Some((lo, hi));
    }
    Ok((first, last))
}

/// Whether `text` shows at cell `(col, row)` (8x16 cells) in `fg` on `bg`: every pixel of
/// every glyph equals the font's coverage blended over the background, within 3 per channel.
pub fn fb_text(
    img: &Ppm,
    col: usize,
    row: usize,
    text: &str,
    fg: u32,
    bg: u32,
) -> Result<(), String> {
    for (i, ch) in text.chars().enumerate() {
        let r = get_raster(ch, FontWeight::Regular, RasterHeight::Size16)
            .ok_or_else(|| format!("{ch:?} is not in the font"))?;
        let (x0, y0) = ((col + i) * 8, row * 16);
        for y in 0..16 {
            for x in 0..8 {
                let a = r.pixel(x, y).unwrap_or(0);
                let want = blend(fg, bg, a);
                let got = img.pixel(x0 + x, y0 + y);
                let close = (0..3).all(|c| {
                    let s = c * 8;
                    ((want >> s) & 0xFF).abs_diff((got >> s) & 0xFF) <= 3
                });
                if !close {
                    return Err(format!(
                        "{ch:?} at cell ({}, {row}): pixel ({x}, {y}) is {got:#08x}, the font \
                         gives {want:#08x}",
                        col + i
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `fg` over `bg` at coverage `a` (as servers/vga blends).
fn blend(fg: u32, bg: u32, a: u8) -> u32 {
    let a = u32::from(a);
    let ch = |s: u32| {
        let (f, b) = ((fg >> s) & 0xFF, (bg >> s) & 0xFF);
        ((f * a + b * (255 - a) + 127) / 255) << s
    };
    ch(16) | ch(8) | ch(0)
}

/// Takes a screendump through the monitor into `path` (PPM) and reads it back.
pub fn screendump(mon: &mut Monitor, path: &Path) -> Result<Ppm> {
    let _ = std::fs::remove_file(path);
    mon.command(&format!("screendump {}", path.display()))
        .ok_or("the monitor stopped answering")?;
    // QEMU writes the file before it answers; allow a moment for a slow host.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(data) = std::fs::read(path)
            && let Ok(img) = Ppm::parse(&data)
        {
            return Ok(img);
        }
        if Instant::now() > until {
            return Err(format!("no screendump at {}", path.display()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---- The framebuffer suite ------------------------------------------------------------------

/// The framebuffer suites' names (`--filter display`): the GRUB ISO, the real-Limine ISO.
pub const SUITE: &str = "display-uefi";
/// See [`SUITE`].
pub const LIMINE_SUITE: &str = "display-limine-uefi";

/// The shell's greeting: its line is the console's third row (status line, vga's banner).
const GREETING: &str = "HSYNC-OS shell: type `help`";
/// Light grey on black: the console's default colours.
const CONSOLE_FG: u32 = 0xAAAAAA;

/// The session: greeting (picture 0), `wave on`, a few commands while it runs, picture 1,
/// `display`, then `clear` and `mem` (picture 2: the console region holds only `mem`'s two
/// lines at its top, the panel still runs), poweroff.
const SESSION: &[Step] = &[
    Step {
        after: GREETING,
        input: Input::Serial(b"wave on\r"),
    },
    Step {
        after: "wave: visualizer on",
        input: Input::Serial(b"ps\r"),
    },
    Step {
        after: "  #  name          state",
        input: Input::Serial(b"mem\r"),
    },
    Step {
        after: " objects",
        input: Input::Serial(b"display\r"),
    },
    Step {
        after: "display: frames=",
        input: Input::Serial(b"clear\rmem\r"),
    },
    Step {
        after: " objects",
        input: Input::Serial(b"poweroff\r"),
    },
];

/// The steps whose pictures are taken (before their input): the greeting, the wave, after
/// `clear`.
const PICTURES: [usize; 3] = [0, 3, 5];

/// What a picture must show: the greeting at row 2, a connected trace, or after `clear` the
/// `mem` report at the console's top, the cursor under it and nothing else down to the panel
/// (and the trace).
fn picture_ok(i: usize, img: &Ppm) -> Result<(), String> {
    match i {
        0 => fb_text(img, 0, 2, GREETING, CONSOLE_FG, 0),
        3 => fb_trace(img, img.width * 3 / 4).map(|_| ()),
        _ => {
            fb_text(img, 0, 1, "memory: ", CONSOLE_FG, 0)?;
            fb_text(img, 0, 2, "kernel: ", CONSOLE_FG, 0)?;
            // Rows 3.. of the console region (the panel starts at 5/8 of the screen) are blank
            // but for the cursor's underline in cell (0, 3).
            let panel_top = img.height * 5 / 8;
            let cursor = |x: usize, y: usize| x < 8 && y < 4 * 16;
            if let Some((x, y)) = (3 * 16..panel_top)
                .flat_map(|y| (0..img.width).map(move |x| (x, y)))
                .find(|&(x, y)| img.pixel(x, y) != 0 && !cursor(x, y))
            {
                return Err(format!("after `clear`: pixel ({x}, {y}) is not background"));
            }
            // The cursor: an underline (cell rows 13 and 14) where the next glyph goes.
            if let Some(x) = (0..8).find(|&x| img.pixel(x, 3 * 16 + 13) != CONSOLE_FG) {
                return Err(format!(
                    "no cursor underline in cell (0, 3): pixel ({x}, 61)"
                ));
            }
            fb_trace(img, img.width * 3 / 4).map(|_| ())
        }
    }
}

/// Runs the selected suites: one boot each, under OVMF.
pub fn run(
    a: &Artifacts,
    symbolizer: &Symbolizer,
    filter: &dyn Fn(&str) -> bool,
    limine: Option<std::path::PathBuf>,
) -> Result<super::limine::Report> {
    let mut report = super::limine::Report {
        cases: Vec::new(),
        skipped: Vec::new(),
    };
    if filter(SUITE) {
        let iso = crate::images::system_iso(a, "")?;
        report.cases.extend(session(SUITE, iso, symbolizer)?);
    }
    if filter(LIMINE_SUITE) {
        match limine {
            None => {
                crate::tools::step(&format!(
                    "suite `{LIMINE_SUITE}` skipped: no Limine folder (--limine DIR or LIMINE_DIR)"
                ));
                report.skipped.push(LIMINE_SUITE.to_owned());
            }
            Some(dir) => {
                let iso = crate::images::Limine::prepare(&dir)
                    .and_then(|l| crate::images::limine_iso(a, &l, "display-limine.iso", ""));
                match iso {
                    Ok(iso) => report.cases.extend(session(LIMINE_SUITE, iso, symbolizer)?),
                    Err(e) => report.cases.push(check(
                        LIMINE_SUITE,
                        "image",
                        false,
                        format!("Limine ISO from {}: {e}", dir.display()),
                    )),
                }
            }
        }
    }
    Ok(report)
}

/// One boot of `iso` under OVMF: pictures of the greeting and of the wave, then the verdicts.
fn session(suite: &str, iso: std::path::PathBuf, symbolizer: &Symbolizer) -> Result<Vec<Case>> {
    crate::tools::step(&format!("QEMU suite `{suite}`"));
    let out = artifacts::out_dir();
    let sock = out.join(format!("{suite}-monitor.sock"));
    let _ = std::fs::remove_file(&sock);
    let machine = qemu::with_monitor(&sock);
    let boot = Boot::Cdrom { iso, uefi: true };
    let mut pictures: Vec<Result<Ppm>> = Vec::new();
    let session = drive(
        &machine,
        &boot,
        &sock,
        SESSION,
        Duration::from_secs(240),
        symbolizer,
        |event, monitor| {
            let Event::Step(i) = event else { return };
            if !PICTURES.contains(&i) {
                return;
            }
            if monitor.is_none() {
                *monitor = Monitor::connect(&sock, Instant::now() + Duration::from_secs(10));
            }
            // Pictures until the screen shows what is looked for (the console's text reaches
            // vga a moment after serial; the wave needs its timing run and a few frames), or
            // the time is up; the last one is judged.
            let path = out.join(format!("{suite}-{i}.ppm"));
            let until = Instant::now() + Duration::from_secs(10);
            let mut last: Result<Ppm> = Err("no QEMU monitor connection".into());
            while let Some(m) = monitor.as_mut() {
                last = screendump(m, &path);
                let good = last.as_ref().is_ok_and(|img| picture_ok(i, img).is_ok());
                if good || Instant::now() > until {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            pictures.push(last);
        },
    )?;
    let _ = std::fs::remove_file(&sock);
    let results = judge(
        suite,
        &session.output,
        session.typed,
        session.status,
        &pictures,
    );
    report(
        suite,
        &results,
        &session.output,
        session.elapsed,
        session.status,
    );
    Ok(results)
}

/// The geometry vga logged: `framebuffer console WxHxBPP`.
pub fn logged_geometry(output: &str) -> Option<(u32, u32, u32)> {
    let l = output
        .lines()
        .find(|l| l.contains("vga: framebuffer console "))?;
    let rest = &l[l.find("console ")? + 8..];
    let mut it = rest
        .split_whitespace()
        .next()?
        .split('x')
        .map(|n| n.parse().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

fn judge(
    suite: &str,
    output: &str,
    typed: usize,
    status: Option<i32>,
    pictures: &[Result<Ppm>],
) -> Vec<Case> {
    let geometry = logged_geometry(output);
    // Picture `n` (of the step PICTURES[n]) judged.
    let judged = |n: usize| match pictures.get(n) {
        Some(Ok(img)) => picture_ok(PICTURES[n], img),
        Some(Err(e)) => Err(e.clone()),
        None => Err(format!("no picture at session step {}", PICTURES[n])),
    };
    let (text, trace, cleared) = (judged(0), judged(1), judged(2));
    let status_line = match pictures.first() {
        Some(Ok(img)) => fb_text(img, 1, 0, "HSYNC-OS | up ", 0x000000, CONSOLE_FG),
        _ => Err("no picture".into()),
    };
    vec![
        check(
            suite,
            "framebuffer_console",
            geometry.is_some_and(|(w, h, _)| w >= 640 && h >= 480),
            format!("vga logged no framebuffer console (geometry {geometry:?})"),
        ),
        check(
            suite,
            "console_text_is_the_font",
            text.is_ok(),
            text.err().unwrap_or_default(),
        ),
        check(
            suite,
            "status_line",
            status_line.is_ok(),
            status_line.err().unwrap_or_default(),
        ),
        check(
            suite,
            "trace_is_connected",
            trace.is_ok(),
            trace.err().unwrap_or_default(),
        ),
        check(
            suite,
            "clear_blanks_the_console",
            cleared.is_ok(),
            cleared.err().unwrap_or_default(),
        ),
        check(
            suite,
            "frame_stats",
            output
                .lines()
                .any(|l| l.starts_with("display: frames=") && !l.starts_with("display: frames=0 ")),
            "`display` reported no wave frames",
        ),
        check(
            suite,
            "poweroff_exits_0",
            typed == SESSION.len() && status == Some(0),
            format!(
                "reached {typed} of {} steps; QEMU exit status {status:?}",
                SESSION.len()
            ),
        ),
        check(
            suite,
            "no_fault",
            !output.contains("KERNEL PANIC") && !output.contains("faulted"),
            "a panic or a server fault during the session",
        ),
    ]
}

/// Whether `filter` selects a framebuffer suite.
pub fn wanted(filter: &dyn Fn(&str) -> bool) -> bool {
    filter(SUITE) || filter(LIMINE_SUITE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text screen with a panel whose trace climbs and falls one dot per column (connected).
    fn panel_screen() -> Vec<u8> {
        let mut s = vec![0u8; 4000];
        let mut put = |x: usize, y: usize, c: (u8, u8)| {
            s[(y * 80 + x) * 2] = c.0;
            s[(y * 80 + x) * 2 + 1] = c.1;
        };
        for x in 0..80 {
            put(x, 0, (b"hsync> ".get(x).copied().unwrap_or(b' '), 0x07));
            put(
                x,
                16,
                (
                    b"HSYNC-Wave  phase".get(x).copied().unwrap_or(b' '),
                    TEXT_READOUT,
                ),
            );
            let dot = if (x / 16) % 2 == 0 {
                x % 16
            } else {
                15 - x % 16
            };
            for r in 0..8 {
                let c = match (2 * r == dot, 2 * r + 1 == dot) {
                    (true, _) => (0xDF, TEXT_TRACE),
                    (_, true) => (0xDC, TEXT_TRACE),
                    _ => (if r == 4 { 0xC4 } else { b' ' }, TEXT_GRID),
                };
                put(x, 17 + r, c);
            }
        }
        s
    }

    #[test]
    fn text_panel_wants_only_panel_cells_and_a_connected_trace() {
        let good = panel_screen();
        assert_eq!(text_panel(&good), Ok(()));
        // Console text in a panel row.
        let mut s = good.clone();
        s[(20 * 80 + 3) * 2] = b'x';
        s[(20 * 80 + 3) * 2 + 1] = 0x07;
        assert!(text_panel(&s).unwrap_err().contains("(3, 20)"));
        // A column without trace.
        let mut s = good.clone();
        for r in 0..8 {
            s[((17 + r) * 80 + 5) * 2] = b' ';
            s[((17 + r) * 80 + 5) * 2 + 1] = TEXT_GRID;
        }
        assert!(
            text_panel(&s)
                .unwrap_err()
                .contains("column 5 has no trace")
        );
        assert!(text_panel(&vec![b' '; 4000]).is_err());
        // Column 40 jumps to the top dot: its neighbours (dot 8) do not reach it.
        let mut s = good;
        for r in 0..8 {
            let c = if r == 0 {
                (0xDF, TEXT_TRACE)
            } else {
                (b' ', TEXT_GRID)
            };
            s[((17 + r) * 80 + 40) * 2] = c.0;
            s[((17 + r) * 80 + 40) * 2 + 1] = c.1;
        }
        assert!(text_panel(&s).unwrap_err().contains("do not touch"));
    }

    fn picture(w: usize, h: usize, f: impl Fn(usize, usize) -> u32) -> Ppm {
        let mut rgb = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let p = f(x, y);
                rgb.extend([(p >> 16) as u8, (p >> 8) as u8, p as u8]);
            }
        }
        Ppm {
            width: w,
            height: h,
            rgb,
        }
    }

    #[test]
    fn ppm_round_trip_and_png() {
        let img = picture(3, 2, |x, y| (x * 0x10 + y) as u32 * 0x010101);
        let mut data = b"P6\n# QEMU\n3 2\n255\n".to_vec();
        data.extend(&img.rgb);
        let p = Ppm::parse(&data).unwrap();
        assert_eq!((p.width, p.height), (3, 2));
        assert_eq!(p.pixel(2, 1), 0x212121);
        assert!(Ppm::parse(b"P5\n1 1\n255\n\0").is_err());
        assert!(Ppm::parse(b"P6\n2 2\n255\n\0").is_err(), "cut short");
        let path = std::env::temp_dir().join(format!("xtask-{}.png", std::process::id()));
        write_png(&path, &p).unwrap();
        let png = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(&png[1..4], b"PNG");
    }

    #[test]
    fn trace_check_wants_every_column_connected_in_the_bottom_half() {
        // A diagonal trace in the bottom half, 2 px thick.
        let diag = |x: usize, y: usize| {
            let t = 60 + x / 2;
            if (10..90).contains(&x) && (y == t || y == t + 1) {
                TRACE
            } else {
                0x000A0C
            }
        };
        let img = picture(100, 120, diag);
        assert_eq!(fb_trace(&img, 50), Ok((10, 89)));
        assert!(fb_trace(&img, 90).is_err(), "narrower than asked");
        // A missing column.
        let img = picture(100, 120, |x, y| if x == 40 { 0 } else { diag(x, y) });
        assert!(fb_trace(&img, 50).unwrap_err().contains("column 40"));
        // A jump between columns.
        let jump = |x: usize, y: usize| {
            let t = if x < 50 { 70 } else { 90 };
            if (10..90).contains(&x) && y == t {
                TRACE
            } else {
                0
            }
        };
        assert!(
            fb_trace(&picture(100, 120, jump), 50)
                .unwrap_err()
                .contains("do not touch")
        );
        // Trace pixels in the console (top half).
        let high = |x: usize, y: usize| {
            if (10..90).contains(&x) && y == 20 {
                TRACE
            } else {
                0
            }
        };
        assert!(
            fb_trace(&picture(100, 120, high), 50)
                .unwrap_err()
                .contains("console")
        );
    }

    #[test]
    fn text_check_compares_with_the_font() {
        // Draw "Hi" at cell (1, 2) as servers/vga would.
        let draw = |x: usize, y: usize| -> u32 {
            let (cx, cy) = (x / 8, y / 16);
            let ch = match (cx, cy) {
                (1, 2) => 'H',
                (2, 2) => 'i',
                _ => return 0,
            };
            let r = get_raster(ch, FontWeight::Regular, RasterHeight::Size16).unwrap();
            blend(CONSOLE_FG, 0, r.pixel(x % 8, y % 16).unwrap_or(0))
        };
        let img = picture(64, 64, draw);
        assert_eq!(fb_text(&img, 1, 2, "Hi", CONSOLE_FG, 0), Ok(()));
        assert!(fb_text(&img, 1, 2, "Ho", CONSOLE_FG, 0).is_err());
        assert!(
            fb_text(&img, 2, 2, "Hi", CONSOLE_FG, 0).is_err(),
            "wrong cell"
        );
        assert!(
            fb_text(&img, 1, 2, "Hi", 0xFFFFFF, 0).is_err(),
            "wrong colour"
        );
    }

    #[test]
    fn geometry_from_the_log() {
        let out = "x\n[vga] INFO  hsync_vga: vga: framebuffer console 1024x768x32 pitch 4096 at \
                   0x80000000, 128x48 cells\n";
        assert_eq!(logged_geometry(out), Some((1024, 768, 32)));
        assert_eq!(logged_geometry("nothing"), None);
    }
}
