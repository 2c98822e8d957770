//! The `shell` suite: the whole system boots (root, every manifest server), and a person's
//! session is typed into COM1 through QEMU's stdin (`-serial stdio`): `help`, a bad command,
//! garbage bytes and an over-long line, `ps`, `caps 0`, then `poweroff`. Checks: the help text
//! and each error message come back on serial, the shell keeps answering after bad input,
//! `caps 0` lists server 0's handles (through root and `handle_list`), and `poweroff` (root's
//! `power` op, the kernel's ACPI S5) ends QEMU by itself with exit status 0.
//!
//! The same boot also checks, through a QEMU monitor socket (`pmemsave`, `sendkey`): the VGA
//! text buffer at 0xB8000 shows the prompt `hsync>` after boot; keys typed on the PS/2 keyboard
//! (`h e l p ret`) reach the shell and the help text comes back on serial; and `crash vga`
//! makes vga fault, root logs it and restarts it, and the shell reconnects and keeps answering
//! (`ps` lists vga with one restart).

use std::io::Write;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::path::Path;

use super::vga::Monitor;
use super::{Case, check};
use crate::Result;
use crate::artifacts::{self, Artifacts};
use crate::qemu;
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

/// The help text's last line (the end of a `help` answer).
pub(crate) const HELP_END: &str = "  reboot           restart the machine";

/// The session. Each step waits for the previous answer, so input never races the shell.
const SESSION: &[Step] = &[
    Step {
        after: "HSYNC-OS shell: type `help`",
        input: Input::Serial(b"help\r"),
    },
    Step {
        after: HELP_END,
        // The same command on the keyboard: its answer goes to serial too.
        input: Input::Keys(&["h", "e", "l", "p", "ret"]),
    },
    Step {
        after: HELP_END,
        // An unknown command, then bytes that are not text, then a line far over the limit.
        input: Input::Serial(b"fsck /\r\xff\xfe\x01\x1b[A"),
    },
    Step {
        after: "unknown command `fsck`",
        input: Input::Serial(LONG_LINE),
    },
    Step {
        after: "line too long",
        input: Input::Serial(b"ps\r"),
    },
    Step {
        // `ps`'s header: the shell finishes the listing before it reads the next line.
        after: "  #  name          state",
        input: Input::Serial(b"crash vga\r"),
    },
    Step {
        after: "vga: reconnected",
        input: Input::Serial(b"ps\r"),
    },
    Step {
        after: "  #  name          state",
        input: Input::Serial(b"caps 0\r"),
    },
    Step {
        // `caps`'s header: the listing follows it in the same output.
        after: "  slot  kind            rights",
        input: Input::Serial(b"poweroff\r"),
    },
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
    let mut cmd = qemu::command(&machine, &boot)?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start QEMU: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no QEMU stdin")?;
    let stdout = child.stdout.take().ok_or("no QEMU stdout")?;
    let (rx, reader) = qemu::line_reader(stdout);

    let deadline = start + TIMEOUT;
    let mut output = String::new();
    let mut next = 0;
    let mut ended = false;
    let mut monitor: Option<Monitor> = None;
    let mut vga_prompt = None;
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
        if let Some(step) = SESSION.get(next)
            && line.contains(step.after)
        {
            next += 1;
            if next == 1 {
                // The shell is up: its prompt should be on the screen too.
                monitor = Monitor::connect(&sock, deadline.min(Instant::now() + MONITOR_WAIT));
                vga_prompt = monitor.as_mut().map(|m| screen_text(m, &dump));
            }
            let sent = match step.input {
                Input::Serial(bytes) => stdin
                    .write_all(bytes)
                    .and_then(|()| stdin.flush())
                    .map_err(|e| format!("writing QEMU stdin: {e}")),
                Input::Keys(keys) => send_keys(monitor.as_mut(), keys),
            };
            if let Err(e) = sent {
                output.push_str(&format!("xtask: {e}\n"));
                break;
            }
        }
    }
    // QEMU ends by itself on `poweroff`; anything else is stopped here.
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
    let _ = std::fs::remove_file(&sock);
    if let Some(Some(screen)) = &vga_prompt {
        output.push_str(&format!("xtask: the VGA text buffer after boot:\n{screen}"));
    }
    let results = judge(&output, next, status, vga_prompt.flatten().as_deref());
    let failed = results.iter().filter(|c| !c.passed).count();
    eprintln!(
        "    {} tests, {failed} failed, {:.1} s, exit {status:?}",
        results.len(),
        start.elapsed().as_secs_f64()
    );
    if failed > 0 {
        eprintln!("---- output of suite `{SUITE}` ----\n{output}----");
    }
    Ok(results)
}

/// How long the monitor socket may take to accept.
pub(crate) const MONITOR_WAIT: Duration = Duration::from_secs(10);

/// The glyphs of the 80x25 text buffer, one line per row (trailing blanks cut), read with
/// `pmemsave` into `dump` until a row shows the prompt or five seconds pass; `None` when the
/// monitor does not answer or no dump could be read.
fn screen_text(mon: &mut Monitor, dump: &Path) -> Option<String> {
    let until = Instant::now() + Duration::from_secs(5);
    let mut text = None;
    loop {
        let _ = std::fs::remove_file(dump);
        mon.command(&format!("pmemsave 0xb8000 4000 \"{}\"", dump.display()))?;
        if let Ok(screen) = std::fs::read(dump) {
            let t = glyph_rows(&screen);
            let done = t.contains(PROMPT_TEXT);
            text = Some(t);
            if done {
                break;
            }
        }
        if Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = std::fs::remove_file(dump);
    text
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

/// The verdicts: `typed` steps were reached, QEMU ended with `status`, `screen` is the text
/// buffer after boot.
fn judge(output: &str, typed: usize, status: Option<i32>, screen: Option<&str>) -> Vec<Case> {
    let has = |s: &str| output.contains(s);
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
            screen.is_some_and(|s| s.contains(PROMPT_TEXT)),
            format!("the VGA text buffer after boot has no `{PROMPT_TEXT}`: {screen:?}"),
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

    #[test]
    fn shell_judge_needs_every_answer_and_exit_0() {
        let good = "[root] system ready: serial vga ps2 phase shell\ncommands:\n  caps <pid>       x\n  \
                    reboot           restart the machine\ncommands:\n  \
                    reboot           restart the machine\nunknown command `fsck` (try `help`)\n\
                    line too long (at most 120 characters); discarded\n  3  phase         running\n\
                    root: server `vga` faulted: PageFault address=0x0\n\
                    root: restarting `vga` (1 of 3)\nvga: faulted as asked; root restarts it\n\
                    vga: reconnected\n  1  vga           running     20         1       1\n\
                    caps 0: 5 handles\n     0  Endpoint        SEND|RECV\n";
        let screen = Some("HSYNC-OS shell: type `help`\nhsync>\n");
        assert!(
            judge(good, SESSION.len(), Some(0), screen)
                .iter()
                .all(|c| c.passed)
        );
        let failed = |out: &str, typed, status| {
            judge(out, typed, status, screen)
                .into_iter()
                .filter(|c| !c.passed)
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            failed(good, SESSION.len(), None),
            ["shell::poweroff_exits_0"]
        );
        assert_eq!(failed(good, 2, Some(0)), ["shell::poweroff_exits_0"]);
        assert_eq!(
            failed(&good.replace("commands:", ""), SESSION.len(), Some(0)),
            ["shell::help_on_serial", "shell::keys_reach_the_shell"]
        );
        assert_eq!(
            failed(&good.replacen("commands:", "", 1), SESSION.len(), Some(0)),
            ["shell::keys_reach_the_shell"]
        );
        let faulted = format!("{good}[root] server `phase` faulted: PageFault\n");
        assert_eq!(
            failed(&faulted, SESSION.len(), Some(0)),
            ["shell::no_fault"]
        );
        assert_eq!(
            failed(
                &good.replace("running     20         1", "running     20         0"),
                SESSION.len(),
                Some(0)
            ),
            ["shell::answers_after_vga_crash"]
        );
        assert!(
            judge(good, SESSION.len(), Some(0), Some("nothing"))
                .iter()
                .any(|c| !c.passed && c.name == "shell::vga_shows_prompt")
        );
        assert_eq!(glyph_rows(&[b'h', 7, b'i', 7, b' ', 7]), "hi\n");
    }
}
