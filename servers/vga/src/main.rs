//! `vga`: the display server. It drives the 80x25 VGA text buffer at physical 0xB8000 (the
//! MMIO frame the manifest grants) as a console and serves `servers/vga-api` on its export:
//! text with colours, a cursor (the hardware cursor, when the CRTC ports 0x3D4..=0x3D5 are
//! granted), clearing, scrolling, and cell plotting for waveforms. The console logic is in the
//! library (`lib.rs`, host-tested); this file only turns root's grants into a [`Screen`].
//!
//! Text mode is assumed because the loader left it: the direct (Multiboot) boot keeps the
//! BIOS's 80x25 mode, and no framebuffer reaches user space yet (the kernel's `BootInfo` has
//! one, but no call hands its geometry to root), so the framebuffer console and the pixel
//! operations are not implemented; they answer `NotSupported`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use hsync_root_api::Start;
use hsync_vga::{Console, Screen};
use hsync_vga_api::VgaServer;
use libhsync::StartArgs;
use libhsync::hw::{IoPorts, Mmio};

libhsync::entry!(main);

/// Physical address of the colour text buffer.
const TEXT_BASE: u64 = 0xB8000;
const COLS: u16 = 80;
const ROWS: u16 = 25;
/// Bytes the text buffer uses (one page maps it).
const MAP_LEN: u64 = 0x1000;

/// The VGA text buffer: a cell is a little-endian u16, glyph in the low byte.
struct TextMode {
    mem: Mmio,
    /// CRTC index/data ports (0x3D4, 0x3D5), when granted: moves the hardware cursor.
    crtc: Option<IoPorts>,
}

impl TextMode {
    fn offset(x: u16, y: u16) -> usize {
        (usize::from(y) * usize::from(COLS) + usize::from(x)) * 2
    }
}

impl Screen for TextMode {
    fn size(&self) -> (u16, u16) {
        (COLS, ROWS)
    }

    fn cell(&self, x: u16, y: u16) -> (u8, u8) {
        let [ch, attr] = self.mem.read_u16(Self::offset(x, y)).to_le_bytes();
        (ch, attr)
    }

    fn set_cell(&mut self, x: u16, y: u16, ch: u8, attr: u8) {
        self.mem
            .write_u16(Self::offset(x, y), u16::from_le_bytes([ch, attr]));
    }

    fn show_cursor(&mut self, x: u16, y: u16) {
        let Some(crtc) = &self.crtc else { return };
        let pos = y.min(ROWS - 1) * COLS + x.min(COLS - 1);
        // CRTC registers 0x0F / 0x0E: cursor location low / high byte.
        let [lo, hi] = pos.to_le_bytes();
        crtc.write_u8(0, 0x0F);
        crtc.write_u8(1, lo);
        crtc.write_u8(0, 0x0E);
        crtc.write_u8(1, hi);
    }
}

fn main(mut args: StartArgs) -> i32 {
    let Some(mut start) = Start::take(&mut args) else {
        log::error!("vga: not started by root (no start layout)");
        return 1;
    };
    let Some(ep) = start.export(0) else {
        log::error!("vga: no endpoint to serve (export 0)");
        return 1;
    };
    let mem = match start.mmio(0) {
        Some((frame, TEXT_BASE, size)) if size >= MAP_LEN => Mmio::map(frame, MAP_LEN),
        Some((_, base, size)) => {
            log::error!("vga: MMIO grant {base:#x}+{size:#x} is not the text buffer");
            return 1;
        }
        None => {
            log::error!("vga: no MMIO grant for the text buffer");
            return 1;
        }
    };
    let mem = match mem {
        Ok(m) => m,
        Err(e) => {
            log::error!("vga: cannot map the text buffer: {e}");
            return 1;
        }
    };
    let crtc = match start.io_port_range(0) {
        Some((range, 0x3D4, count)) if count >= 2 => match IoPorts::enable(range, 0x3D4, 2) {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn!("vga: CRTC ports not enabled ({e}); no hardware cursor");
                None
            }
        },
        _ => None,
    };
    let mut console = Console::new(TextMode { mem, crtc });
    // A clean screen with a banner, so the firmware's boot text is not mixed into ours.
    let _ = console.clear(0);
    let _ = console.write(0, b"HSYNC-OS vga: 80x25 text console\n");
    log::info!(
        "vga: 80x25 text mode at {TEXT_BASE:#x}, hardware cursor {}",
        if console.screen().crtc.is_some() {
            "on"
        } else {
            "off"
        }
    );
    if let Some(root) = start.root() {
        hsync_root_api::report_ready(&root, &mut args.ipc);
    }
    let err = console.serve(&ep, &mut args.ipc);
    log::error!("vga: stopped serving: {err:?}");
    2
}
