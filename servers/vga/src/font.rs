//! The framebuffer console's font: code page 437 bytes drawn as 8x16 cells of 8-bit coverage
//! (0 = background, 255 = foreground; values between blend, so edges are anti-aliased).
//!
//! Letters, digits, punctuation and the accented Latin letters come from Noto Sans Mono as
//! pre-rasterized by the `noto-sans-mono-bitmap` crate (16 px high, 7 px wide, one coverage
//! byte per pixel; no_std, no allocation, no floating point). That crate was picked over the
//! `embedded-graphics` mono fonts because those are 1 bit per pixel (no anti-aliasing) and over
//! a PSF font because it needs no file format parser. It has no box-drawing or block-element
//! ranges, so CP437's lines, blocks and shades (0xB0..=0xDF, 0xFE) are drawn here as geometry
//! that fills the whole cell, as they must to join up. A byte with no glyph shows a hollow box.

use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster};

/// Glyph cell width in pixels.
pub const GLYPH_W: u32 = 8;
/// Glyph cell height in pixels.
pub const GLYPH_H: u32 = 16;

/// One cell's coverage, row-major, top row first.
pub type Glyph = [[u8; GLYPH_W as usize]; GLYPH_H as usize];

/// The Unicode character of each CP437 byte from 0x80 (the upper half).
const CP437_HIGH: [char; 128] = [
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å', //
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', '¢', '£', '¥', '₧', 'ƒ', //
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '⌐', '¬', '½', '¼', '¡', '«', '»', //
    '░', '▒', '▓', '│', '┤', '╡', '╢', '╖', '╕', '╣', '║', '╗', '╝', '╜', '╛', '┐', //
    '└', '┴', '┬', '├', '─', '┼', '╞', '╟', '╚', '╔', '╩', '╦', '╠', '═', '╬', '╧', //
    '╨', '╤', '╥', '╙', '╘', '╒', '╓', '╫', '╪', '┘', '┌', '█', '▄', '▌', '▐', '▀', //
    'α', 'ß', 'Γ', 'π', 'Σ', 'σ', 'µ', 'τ', 'Φ', 'Θ', 'Ω', 'δ', '∞', 'φ', 'ε', '∩', //
    '≡', '±', '≥', '≤', '⌠', '⌡', '÷', '≈', '°', '∙', '·', '√', 'ⁿ', '²', '■', '\u{A0}',
];

/// The Unicode character of CP437 byte `b` (control bytes map to themselves).
pub fn cp437(b: u8) -> char {
    match b {
        0..=0x7F => char::from(b),
        _ => CP437_HIGH[usize::from(b - 0x80)],
    }
}

/// Box-drawing lines of CP437 0xB3..=0xDA: (up, down, left, right), 0 none, 1 single, 2 double.
#[rustfmt::skip]
const BOX_LINES: [[u8; 4]; 40] = [
    [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 2, 0], [2, 2, 1, 0], [0, 2, 1, 0], // │ ┤ ╡ ╢ ╖
    [0, 1, 2, 0], [2, 2, 2, 0], [2, 2, 0, 0], [0, 2, 2, 0], [2, 0, 2, 0], // ╕ ╣ ║ ╗ ╝
    [2, 0, 1, 0], [1, 0, 2, 0], [0, 1, 1, 0], [1, 0, 0, 1], [1, 0, 1, 1], // ╜ ╛ ┐ └ ┴
    [0, 1, 1, 1], [1, 1, 0, 1], [0, 0, 1, 1], [1, 1, 1, 1], [1, 1, 0, 2], // ┬ ├ ─ ┼ ╞
    [2, 2, 0, 1], [2, 0, 0, 2], [0, 2, 0, 2], [2, 0, 2, 2], [0, 2, 2, 2], // ╟ ╚ ╔ ╩ ╦
    [2, 2, 0, 2], [0, 0, 2, 2], [2, 2, 2, 2], [1, 0, 2, 2], [2, 0, 1, 1], // ╠ ═ ╬ ╧ ╨
    [0, 1, 2, 2], [0, 2, 1, 1], [2, 0, 0, 1], [1, 0, 0, 2], [0, 1, 0, 2], // ╤ ╥ ╙ ╘ ╒
    [0, 2, 0, 1], [2, 2, 1, 1], [1, 1, 2, 2], [1, 0, 1, 0], [0, 1, 0, 1], // ╓ ╫ ╪ ┘ ┌
];

/// Columns of a vertical line (single: one; double: two) and rows of a horizontal one.
const V_SINGLE: &[usize] = &[3];
const V_DOUBLE: &[usize] = &[2, 5];
const H_SINGLE: &[usize] = &[7];
const H_DOUBLE: &[usize] = &[6, 9];

fn box_glyph(lines: [u8; 4]) -> Glyph {
    let mut g = [[0u8; 8]; 16];
    let [up, down, left, right] = lines;
    let cols = |w: u8| if w == 2 { V_DOUBLE } else { V_SINGLE };
    let rows = |w: u8| if w == 2 { H_DOUBLE } else { H_SINGLE };
    // The centre the arms meet at: the span the crossing lines cover.
    let (hv, hh) = (cols(up.max(down)), rows(left.max(right)));
    let (mid_y0, mid_y1) = (hh[0], hh[hh.len() - 1]);
    let (mid_x0, mid_x1) = (hv[0], hv[hv.len() - 1]);
    for (w, ys) in [(up, 0..=mid_y1), (down, mid_y0..=15)] {
        if w > 0 {
            for y in ys {
                for &x in cols(w) {
                    g[y][x] = 255;
                }
            }
        }
    }
    for (w, xs) in [(left, 0..=mid_x1), (right, mid_x0..=7)] {
        if w > 0 {
            for &y in rows(w) {
                for x in xs.clone() {
                    g[y][x] = 255;
                }
            }
        }
    }
    g
}

fn fill(f: impl Fn(usize, usize) -> u8) -> Glyph {
    core::array::from_fn(|y| core::array::from_fn(|x| f(x, y)))
}

/// The glyph of CP437 byte `b`.
pub fn glyph(b: u8) -> Glyph {
    match b {
        b' ' | 0 | 0xFF => [[0; 8]; 16],
        // Shades: an even dither at a quarter, half and three quarters.
        0xB0..=0xB2 => {
            let level = [64u8, 128, 192][usize::from(b - 0xB0)];
            fill(|_, _| level)
        }
        0xB3..=0xDA => box_glyph(BOX_LINES[usize::from(b - 0xB3)]),
        0xDB => fill(|_, _| 255),
        0xDC => fill(|_, y| if y >= 8 { 255 } else { 0 }),
        0xDD => fill(|x, _| if x < 4 { 255 } else { 0 }),
        0xDE => fill(|x, _| if x >= 4 { 255 } else { 0 }),
        0xDF => fill(|_, y| if y < 8 { 255 } else { 0 }),
        0xFE => fill(|x, y| {
            if (2..6).contains(&x) && (6..10).contains(&y) {
                255
            } else {
                0
            }
        }),
        _ => match get_raster(cp437(b), FontWeight::Regular, RasterHeight::Size16) {
            Some(r) => {
                let mut g = [[0u8; 8]; 16];
                for (y, row) in r.rows().enumerate().take(16) {
                    for (x, &v) in row.iter().enumerate().take(8) {
                        g[y][x] = v;
                    }
                }
                g
            }
            None => MISSING,
        },
    }
}

/// The hollow box shown for a byte without a glyph.
const MISSING: Glyph = {
    let mut g = [[0u8; 8]; 16];
    let mut y = 3;
    while y <= 12 {
        let edge = y == 3 || y == 12;
        let mut x = 1;
        while x <= 6 {
            if edge || x == 1 || x == 6 {
                g[y][x] = 255;
            }
            x += 1;
        }
        y += 1;
    }
    g
};

#[cfg(test)]
mod tests {
    use super::*;

    fn ink(g: &Glyph) -> u32 {
        g.iter().flatten().map(|&v| u32::from(v)).sum()
    }

    #[test]
    fn printable_ascii_comes_from_the_font_and_is_anti_aliased() {
        assert_eq!(ink(&glyph(b' ')), 0);
        for c in 0x21u8..=0x7E {
            let g = glyph(c);
            assert!(ink(&g) > 0, "{:?} is blank", c as char);
            assert_ne!(g, MISSING, "{:?} has no glyph", c as char);
            for d in c + 1..=0x7E {
                assert_ne!(g, glyph(d), "{:?} = {:?}", c as char, d as char);
            }
        }
        // Intensity, not bits: some pixels of `a` lie strictly between off and on.
        assert!(glyph(b'a').iter().flatten().any(|&v| v > 0 && v < 255));
        // The crate's raster, placed at the cell's top left (7 px wide: column 7 stays clear).
        let r = get_raster('H', FontWeight::Regular, RasterHeight::Size16).unwrap();
        assert_eq!((r.width(), r.height()), (7, 16));
        let g = glyph(b'H');
        for (y, row) in r.rows().enumerate() {
            assert_eq!(&g[y][..7], row);
            assert_eq!(g[y][7], 0);
        }
    }

    #[test]
    fn cp437_upper_half() {
        assert_eq!(cp437(0x82), 'é');
        assert_eq!(cp437(0xC4), '─');
        assert_eq!(cp437(0xDB), '█');
        assert_eq!(cp437(0xFE), '■');
        // Latin-1 letters come from the font.
        assert_ne!(glyph(0x82), MISSING);
        // No glyph in the font's ranges: the hollow box.
        assert_eq!(glyph(0xE0), MISSING, "α is not in the enabled ranges");
    }

    #[test]
    fn blocks_and_lines_fill_the_cell_so_they_join() {
        let full = glyph(0xDB);
        assert!(full.iter().flatten().all(|&v| v == 255));
        let (top, bottom) = (glyph(0xDF), glyph(0xDC));
        for y in 0..16 {
            for x in 0..8 {
                assert_eq!(top[y][x] == 255, y < 8);
                assert_eq!(top[y][x] ^ bottom[y][x], 255, "halves are complementary");
            }
        }
        // ─ spans the width, │ the height, ┼ both; they meet at one point.
        let h = glyph(0xC4);
        assert!((0..8).all(|x| h[7][x] == 255));
        let v = glyph(0xB3);
        assert!((0..16).all(|y| v[y][3] == 255));
        let cross = glyph(0xC5);
        assert!((0..8).all(|x| cross[7][x] == 255) && (0..16).all(|y| cross[y][3] == 255));
        // ═ has two rows; ╔ turns right and down with double lines.
        let d = glyph(0xCD);
        assert!((0..8).all(|x| d[6][x] == 255 && d[9][x] == 255 && d[7][x] == 0));
        let corner = glyph(0xC9);
        assert_eq!(corner[0][2], 0, "nothing above ╔");
        assert_eq!(corner[15][2], 255);
        assert_eq!(corner[6][7], 255);
        assert_eq!(corner[6][0], 0, "nothing left of ╔");
    }
}
