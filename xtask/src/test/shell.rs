//! The `shell` suite: the whole system boots (root, every manifest server), and a person's
//! session is typed into COM1 through QEMU's stdin (`-serial stdio`): `help`, a bad command,
//! garbage bytes and an over-long line, `ps`, `telemetry on`/`off`, `wave on`, `crash vga`,
//! `caps 0`, then `poweroff`. Checks: the help text and each error message come back on serial,
//! the shell keeps answering after bad input, `caps 0` lists server 0's handles (through root
//! and `handle_list`), and `poweroff` (root's `power` op, the kernel's ACPI S5) ends QEMU by
//! itself with exit status 0.
//!
//! Log routes: the kernel's debug log writes every line as `[<process>] <text>`; the serial
//! server writes its clients' `log` records as they are (`LEVEL target: message`). So a record
//! with no `[shell]`/`[phase]` in front reached COM1 through the serial server: the shell's own
//! records and the phase server's telemetry lines (at least two, ticks increasing; at most the
//! one in flight after `telemetry: off`, over at least [`QUIET_WANTED`]) are checked that way.
//!
//! The same boot also checks, through a QEMU monitor socket (`pmemsave`, `sendkey`): the VGA
//! text buffer at 0xB8000 shows the prompt `hsync>` after boot; keys typed on the PS/2 keyboard
//! (`h e l p ret`) reach the shell and the help text comes back on serial; `wave on` puts the
//! waveform's cells in the bottom rows; `crash vga` makes vga fault, root logs it and restarts
//! it, the shell reconnects and keeps answering (`ps` lists vga with one restart), and the
//! phase visualizer reconnects too: the new vga (which cleared the screen) shows the wave
//! again, moving.

use std::io::Write;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::path::Path;

use super::display;
use super::vga::Monitor;
use super::{Case, check};
use crate::Result;
use crate::artifacts::{self, Artifacts};
use crate::qemu::{self, Machine};
use crate::symbolize::Symbolizer;

/// The suite's name (`--filter shell`).
pub const SUITE: &str = "shell";

const TIMEOUT: Duration = Duration::from_secs(90);

/// What a step does.
pub(crate) enum Input {
    /// Bytes typed into COM1 (QEMU's stdin).
    Serial(&'static [u8]),
    /// PS/2 keys, one monitor `sendkey` each.
    Keys(&'static [&'static str]),
}

/// One step of the session: when a line contains `after`, type `input`.
pub(crate) struct Step {
    pub(crate) after: &'static str,
    pub(crate) input: Input,
}

/// A look at the VGA text buffer a scene takes before its input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Look {
    None,
    /// Until the prompt shows.
    Prompt,
    /// Until the waveform shows.
    Wave,
    /// Until two different frames of the waveform show (it is being drawn now).
    WaveMoving,
    /// Until the waveform and the `help` text's last line show (output while the wave runs).
    WaveAndText,
}

/// A step of this suite's session: once its line came, `look` at the screen, wait `pause`
/// (output keeps being collected meanwhile), then type the step's input.
struct Scene {
    step: Step,
    look: Look,
    pause: Duration,
}

impl AsRef<Step> for Scene {
    fn as_ref(&self) -> &Step {
        &self.step
    }
}

impl AsRef<Step> for Step {
    fn as_ref(&self) -> &Step {
        self
    }
}

impl Scene {
    /// When a line contains `after`, type `input`.
    const fn at(after: &'static str, input: Input) -> Scene {
        Scene {
            step: Step { after, input },
            look: Look::None,
            pause: Duration::ZERO,
        }
    }

    /// ... after looking at the screen for `look`.
    const fn look(after: &'static str, look: Look, input: Input) -> Scene {
        Scene {
            step: Step { after, input },
            look,
            pause: Duration::ZERO,
        }
    }

    /// ... after `pause`.
    const fn later(after: &'static str, pause: Duration, input: Input) -> Scene {
        Scene {
            step: Step { after, input },
            look: Look::None,
            pause,
        }
    }
}

/// A telemetry line, as the phase server logs it (`log` target `phase-telemetry`).
const TELEMETRY: &str = "phase-telemetry: tick=";
/// The shell's answer to `telemetry off`.
const TELEMETRY_OFF: &str = "telemetry: off";
/// How long after `telemetry: off` the session must go on for "the lines stop" to mean
/// something: three telemetry periods (the phase server logs twice a second).
const QUIET_WANTED: Duration = Duration::from_millis(1500);

/// The help text's last line (the end of a `help` answer).
pub(crate) const HELP_END: &str = "  reboot           restart the machine";

/// The session. Each step waits for the previous answer, so input never races the shell.
const SESSION: &[Scene] = &[
    // The shell is up: its prompt should be on the screen too.
    Scene::look(
        "HSYNC-OS shell: type `help`",
        Look::Prompt,
        Input::Serial(b"help\r"),
    ),
    // The same command on the keyboard: its answer goes to serial too.
    Scene::at(HELP_END, Input::Keys(&["h", "e", "l", "p", "ret"])),
    // An unknown command, then bytes that are not text, then a line far over the limit.
    Scene::at(HELP_END, Input::Serial(b"fsck /\r\xff\xfe\x01\x1b[A")),
    Scene::at("unknown command `fsck`", Input::Serial(LONG_LINE)),
    Scene::at("line too long", Input::Serial(b"ps\r")),
    // `ps`'s header: the shell finishes the listing before it reads the next line.
    Scene::at("  #  name          state", Input::Serial(b"telemetry on\r")),
    // Two telemetry lines (nothing typed after the first), then off.
    Scene::at(TELEMETRY, Input::Serial(b"")),
    Scene::at(TELEMETRY, Input::Serial(b"telemetry off\r")),
    // Long enough for lines that did not stop to show.
    Scene::later(TELEMETRY_OFF, QUIET_WANTED, Input::Serial(b"wave on\r")),
    Scene::look("wave: visualizer on", Look::Wave, Input::Serial(b"help\r")),
    // Output scrolls above the panel, never through it.
    Scene::look(HELP_END, Look::WaveAndText, Input::Serial(b"crash vga\r")),
    Scene::look("vga: reconnected", Look::WaveMoving, Input::Serial(b"ps\r")),
    Scene::at("  #  name          state", Input::Serial(b"caps 0\r")),
    // `caps`'s header: the listing follows it in the same output.
    Scene::at(
        "  slot  kind            rights",
        Input::Serial(b"poweroff\r"),
    ),
];

/// 300 `x` and a CR: more than the shell's 120-byte line.
const LONG_LINE: &[u8] = &{
    let mut l = [b'x'; 301];
    l[300] = b'\r';
    l
};

/// Runs the suite: one boot.
pub fn run(system: &Artifacts, symbolizer: &Symbolizer) -> Result<Vec<Case>> {
    crate::tools::step(&format!("QEMU suite `{SUITE}`"));
    let boot = qemu::system_boot(system, "");
    let sock = artifacts::out_dir().join("shell-monitor.sock");
    let dump = artifacts::out_dir().join("shell-screen.bin");
    let _ = std::fs::remove_file(&sock);
    let machine = qemu::with_monitor(&sock);
    let mut screens = Screens::default();
    let mut off_at = None;
    let session = drive(
        &machine,
        &boot,
        &sock,
        SESSION,
        TIMEOUT,
        symbolizer,
        |event, monitor| match event {
            Event::Line(line) => {
                if off_at.is_none() && line.contains(TELEMETRY_OFF) {
                    off_at = Some(Instant::now());
                }
            }
            Event::Step(i) => {
                let Some(scene) = SESSION.get(i) else { return };
                if scene.look != Look::None && monitor.is_none() {
                    *monitor = Monitor::connect(&sock, Instant::now() + MONITOR_WAIT);
                }
                if let Some(m) = monitor.as_mut() {
                    let dumps = look(m, &dump, scene.look);
                    match scene.look {
                        Look::None => {}
                        Look::Prompt => screens.prompt = dumps,
                        Look::Wave => screens.wave = dumps,
                        Look::WaveMoving => screens.wave_again = dumps,
                        Look::WaveAndText => screens.wave_text = dumps,
                    }
                }
                std::thread::sleep(scene.pause);
            }
        },
    )?;
    // How long the session went on after `telemetry: off` (until QEMU ended or was stopped).
    let quiet = off_at.map(|t| session.ended_at.saturating_duration_since(t));
    let Session {
        mut output,
        typed: next,
        status,
        elapsed,
        ..
    } = session;
    let _ = std::fs::remove_file(&sock);
    for (what, dumps) in [
        ("after boot", &screens.prompt),
        ("after `wave on`", &screens.wave),
        ("after vga restarted", &screens.wave_again),
        ("after `help` with the wave on", &screens.wave_text),
    ] {
        if let Some(last) = dumps.last() {
            output.push_str(&format!(
                "xtask: the VGA text buffer {what} (last of {} dumps):\n{}",
                dumps.len(),
                glyph_rows(last)
            ));
        }
    }
    let results = judge(&output, next, status, &screens, quiet);
    report(SUITE, &results, &output, elapsed, status);
    Ok(results)
}

/// What a driven session left.
pub(crate) struct Session {
    /// Serial output, symbolized, with xtask's own notes.
    pub output: String,
    /// Steps whose input was sent.
    pub typed: usize,
    /// QEMU's exit status when it ended by itself; `None` when it was stopped at the timeout.
    pub status: Option<i32>,
    /// Wall time of the boot.
    pub elapsed: Duration,
    /// When the session stopped reading (QEMU ended, or the timeout).
    pub ended_at: Instant,
}

/// What [`drive`] shows its hook.
pub(crate) enum Event<'a> {
    /// A serial line (symbolized).
    Line(&'a str),
    /// Step `i` was reached; its input goes next.
    Step(usize),
}

/// Boots `boot` on `machine` (which must carry a monitor on `sock` when a step types keys or
/// a hook uses the monitor) and plays `steps` against the serial output until QEMU ends or
/// `timeout` passes. `hook` sees every serial line ([`Event::Line`]), and each step when it is
/// reached, just before its input is sent ([`Event::Step`]: to look at the screen, or wait).
pub(crate) fn drive<S: AsRef<Step>>(
    machine: &Machine,
    boot: &qemu::Boot,
    sock: &Path,
    steps: &[S],
    timeout: Duration,
    symbolizer: &Symbolizer,
    mut hook: impl FnMut(Event<'_>, &mut Option<Monitor>),
) -> Result<Session> {
    let mut cmd = qemu::command(machine, boot)?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start QEMU: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no QEMU stdin")?;
    let stdout = child.stdout.take().ok_or("no QEMU stdout")?;
    let (rx, reader) = qemu::line_reader(stdout);

    let deadline = start + timeout;
    let mut output = String::new();
    let mut typed = 0;
    let mut ended = false;
    let mut monitor: Option<Monitor> = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let line = match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => symbolizer.annotate(&line),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                ended = true;
                break;
            }
        };
        output.push_str(&line);
        output.push('\n');
        hook(Event::Line(&line), &mut monitor);
        let Some(step) = steps
            .get(typed)
            .map(AsRef::as_ref)
            .filter(|s| line.contains(s.after))
        else {
            continue;
        };
        hook(Event::Step(typed), &mut monitor);
        typed += 1;
        let sent = match step.input {
            Input::Serial(bytes) => type_serial(&mut stdin, bytes),
            Input::Keys(keys) => {
                if monitor.is_none() {
                    monitor = Monitor::connect(sock, deadline.min(Instant::now() + MONITOR_WAIT));
                }
                send_keys(monitor.as_mut(), keys)
            }
        };
        if let Err(e) = sent {
            output.push_str(&format!("xtask: {e}\n"));
            break;
        }
    }
    let ended_at = Instant::now();
    let status = if ended {
        child.wait().ok().and_then(|s| s.code())
    } else {
        let _ = child.kill();
        let _ = child.wait();
        None
    };
    drop(rx);
    let _ = reader.join();
    drop(monitor);
    Ok(Session {
        output,
        typed,
        status,
        elapsed: start.elapsed(),
        ended_at,
    })
}

/// Prints a QEMU suite's result line, and its output when a case failed.
pub(crate) fn report(
    suite: &str,
    results: &[Case],
    output: &str,
    elapsed: Duration,
    status: Option<i32>,
) {
    let failed = results.iter().filter(|c| !c.passed).count();
    eprintln!(
        "    {} tests, {failed} failed, {:.1} s, exit {status:?}",
        results.len(),
        elapsed.as_secs_f64()
    );
    if failed > 0 {
        eprintln!("---- output of suite `{suite}` ----\n{output}----");
    }
}

/// The text-buffer dumps each look took (raw 80x25 cells: glyph, attribute).
#[derive(Default)]
struct Screens {
    prompt: Vec<Vec<u8>>,
    wave: Vec<Vec<u8>>,
    wave_again: Vec<Vec<u8>>,
    wave_text: Vec<Vec<u8>>,
}

/// How long the monitor socket may take to accept.
pub(crate) const MONITOR_WAIT: Duration = Duration::from_secs(10);

/// Dumps the 80x25 text buffer with `pmemsave` into `dump` every 100 ms until `what` is seen
/// or five seconds pass; returns every dump read (none when the monitor stops answering).
fn look(mon: &mut Monitor, dump: &Path, what: Look) -> Vec<Vec<u8>> {
    let until = Instant::now() + Duration::from_secs(5);
    let mut dumps: Vec<Vec<u8>> = Vec::new();
    if what == Look::None {
        return dumps;
    }
    loop {
        let _ = std::fs::remove_file(dump);
        if mon
            .command(&format!("pmemsave 0xb8000 4000 \"{}\"", dump.display()))
            .is_none()
        {
            break;
        }
        if let Ok(screen) = std::fs::read(dump) {
            dumps.push(screen);
        }
        let done = match what {
            Look::None => true,
            Look::Prompt => dumps.iter().any(|d| glyph_rows(d).contains(PROMPT_TEXT)),
            Look::Wave => dumps.iter().any(|d| shows_wave(d)),
            Look::WaveMoving => wave_moved(&dumps),
            Look::WaveAndText => dumps.iter().any(|d| wave_and_text(d)),
        };
        if done || Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(dump);
    dumps
}

/// The wave panel's first row (servers/vga: the bottom 9 of 25 rows).
const WAVE_TOP: usize = display::TEXT_PANEL_TOP;

/// Whether a text-buffer dump shows the wave panel, and only the panel in its rows
/// ([`display::text_panel`]).
fn shows_wave(screen: &[u8]) -> bool {
    display::text_panel(screen).is_ok()
}

/// Whether two dumps show the waveform in different frames (someone is drawing it).
fn wave_moved(dumps: &[Vec<u8>]) -> bool {
    let mut waves = dumps.iter().filter(|d| shows_wave(d));
    waves
        .next()
        .is_some_and(|first| waves.any(|d| d[WAVE_TOP * 160..] != first[WAVE_TOP * 160..]))
}

/// Whether the panel shows with the `help` text's last line above it (in the console
/// region): output while the wave runs scrolls there and stays out of the panel.
fn wave_and_text(screen: &[u8]) -> bool {
    let rows = glyph_rows(screen);
    shows_wave(screen)
        && rows
            .lines()
            .take(WAVE_TOP)
            .any(|l| l.contains(HELP_END.trim()))
}

/// The shell's prompt as it shows on screen.
const PROMPT_TEXT: &str = "hsync>";

/// Rows of glyphs (even bytes) of a text-buffer dump, trailing blanks cut.
fn glyph_rows(screen: &[u8]) -> String {
    let mut out = String::new();
    for row in screen.chunks(160) {
        let line: String = row
            .iter()
            .step_by(2)
            .map(|&g| if g.is_ascii_graphic() { g as char } else { ' ' })
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Types `bytes` into COM1 (QEMU's stdin).
fn type_serial(stdin: &mut impl Write, bytes: &[u8]) -> std::result::Result<(), String> {
    stdin
        .write_all(bytes)
        .and_then(|()| stdin.flush())
        .map_err(|e| format!("writing QEMU stdin: {e}"))
}

/// `sendkey` each key, one at a time (press and release reach the guest before the next).
pub(crate) fn send_keys(
    mon: Option<&mut Monitor>,
    keys: &[&str],
) -> std::result::Result<(), String> {
    let mon = mon.ok_or("no QEMU monitor connection")?;
    for key in keys {
        mon.command(&format!("sendkey {key}"))
            .ok_or("the monitor stopped answering")?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// `ps` rows of `name`: (restarts, faults).
pub(crate) fn ps_rows<'a>(output: &'a str, name: &'a str) -> impl Iterator<Item = (u32, u32)> + 'a {
    output.lines().filter_map(move |l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            [_, n, "running", _, restarts, faults] if *n == name => {
                Some((restarts.parse().ok()?, faults.parse().ok()?))
            }
            _ => None,
        }
    })
}

/// Telemetry lines of `output`: the ticks of those before the shell's `telemetry: off` answer,
/// and how many came after it.
fn telemetry_ticks(output: &str) -> (Vec<Option<u64>>, usize) {
    let mut before = Vec::new();
    let mut after = 0;
    let mut off = false;
    for l in output.lines() {
        if let Some(at) = l.find(TELEMETRY) {
            if off {
                after += 1;
            } else {
                let digits: String = l[at + TELEMETRY.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                before.push(digits.parse().ok());
            }
        }
        off |= l.contains(TELEMETRY_OFF);
    }
    (before, after)
}

/// Whether every line with `marker` got it through the serial server: the kernel's debug log
/// would put `[<process>] ` in front of the record (kernel/src/syscall.rs `debug_log`); the
/// serial server writes the record as is, `LEVEL target: ...`. At least one such line.
fn via_serial_server(output: &str, marker: &str, process: &str) -> bool {
    let tag = format!("[{process}] ");
    let mut lines = output.lines().filter(|l| l.contains(marker)).peekable();
    lines.peek().is_some()
        && lines.all(|l| {
            let before = &l[..l.find(marker).unwrap_or(0)];
            before.ends_with("INFO  ") && !before.contains(&tag)
        })
}

/// The verdicts: `typed` steps were reached, QEMU ended with `status`, `screens` are the
/// text-buffer dumps, `quiet` is how long the session went on after `telemetry: off`.
fn judge(
    output: &str,
    typed: usize,
    status: Option<i32>,
    screens: &Screens,
    quiet: Option<Duration>,
) -> Vec<Case> {
    let has = |s: &str| output.contains(s);
    let (ticks, after_off) = telemetry_ticks(output);
    vec![
        check(
            SUITE,
            "system_ready",
            output
                .lines()
                .any(|l| l.contains("system ready:") && l.contains("shell")),
            "no `system ready` line naming the shell",
        ),
        check(
            SUITE,
            "help_on_serial",
            has("commands:") && has("  caps <pid>") && has(HELP_END),
            "the help text did not come back on serial",
        ),
        check(
            SUITE,
            "vga_shows_prompt",
            screens
                .prompt
                .iter()
                .any(|d| glyph_rows(d).contains(PROMPT_TEXT)),
            format!(
                "the VGA text buffer after boot has no `{PROMPT_TEXT}` ({} dumps)",
                screens.prompt.len()
            ),
        ),
        check(
            SUITE,
            "shell_logs_through_serial",
            via_serial_server(output, "hsync_shell: shell: ready (", "shell") && !has("[shell] "),
            "the shell's `log` records (`shell: ready`) did not reach COM1 through the serial \
             server (missing, or a `[shell]` debug-log line)",
        ),
        check(
            SUITE,
            "telemetry_lines_on_serial",
            ticks.len() >= 2
                && ticks.iter().all(Option::is_some)
                && ticks.windows(2).all(|w| w[0] < w[1]),
            format!("`telemetry on`: want two or more lines with rising ticks, got {ticks:?}"),
        ),
        check(
            SUITE,
            "telemetry_through_serial_server",
            via_serial_server(output, TELEMETRY, "phase"),
            "a telemetry line did not come through the serial server (or none came)",
        ),
        check(
            SUITE,
            "telemetry_stops",
            has(TELEMETRY_OFF) && after_off <= 1 && quiet.is_some_and(|q| q >= QUIET_WANTED),
            format!(
                "after `telemetry off`: {after_off} more lines (at most the one in flight \
                 allowed), watched for {quiet:?} (at least {QUIET_WANTED:?} needed)"
            ),
        ),
        check(
            SUITE,
            "wave_on_screen",
            screens.wave.iter().any(|d| shows_wave(d)),
            format!(
                "after `wave on`, no dump of the text buffer showed the waveform ({} dumps)",
                screens.wave.len()
            ),
        ),
        check(
            SUITE,
            "wave_and_console_apart",
            screens.wave_text.iter().any(|d| wave_and_text(d)),
            format!(
                "`help` while the wave ran: no dump showed the panel intact with the help text \
                 above it ({} dumps; last: {:?})",
                screens.wave_text.len(),
                screens.wave_text.last().map(|d| display::text_panel(d))
            ),
        ),
        check(
            SUITE,
            "wave_back_after_vga_restart",
            wave_moved(&screens.wave_again) && has("phase: visualizer reconnected to vga"),
            format!(
                "after vga restarted, the visualizer did not reconnect (logged: {}) and draw \
                 the moving waveform on the new vga ({} dumps)",
                has("phase: visualizer reconnected to vga"),
                screens.wave_again.len()
            ),
        ),
        check(
            SUITE,
            "keys_reach_the_shell",
            output.matches("commands:").count() >= 2 && output.matches(HELP_END).count() >= 2,
            "`help` typed with sendkey did not bring a second help text on serial",
        ),
        check(
            SUITE,
            "crash_vga_logged_and_restarted",
            has("server `vga` faulted: PageFault") && has("restarting `vga` (1 of"),
            "root did not log vga's fault and restart it",
        ),
        check(
            SUITE,
            "answers_after_vga_crash",
            has("vga: reconnected") && ps_rows(output, "vga").any(|r| r == (1, 1)),
            "after `crash vga`, `ps` did not list vga running with 1 restart and 1 fault",
        ),
        check(
            SUITE,
            "unknown_command_message",
            has("unknown command `fsck` (try `help`)"),
            "no message for an unknown command",
        ),
        check(
            SUITE,
            "long_line_message",
            has("line too long (at most 120 characters); discarded"),
            "no message for an over-long line",
        ),
        check(
            SUITE,
            "answers_after_bad_input",
            output
                .lines()
                .any(|l| l.contains("phase") && l.contains("running")),
            "`ps` after garbage bytes and a long line did not list the servers",
        ),
        check(
            SUITE,
            "caps_0_lists_handles",
            output
                .lines()
                .any(|l| l.starts_with("caps 0: ") && l.ends_with(" handles"))
                && output
                    .lines()
                    .any(|l| l.contains("Endpoint") && l.contains("SEND")),
            "`caps 0` did not list server 0's handles with kind and rights",
        ),
        check(
            SUITE,
            "poweroff_exits_0",
            typed == SESSION.len() && status == Some(0),
            format!(
                "reached {typed} of {} session steps; QEMU exit status {status:?}, not Some(0)",
                SESSION.len()
            ),
        ),
        check(
            SUITE,
            "no_fault",
            !has("KERNEL PANIC")
                && !has("panic:")
                && output
                    .lines()
                    .filter(|l| l.contains("faulted"))
                    .all(|l| l.contains("vga")),
            "a panic or a server fault (other than the asked-for vga crash) during the session",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text buffer: shell text on top (a prompt, the help text's last line), the wave panel
    /// below as vga draws it: the readout, then a trace one dot per column, shifted.
    fn wave_screen(shift: usize) -> Vec<u8> {
        let mut s = Vec::new();
        for y in 0..25 {
            for x in 0..80 {
                let dot = (x + shift) % 32;
                let dot = if dot < 16 { dot } else { 31 - dot };
                let c = match y {
                    0 => (b' ', 0x70),
                    1 => (b"hsync> ".get(x).copied().unwrap_or(b' '), 0x07),
                    2 => (HELP_END.as_bytes().get(x).copied().unwrap_or(b' '), 0x07),
                    y if y < WAVE_TOP => (b' ', 0x07),
                    y if y == WAVE_TOP => {
                        (b"HSYNC-Wave  phase".get(x).copied().unwrap_or(b' '), 0x30)
                    }
                    y => {
                        let r = y - WAVE_TOP - 1;
                        match (2 * r == dot, 2 * r + 1 == dot) {
                            (true, _) => (0xDF, 0x0A),
                            (_, true) => (0xDC, 0x0A),
                            _ => (b' ', 0x08),
                        }
                    }
                };
                s.extend([c.0, c.1]);
            }
        }
        s
    }

    fn good_screens() -> Screens {
        Screens {
            prompt: vec![wave_screen(0)],
            wave: vec![wave_screen(0)],
            wave_again: vec![vec![b' '; 4000], wave_screen(1), wave_screen(2)],
            wave_text: vec![wave_screen(3)],
        }
    }

    const GOOD: &str = "[root] system ready: serial vga ps2 phase shell\n\
        INFO  hsync_shell: shell: ready (2/2 input subscriptions)\n\
        commands:\n  caps <pid>       x\n  \
        reboot           restart the machine\ncommands:\n  \
        reboot           restart the machine\nunknown command `fsck` (try `help`)\n\
        line too long (at most 120 characters); discarded\n  3  phase         running\n\
        telemetry: on\n\
        INFO  phase-telemetry: tick=10 phase=0x0 steps=0 words=0 sine=0 wave=false\n\
        INFO  phase-telemetry: tick=20 phase=0x0 steps=0 words=0 sine=0 wave=false\n\
        telemetry: off\n\
        INFO  phase-telemetry: tick=30 phase=0x0 steps=0 words=0 sine=0 wave=false\n\
        wave: visualizer on\n\
        root: server `vga` faulted: PageFault address=0x0\n\
        root: restarting `vga` (1 of 3)\nvga: faulted as asked; root restarts it\n\
        vga: reconnected\nINFO  hsync_phase: phase: visualizer reconnected to vga\n\
        1  vga           running     20         1       1\n\
        caps 0: 5 handles\n     0  Endpoint        SEND|RECV\n";

    const QUIET: Option<Duration> = Some(Duration::from_secs(3));

    fn failed(out: &str, typed: usize, status: Option<i32>, screens: &Screens) -> Vec<String> {
        judge(out, typed, status, screens, QUIET)
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn shell_judge_needs_every_answer_and_exit_0() {
        let (good, screens) = (GOOD, good_screens());
        let n = SESSION.len();
        assert!(failed(good, n, Some(0), &screens).is_empty());
        assert_eq!(failed(good, n, None, &screens), ["shell::poweroff_exits_0"]);
        assert_eq!(
            failed(good, 2, Some(0), &screens),
            ["shell::poweroff_exits_0"]
        );
        assert_eq!(
            failed(&good.replace("commands:", ""), n, Some(0), &screens),
            ["shell::help_on_serial", "shell::keys_reach_the_shell"]
        );
        assert_eq!(
            failed(&good.replacen("commands:", "", 1), n, Some(0), &screens),
            ["shell::keys_reach_the_shell"]
        );
        let faulted = format!("{good}[root] server `phase` faulted: PageFault\n");
        assert_eq!(failed(&faulted, n, Some(0), &screens), ["shell::no_fault"]);
        assert_eq!(
            failed(
                &good.replace("running     20         1", "running     20         0"),
                n,
                Some(0),
                &screens
            ),
            ["shell::answers_after_vga_crash"]
        );
        let no_prompt = Screens {
            prompt: vec![vec![b' '; 4000]],
            ..good_screens()
        };
        assert_eq!(
            failed(good, n, Some(0), &no_prompt),
            ["shell::vga_shows_prompt"]
        );
        assert_eq!(glyph_rows(&[b'h', 7, b'i', 7, b' ', 7]), "hi\n");
    }

    #[test]
    fn log_routes_are_told_apart_by_the_debug_log_prefix() {
        let screens = good_screens();
        let n = SESSION.len();
        let debug_log = GOOD.replace("INFO  hsync_shell", "[shell] INFO  hsync_shell");
        assert_eq!(
            failed(&debug_log, n, Some(0), &screens),
            ["shell::shell_logs_through_serial"]
        );
        let debug_log = GOOD.replacen("INFO  phase-telemetry", "[phase] INFO  phase-telemetry", 1);
        assert_eq!(
            failed(&debug_log, n, Some(0), &screens),
            ["shell::telemetry_through_serial_server"]
        );
        // A serial-server line cut into by other output still counts by what precedes it.
        let cut = GOOD.replace(
            "INFO  phase-telemetry: tick=20",
            "telem INFO  phase-telemetry: tick=20",
        );
        assert!(failed(&cut, n, Some(0), &screens).is_empty());
    }

    #[test]
    fn telemetry_needs_rising_ticks_and_to_stop() {
        let screens = good_screens();
        let n = SESSION.len();
        let one = GOOD.replacen(
            "INFO  phase-telemetry: tick=10 phase=0x0 steps=0 words=0 sine=0 wave=false\n",
            "",
            1,
        );
        assert_eq!(
            failed(&one, n, Some(0), &screens),
            ["shell::telemetry_lines_on_serial"]
        );
        let falling = GOOD.replace("tick=20", "tick=5");
        assert_eq!(
            failed(&falling, n, Some(0), &screens),
            ["shell::telemetry_lines_on_serial"]
        );
        let more = GOOD.replace(
            "wave: visualizer on\n",
            "INFO  phase-telemetry: tick=40\nwave: visualizer on\n",
        );
        assert_eq!(
            failed(&more, n, Some(0), &screens),
            ["shell::telemetry_stops"]
        );
        let short = judge(GOOD, n, Some(0), &screens, Some(Duration::from_millis(600)));
        assert_eq!(
            short
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["shell::telemetry_stops"]
        );
    }

    #[test]
    fn wave_checks_want_wave_cells_drawn_after_the_restart() {
        let n = SESSION.len();
        let blank = vec![b' '; 4000];
        // Shell text alone (panel glyphs in the shell's colours) is no waveform.
        let mut text = wave_screen(0);
        for c in text.chunks_mut(2).skip(WAVE_TOP * 80) {
            c[1] = 0x07;
        }
        assert!(shows_wave(&wave_screen(3)) && !shows_wave(&text) && !shows_wave(&blank));
        let no_wave = Screens {
            wave: vec![text.clone()],
            ..good_screens()
        };
        assert_eq!(
            failed(GOOD, n, Some(0), &no_wave),
            ["shell::wave_on_screen"]
        );
        // One frame left standing (nobody drawing) is not enough after the restart.
        let frozen = Screens {
            wave_again: vec![wave_screen(1), wave_screen(1)],
            ..good_screens()
        };
        assert_eq!(
            failed(GOOD, n, Some(0), &frozen),
            ["shell::wave_back_after_vga_restart"]
        );
        let unlogged = GOOD.replace("phase: visualizer reconnected to vga", "");
        assert_eq!(
            failed(&unlogged, n, Some(0), &good_screens()),
            ["shell::wave_back_after_vga_restart"]
        );
        // Console text scrolled into the panel's rows.
        let mut overlap = wave_screen(3);
        overlap[(20 * 80 + 1) * 2..(20 * 80 + 3) * 2].copy_from_slice(&[b'h', 0x07, b'i', 0x07]);
        let overlapping = Screens {
            wave_text: vec![overlap],
            ..good_screens()
        };
        assert_eq!(
            failed(GOOD, n, Some(0), &overlapping),
            ["shell::wave_and_console_apart"]
        );
    }
}
