//! `phase`: the HSYNC phase engine (`servers/phase-engine`) as a server, and the HSYNC-Wave
//! visualizer.
//!
//! The main thread serves the `phase` protocol (`servers/phase-api`): `step` advances one shared
//! phase, `transform`/`inverse` run the engine over a client's words, `status` reports counters.
//! A second thread, the *ticker*, wakes every [`TICK_NS`]: when the visualizer is on it advances
//! its own display phase and redraws the live sine waveform in the bottom [`WAVE_ROWS`] rows of
//! the display through the `vga` server's cell API; when telemetry is on it prints one line
//! (`phase-telemetry: ...`) every [`TELEMETRY_TICKS`] ticks. The two threads share only
//! atomics.
//!
//! Start layout: root's (`hsync_root_api::Start`): export 0 is the `phase` endpoint; imports
//! `vga` (optional: without it `wave on` fails with `NoOutput`). Telemetry goes through the
//! `log`/debug-log path, which reaches serial. The server refuses hardware and policy.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use hsync_phase_api::{Bytes, FLAG_TELEMETRY, FLAG_WAVE, MAX_WORDS, PhaseError, PhaseServer};
use hsync_phase_engine::{Phase, WAVE_ONE, inverse_words, sine, transform_words};
use hsync_root_api::Start;
use hsync_vga_api::{Color, VgaClient, attr};
use libhsync::{Endpoint, IpcBuf, StartArgs};

libhsync::entry!(main);

/// Ticker period: 20 frames a second.
const TICK_NS: u64 = 50_000_000;
/// One telemetry line per this many ticks (twice a second).
const TELEMETRY_TICKS: u64 = 10;
/// Display size in cells (text mode; the framebuffer console presents the same grid).
const COLS: usize = 80;
const ROWS: u16 = 25;
/// Rows the waveform occupies, at the bottom of the display.
const WAVE_ROWS: u16 = 9;
/// Display-phase advance per tick, and per column (so the wave scrolls left).
const TICK_STEPS: u64 = 3;
const COLUMN_TURN: u64 = u64::MAX / 40; // two periods across 80 columns

/// State shared by the serving thread and the ticker.
static PHASE: AtomicU64 = AtomicU64::new(0);
static STEPS: AtomicU64 = AtomicU64::new(0);
static WORDS: AtomicU64 = AtomicU64::new(0);
static WAVE: AtomicBool = AtomicBool::new(false);
static TELEMETRY: AtomicBool = AtomicBool::new(false);
/// Raw handle value of the `vga` endpoint (0: none), owned by the ticker once started.
static VGA: AtomicU64 = AtomicU64::new(0);

struct PhaseService {
    has_vga: bool,
}

/// Runs `f` over `data` as little-endian words; `NotWords` unless it is whole words.
fn over_words(data: &[u8], f: impl FnOnce(&mut [u64])) -> Result<Bytes, PhaseError> {
    if !data.len().is_multiple_of(8) || data.len() / 8 > MAX_WORDS {
        return Err(PhaseError::NotWords);
    }
    let mut words = [0u64; MAX_WORDS];
    let n = data.len() / 8;
    for (w, c) in words.iter_mut().zip(data.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        *w = u64::from_le_bytes(b);
    }
    f(&mut words[..n]);
    WORDS.fetch_add(n as u64, Relaxed);
    let mut out = Bytes::new();
    for w in &words[..n] {
        out.extend(&w.to_le_bytes());
    }
    Ok(out)
}

impl PhaseServer for PhaseService {
    fn step(&mut self, _badge: u64, n: u64) -> Result<u64, PhaseError> {
        let p = Phase::new(PHASE.load(Relaxed)).advance(n);
        PHASE.store(p.raw(), Relaxed);
        STEPS.fetch_add(n, Relaxed);
        Ok(p.raw())
    }

    fn status(&mut self, _badge: u64) -> Result<(u64, u64, u64, u64), PhaseError> {
        let flags = if WAVE.load(Relaxed) { FLAG_WAVE } else { 0 }
            | if TELEMETRY.load(Relaxed) {
                FLAG_TELEMETRY
            } else {
                0
            };
        Ok((
            PHASE.load(Relaxed),
            STEPS.load(Relaxed),
            WORDS.load(Relaxed),
            flags,
        ))
    }

    fn transform(&mut self, _badge: u64, start: u64, data: &[u8]) -> Result<Bytes, PhaseError> {
        over_words(data, |w| {
            transform_words(Phase::new(start), w);
        })
    }

    fn inverse(&mut self, _badge: u64, start: u64, data: &[u8]) -> Result<Bytes, PhaseError> {
        over_words(data, |w| {
            inverse_words(Phase::new(start), w);
        })
    }

    fn wave(&mut self, _badge: u64, on: bool) -> Result<bool, PhaseError> {
        if on && !self.has_vga {
            return Err(PhaseError::NoOutput);
        }
        Ok(WAVE.swap(on, Relaxed))
    }

    fn telemetry(&mut self, _badge: u64, on: bool) -> Result<bool, PhaseError> {
        Ok(TELEMETRY.swap(on, Relaxed))
    }

    fn echo(&mut self, _badge: u64, x: u64) -> Result<u64, PhaseError> {
        Ok(x)
    }

    fn crash(&mut self, badge: u64) -> Result<(), PhaseError> {
        log::warn!("phase: crash requested by client {badge}; faulting on purpose");
        libhsync::fault::page_fault(0)
    }
}

/// The cells (character, attribute pairs) of waveform row `row` (0 = top of the wave area) for
/// display phase `at`: a `*` where the sine of that column's phase falls in this row, a dim
/// axis line in the middle row.
fn wave_row(at: Phase, row: u16, out: &mut [u8; COLS * 2]) {
    let mid = WAVE_ROWS / 2;
    for x in 0..COLS {
        let p = at.offset(Phase::new((x as u64).wrapping_mul(COLUMN_TURN)));
        // Map [-1, 1] onto rows WAVE_ROWS-1 ..= 0 (rounded).
        let s = i64::from(sine(p));
        let half = i64::from(mid);
        let y = half - (s * half + i64::from(WAVE_ONE) / 2).div_euclid(i64::from(WAVE_ONE));
        let (ch, a) = if y == i64::from(row) {
            (b'*', attr(Color::LightGreen, Color::Black))
        } else if row == mid {
            (b'-', attr(Color::DarkGray, Color::Black))
        } else {
            (b' ', attr(Color::LightGray, Color::Black))
        };
        out[2 * x] = ch;
        out[2 * x + 1] = a;
    }
}

fn draw(vga: &VgaClient, ipc: &mut IpcBuf, at: Phase) -> bool {
    let mut cells = [0u8; COLS * 2];
    for row in 0..WAVE_ROWS {
        wave_row(at, row, &mut cells);
        if let Err(e) = vga.put_cells(ipc, 0, ROWS - WAVE_ROWS + row, &cells) {
            log::warn!("phase: drawing the wave failed: {e}; visualizer off");
            return false;
        }
    }
    true
}

/// The ticker thread: visualizer frames and telemetry lines.
fn ticker(_arg: u64, mut ipc: IpcBuf) {
    let vga = match VGA.swap(0, Relaxed) {
        0 => None,
        raw => Some(VgaClient::new(Endpoint::from_raw(
            hsync_abi::Handle::from_raw(raw),
        ))),
    };
    let mut display = Phase::new(0);
    let mut tick: u64 = 0;
    let mut deadline = libhsync::clock();
    loop {
        deadline += TICK_NS;
        let _ = libhsync::sleep_until(deadline);
        tick = tick.wrapping_add(1);
        if WAVE.load(Relaxed) {
            display = display.advance(TICK_STEPS);
            if let Some(vga) = &vga
                && !draw(vga, &mut ipc, display)
            {
                WAVE.store(false, Relaxed);
            }
        }
        if TELEMETRY.load(Relaxed) && tick.is_multiple_of(TELEMETRY_TICKS) {
            let p = Phase::new(PHASE.load(Relaxed));
            libhsync::println!(
                "phase-telemetry: tick={} phase={:#018x} steps={} words={} sine={} wave={}",
                tick,
                p.raw(),
                STEPS.load(Relaxed),
                WORDS.load(Relaxed),
                sine(p),
                WAVE.load(Relaxed)
            );
        }
    }
}

fn main(mut args: StartArgs) -> i32 {
    let Some(mut start) = Start::take(&mut args) else {
        log::error!("phase: not started by root (no start layout)");
        return 1;
    };
    // The system log goes to the serial server (libhsync falls back to the kernel debug log
    // while it is down).
    if let Some(serial) = start.import("serial") {
        libhsync::logsink::set_endpoint(serial);
    }
    let Some(ep) = start.export(0) else {
        log::error!("phase: no endpoint to serve");
        return 1;
    };
    let vga = start.import("vga");
    let has_vga = vga.is_some();
    if let Some(v) = vga {
        VGA.store(v.into_raw().raw(), Relaxed);
    }
    if let Err(e) = libhsync::process::spawn_thread(ticker, 0, 16) {
        log::warn!("phase: no ticker thread ({e}): no visualizer or telemetry");
    }
    if let Some(root) = start.root() {
        hsync_root_api::report_ready(&root, &mut args.ipc);
    }
    log::info!(
        "phase: serving (visualizer {})",
        if has_vga { "ready" } else { "without vga" }
    );
    let err = PhaseService { has_vga }.serve(&ep, &mut args.ipc);
    log::error!("phase: stopped serving: {err:?}");
    2
}
