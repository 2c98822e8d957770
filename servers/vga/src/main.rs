//! `vga`: the display server. It drives the 80x25 VGA text buffer at physical 0xB8000 (the
//! MMIO frame the manifest grants) as a console and serves `servers/vga-api` on its export:
//! text with colours, a cursor (the hardware cursor, when the CRTC ports 0x3D4..=0x3D5 are
//! granted), clearing, scrolling, and cell plotting for waveforms. The console logic is in the
//! library (`lib.rs`, host-tested); this file only turns root's grants into a [`Screen`].
//!
//! When root grants the boot framebuffer (manifest `framebuffer = true` and a loader that set
//! one up: Limine, GRUB), the console runs on it instead ([`FbScreen`]: an anti-aliased 8x16
//! font, colours, an underline cursor, scrolling, the pixel operations and the pixel
//! oscilloscope, drawn into a back buffer and presented by damaged spans). The direct
//! (Multiboot) boot keeps the BIOS's 80x25 text mode and has no framebuffer; then the pixel
//! operations answer `NotSupported` and the wave panel is drawn in CP437 cells.
//!
//! Either way the screen has a status line on its top row (uptime from the kernel clock, the
//! CPU count, IPC per second from the kernel's fast-path handoff counter, the phase server's
//! steps per second).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use hsync_root_api::Start;
use hsync_vga::fb::{FbScreen, Surface};
use hsync_vga::{Console, Sample, Screen};
use hsync_vga_api::VgaServer;
use libhsync::hw::{IoPorts, Mmio};
use libhsync::{Endpoint, StartArgs};

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

/// The status line's readings: the kernel clock, the kernel's IPC fast-path handoff counter
/// (`system_info` counters page; every `call`/`reply_recv` that went straight to its peer), and
/// the CPU count. The kernel schedules on the boot CPU only and reports no CPU count yet, so
/// that is 1.
fn sample() -> Sample {
    Sample {
        now_ns: libhsync::clock(),
        ipc: libhsync::sysinfo::kernel_counters()
            .ok()
            .map(|c| c.fast_handoffs),
        cpus: 1,
    }
}

/// The mapped framebuffer (write-combining), written by whole spans (`Mmio::write_bytes`).
struct FbMem(Mmio);

impl Surface for FbMem {
    fn write(&mut self, offset: usize, bytes: &[u8]) {
        self.0.write_bytes(offset, bytes);
    }
}

/// Clears the screen, shows a banner, reports ready and serves until serving fails.
fn run<S: Screen>(
    mut console: Console<S>,
    banner: &str,
    start: &mut Start,
    ep: &Endpoint,
    args: &mut StartArgs,
) -> i32 {
    console.set_sampler(sample);
    // A clean screen with a banner, so the firmware's boot text is not mixed into ours.
    let _ = console.clear(0);
    let _ = console.write(0, banner.as_bytes());
    if let Some(root) = start.root() {
        hsync_root_api::report_ready(&root, &mut args.ipc);
    }
    let err = console.serve(ep, &mut args.ipc);
    log::error!("vga: stopped serving: {err:?}");
    2
}

/// The framebuffer console, when root granted a framebuffer this server can draw on.
fn framebuffer(start: &mut Start) -> Option<Console<FbScreen<FbMem>>> {
    let (frame, base, size, g) = start.framebuffer()?;
    let mem = match Mmio::map(frame, size) {
        Ok(m) => m,
        Err(e) => {
            log::error!("vga: cannot map the framebuffer at {base:#x}: {e}; text mode");
            return None;
        }
    };
    if u64::from(g.pitch) * u64::from(g.height) > size {
        log::error!("vga: framebuffer geometry {g:?} exceeds its {size:#x} bytes; text mode");
        return None;
    }
    let screen = match FbScreen::new(FbMem(mem), g) {
        Ok(s) => s,
        Err(why) => {
            log::error!(
                "vga: unsupported framebuffer format {}x{} {} bpp pitch {} masks {:?}: {why}; \
                 using the VGA text console",
                g.width,
                g.height,
                g.bpp,
                g.pitch,
                g.rgb
            );
            return None;
        }
    };
    let (cols, rows) = screen.size();
    log::info!(
        "vga: framebuffer console {}x{}x{} pitch {} at {base:#x}, {cols}x{rows} cells, \
         back buffer {} KiB",
        g.width,
        g.height,
        g.bpp,
        g.pitch,
        u64::from(g.width) * u64::from(g.height) * 4 / 1024
    );
    Some(Console::new(screen))
}

fn main(mut args: StartArgs) -> i32 {
    let Some(mut start) = Start::take(&mut args) else {
        log::error!("vga: not started by root (no start layout)");
        return 1;
    };
    // The system log goes to the serial server (libhsync falls back to the kernel debug log
    // while it is down).
    if let Some(serial) = start.import("serial") {
        libhsync::logsink::set_endpoint(serial);
    }
    let Some(ep) = start.export(0) else {
        log::error!("vga: no endpoint to serve (export 0)");
        return 1;
    };
    if let Some(console) = framebuffer(&mut start) {
        let banner = "HSYNC-OS vga: framebuffer console\n";
        return run(console, banner, &mut start, &ep, &mut args);
    }
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
    let console = Console::new(TextMode { mem, crtc });
    log::info!(
        "vga: 80x25 text mode at {TEXT_BASE:#x}, hardware cursor {}",
        if console.screen().crtc.is_some() {
            "on"
        } else {
            "off"
        }
    );
    let banner = "HSYNC-OS vga: 80x25 text console\n";
    run(console, banner, &mut start, &ep, &mut args)
}
