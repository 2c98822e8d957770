//! `phase`: the HSYNC phase engine (`servers/phase-core`) as a server, and the HSYNC-Wave
//! visualizer.
//!
//! The main thread serves the `phase` protocol (`servers/phase-api`): `step` advances one shared
//! phase, `transform`/`inverse` run the engine over a client's words, `status` reports counters.
//! A second thread, the *ticker*, wakes every [`TICK_NS`]: when the visualizer is on it advances
//! its own display phase and sends the vga server one frame of the live sine waveform
//! ([`hsync_phase::wave_frame`]: 240 samples over two turns) for the wave panel, which vga opens
//! at the bottom of the screen and draws (a pixel oscilloscope on a framebuffer, CP437 half
//! blocks in text mode); when telemetry is on it logs one line (target `phase-telemetry`)
//! every [`TELEMETRY_TICKS`] ticks. Once a second it sends vga the figures for the status line
//! and the wave readout: steps per second, and the results of the last timing run — a
//! dudect-style test of `transform_words` in this server ([`hsync_phase::dudect`], TSC timed,
//! run each time the visualizer is switched on), which also gives TSC cycles per word. The two
//! threads share only atomics.
//!
//! Start layout: root's (`hsync_root_api::Start`): export 0 is the `phase` endpoint; imports
//! `serial` (the `log` sink) and `vga` (optional: without it `wave on` fails with `NoOutput`).
//! Telemetry lines are `log` records, so they reach COM1 through the serial server like the rest
//! of the log (`libhsync::logsink`). When vga or serial restarts, the ticker reconnects through
//! root's `connect` with a bounded back-off ([`Link`]): the wave comes back on the new vga, the
//! log sink is re-pointed at the new serial. The server refuses hardware and policy.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use hsync_phase_api::{Bytes, FLAG_TELEMETRY, FLAG_WAVE, MAX_WORDS, PhaseError, PhaseServer};
use hsync_phase_core::{Phase, inverse_words, sine, transform_words};
use hsync_root_api::{RootClient, RootError, Start};
use hsync_vga_api::{NOT_MEASURED, VgaClient};
use libhsync::protocol::ProtocolError;
use libhsync::{Endpoint, IpcBuf, StartArgs};

libhsync::entry!(main);

/// Ticker period: 20 frames a second.
const TICK_NS: u64 = 50_000_000;
/// One telemetry line per this many ticks (twice a second).
const TELEMETRY_TICKS: u64 = 10;
/// The shortest sleep between two ticks.
const MIN_IDLE_NS: u64 = 20_000_000;
/// Figures for vga's status line and readout: once per this many ticks (a second).
const FIGURES_TICKS: u64 = 20;
/// Display-phase advance per tick (so the wave scrolls left): a 1/64 turn.
const TICK_TURN: u64 = 1 << 58;
/// Samples of the dudect-style run each `wave on` starts.
const DUDECT_SAMPLES: usize = 20_000;
/// Reconnect back-off: the longest gap between two attempts, and the attempts before giving up
/// (1+2+4+8+16+20*6 ticks: about 7.5 s).
const RETRY_MAX_TICKS: u64 = 20;
const RETRY_ATTEMPTS: u32 = 12;

/// State shared by the serving thread and the ticker.
static PHASE: AtomicU64 = AtomicU64::new(0);
static STEPS: AtomicU64 = AtomicU64::new(0);
static WORDS: AtomicU64 = AtomicU64::new(0);
static WAVE: AtomicBool = AtomicBool::new(false);
static TELEMETRY: AtomicBool = AtomicBool::new(false);

/// What the ticker thread is given (moved in): the `vga` endpoint, root (to reconnect with),
/// and whether root gave a `serial` import (the log sink is then kept pointed at serial).
struct Links {
    vga: Option<Endpoint>,
    root: Option<RootClient>,
    has_serial: bool,
}

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

/// Draws one frame of the wave at display phase `at`.
fn draw(vga: &VgaClient, ipc: &mut IpcBuf, at: Phase) -> Result<(), VgaCallError> {
    let mut samples = [0u8; hsync_phase::WAVE_SAMPLES * 2];
    hsync_phase::wave_frame(at, &mut samples);
    vga.wave(ipc, PHASE.load(Relaxed), &samples)
}

/// The last timing run of `transform_words` (dudect-style, TSC), for the readout.
fn time_engine() -> Option<hsync_phase::Leakage> {
    let t0 = libhsync::clock();
    let r = hsync_phase::dudect(DUDECT_SAMPLES, libhsync::rdtsc(), |words, phase| {
        let c0 = libhsync::rdtsc();
        transform_words(phase, words);
        libhsync::rdtsc().wrapping_sub(c0)
    });
    if let Some(l) = &r {
        log::info!(
            "phase: dudect-style run of transform_words: |t| = {}.{:02} over {} samples, \
             {}.{:02} TSC cycles/word, {} ms",
            l.t_x100 / 100,
            l.t_x100 % 100,
            l.kept,
            l.per_word_x100 / 100,
            l.per_word_x100 % 100,
            libhsync::clock().saturating_sub(t0) / 1_000_000
        );
    }
    r
}

/// Tells vga the figures for its status line and the wave readout (a failure is left to the
/// next frame to notice).
fn send_figures(
    vga: &VgaClient,
    ipc: &mut IpcBuf,
    steps_per_s: u64,
    leakage: Option<&hsync_phase::Leakage>,
) {
    let (cycles, t, n) = leakage.map_or((NOT_MEASURED, NOT_MEASURED, NOT_MEASURED), |l| {
        (l.per_word_x100, l.t_x100, l.kept)
    });
    let _ = vga.figures(ipc, steps_per_s, cycles, t, n);
}

/// What a reconnect attempt came to.
enum Retry {
    /// Not due yet (backing off).
    NotYet,
    /// A fresh endpoint to the restarted server.
    Connected(Endpoint),
    /// Root says no for good, or the attempts ran out.
    GaveUp,
}

/// A server connection the ticker remakes through root's `connect` after the server died:
/// the first attempt when the loss is seen (vga: on the next tick), then with the gap doubling
/// up to [`RETRY_MAX_TICKS`]; [`RETRY_ATTEMPTS`] attempts in all (about 7.5 s, longer than root
/// takes to restart a server). One attempt per due tick at most: it never spins.
struct Link {
    name: &'static str,
    next: u64,
    gap: u64,
    tries: u32,
}

impl Link {
    const fn new(name: &'static str) -> Link {
        Link {
            name,
            next: 0,
            gap: 1,
            tries: 0,
        }
    }

    /// Starts over: the next attempt is due at once.
    fn reset(&mut self) {
        *self = Link::new(self.name);
    }

    /// One attempt, if one is due at `tick`.
    fn retry(&mut self, root: Option<&RootClient>, ipc: &mut IpcBuf, tick: u64) -> Retry {
        if tick < self.next {
            return Retry::NotYet;
        }
        let Some(root) = root else {
            log::warn!("phase: no root endpoint: cannot reconnect to {}", self.name);
            return Retry::GaveUp;
        };
        match root.connect(ipc, self.name) {
            Ok(ep) => {
                self.reset();
                Retry::Connected(ep)
            }
            Err(ProtocolError::App(RootError::NotRunning)) if self.tries + 1 < RETRY_ATTEMPTS => {
                self.tries += 1;
                self.next = tick + self.gap;
                self.gap = (self.gap * 2).min(RETRY_MAX_TICKS);
                Retry::NotYet
            }
            Err(e) => {
                log::warn!(
                    "phase: reconnecting to {} failed ({e}) after {} attempts; giving up",
                    self.name,
                    self.tries + 1
                );
                self.reset();
                Retry::GaveUp
            }
        }
    }
}

/// The error of a `vga` call.
type VgaCallError = ProtocolError<hsync_vga_api::VgaError>;

/// The ticker thread: visualizer frames and telemetry lines, and reconnecting what they write
/// to (vga through `root.connect`; the serial log sink the same way) after a restart.
fn ticker(links: Links, mut ipc: IpcBuf) {
    let mut vga = links.vga.map(VgaClient::new);
    let (root, has_serial) = (links.root, links.has_serial);
    let mut vga_link = Link::new("vga");
    let mut serial_link = Link::new("serial");
    let mut serial_gave_up = false;
    // Set when a frame found vga dead; the wave comes back once vga does.
    let mut vga_lost = false;
    let mut display = Phase::new(0);
    let mut tick: u64 = 0;
    let mut deadline = libhsync::clock();
    // Whether vga has the panel open for us; the last timing run; the step counter a second ago.
    let mut panel_open = false;
    let mut leakage: Option<hsync_phase::Leakage> = None;
    let mut last_steps = (STEPS.load(Relaxed), deadline);
    let mut steps_per_s = NOT_MEASURED;
    loop {
        // Keep time, but always leave the CPU idle a while between ticks: a frame that took
        // longer than a tick must not turn the ticker (and vga, above the shell in priority)
        // into a busy loop that starves the shell.
        deadline = (deadline + TICK_NS).max(libhsync::clock() + MIN_IDLE_NS);
        let _ = libhsync::sleep_until(deadline);
        tick = tick.wrapping_add(1);
        // A `log` record that found the serial server dead dropped the sink (libhsync
        // logsink); point it at the restarted server.
        if has_serial && !serial_gave_up && !libhsync::logsink::active() {
            match serial_link.retry(root.as_ref(), &mut ipc, tick) {
                Retry::NotYet => {}
                Retry::Connected(ep) => {
                    libhsync::logsink::set_endpoint(ep);
                    log::info!("phase: log sink reconnected to serial");
                }
                Retry::GaveUp => serial_gave_up = true,
            }
        }
        if WAVE.load(Relaxed) {
            if vga_lost {
                match vga_link.retry(root.as_ref(), &mut ipc, tick) {
                    Retry::NotYet => {}
                    Retry::Connected(ep) => {
                        vga = Some(VgaClient::new(ep));
                        vga_lost = false;
                        log::info!("phase: visualizer reconnected to vga");
                    }
                    Retry::GaveUp => {
                        log::warn!("phase: vga is not back; visualizer off");
                        WAVE.store(false, Relaxed);
                    }
                }
            }
            if !vga_lost && let Some(v) = &vga {
                if !panel_open {
                    leakage = time_engine();
                    send_figures(v, &mut ipc, steps_per_s, leakage.as_ref());
                    match v.panel(&mut ipc, true) {
                        Ok(_) => panel_open = true,
                        Err(e) => log::warn!("phase: vga opens no wave panel: {e}"),
                    }
                }
                display = display.offset(Phase::new(TICK_TURN));
                match draw(v, &mut ipc, display) {
                    Ok(()) => {}
                    Err(ProtocolError::ServerDied) => {
                        log::warn!("phase: vga died; the visualizer reconnects");
                        vga_lost = true;
                        panel_open = false;
                        vga_link.reset();
                        vga_link.next = tick + 1;
                    }
                    Err(e) => {
                        log::warn!("phase: drawing the wave failed: {e}; visualizer off");
                        WAVE.store(false, Relaxed);
                    }
                }
            }
        } else if vga_lost {
            // Off while vga was away: the next `wave on` starts the attempts afresh.
            vga_link.reset();
        } else if panel_open {
            panel_open = false;
            if let Some(v) = &vga
                && let Err(e) = v.panel(&mut ipc, false)
            {
                log::warn!("phase: closing the wave panel: {e}");
            }
        }
        if tick.is_multiple_of(FIGURES_TICKS) {
            let now = (STEPS.load(Relaxed), libhsync::clock());
            steps_per_s =
                hsync_phase::rate(last_steps.0, now.0, now.1.saturating_sub(last_steps.1));
            last_steps = now;
            if !vga_lost && let Some(v) = &vga {
                send_figures(v, &mut ipc, steps_per_s, leakage.as_ref());
            }
        }
        if TELEMETRY.load(Relaxed) && tick.is_multiple_of(TELEMETRY_TICKS) {
            let p = Phase::new(PHASE.load(Relaxed));
            // A `log` record, so it travels like every other one: through the serial server
            // (one whole line on COM1), or the debug log while serial is down.
            log::info!(
                target: "phase-telemetry",
                "tick={} phase={:#018x} steps={} words={} sine={} wave={}",
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
    let serial = start.import("serial");
    let has_serial = serial.is_some();
    if let Some(serial) = serial {
        libhsync::logsink::set_endpoint(serial);
    }
    let Some(ep) = start.export(0) else {
        log::error!("phase: no endpoint to serve");
        return 1;
    };
    let vga = start.import("vga");
    let has_vga = vga.is_some();
    // Ready before the ticker takes root's endpoint (to reconnect with).
    let root = start.root();
    if let Some(root) = &root {
        hsync_root_api::report_ready(root, &mut args.ipc);
    }
    let links = Links {
        vga,
        root,
        has_serial,
    };
    if let Err(e) = libhsync::process::spawn_thread_with(ticker, links, 16) {
        log::warn!("phase: no ticker thread ({e}): no visualizer or telemetry");
    }
    log::info!(
        "phase: serving (visualizer {})",
        if has_vga { "ready" } else { "without vga" }
    );
    let err = PhaseService { has_vga }.serve(&ep, &mut args.ipc);
    log::error!("phase: stopped serving: {err:?}");
    2
}
