//! The kernel's `log` backend: serial (COM1), `[seconds] LEVEL target: message`.
//!
//! One record is one line, written under the console lock so lines from different contexts
//! never interleave. The timestamp is seconds since kernel entry with microsecond resolution
//! (TSC-based; `0.000000` until the TSC is calibrated, a few lines into boot).

use core::fmt::Write;

use log::{LevelFilter, Log, Metadata, Record};

use crate::arch;
use crate::boot::BootInfo;

struct SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ns = arch::uptime_ns();
        let (secs, micros) = (ns / 1_000_000_000, ns / 1000 % 1_000_000);
        let mut out = arch::console();
        // The console never fails; a formatting error (a broken `Display`) just ends the line.
        let _ = writeln!(
            out,
            "[{secs:5}.{micros:06}] {:<5} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

static LOGGER: SerialLogger = SerialLogger;

/// Level until the command line says otherwise.
const DEFAULT_LEVEL: LevelFilter = LevelFilter::Info;

/// Installs the serial logger. Called once by `arch::early_init`, right after the UART is up.
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(DEFAULT_LEVEL);
    }
}

/// Applies `log=error|warn|info|debug|trace` from the command line.
pub fn configure(info: &BootInfo) {
    let Some(value) = info.cmdline_value("log") else {
        return;
    };
    match value.parse::<LevelFilter>() {
        Ok(level) => log::set_max_level(level),
        Err(_) => log::warn!("ignoring unknown log level `log={value}`"),
    }
}

/// Prints the `HSYNC-OS <version>` banner and the boot summary.
pub fn banner(info: &BootInfo) {
    let (loader, loader_version) = info.bootloader;
    log::info!(
        target: "boot",
        "HSYNC-OS {} booted by {loader} {loader_version} ({:?}), cmdline \"{}\"",
        env!("CARGO_PKG_VERSION"),
        info.firmware,
        info.cmdline
    );
    log::info!(
        target: "boot",
        "kernel at {:#018x} (phys {:#x}), hhdm {:#018x}, {} memory map entries, {} module(s), rsdp {:?}",
        info.kernel_virt_base,
        info.kernel_phys_base,
        info.hhdm_offset,
        info.memory_map.len(),
        info.modules.len(),
        info.rsdp_phys.map(|p| p as *const u8),
    );
    for m in info.modules {
        log::info!(
            target: "boot",
            "module {} \"{}\" at {:#x}, {} bytes",
            m.path,
            m.string,
            m.phys,
            m.len
        );
    }
    match info.initfs() {
        Some(m) => log::info!(target: "boot", "initfs: {}", m.path),
        None => log::warn!(target: "boot", "no boot module: no initfs"),
    }
    match &info.framebuffer {
        Some(fb) => log::info!(
            target: "boot",
            "framebuffer {}x{}x{} pitch {} rgb {:?} at {:#x}",
            fb.width,
            fb.height,
            fb.bpp,
            fb.pitch,
            fb.rgb,
            fb.phys
        ),
        None => log::info!(target: "boot", "no framebuffer (VGA text mode, if any, is left alone)"),
    }
}
