//! The `shell` suite: the whole system boots (root, every manifest server), and a person's
//! session is typed into COM1 through QEMU's stdin (`-serial stdio`): `help`, a bad command,
//! garbage bytes and an over-long line, `ps`, then `poweroff`. Checks: the help text and each
//! error message come back on serial, the shell keeps answering after bad input, and
//! `poweroff` ends QEMU by itself with exit status 0.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Case, check};
use crate::Result;
use crate::artifacts::Artifacts;
use crate::qemu::{self, Machine};
use crate::symbolize::Symbolizer;

/// The suite's name (`--filter shell`).
pub const SUITE: &str = "shell";

const TIMEOUT: Duration = Duration::from_secs(90);

/// One step of the session: when a line contains `after`, type `input`.
struct Step {
    after: &'static str,
    input: &'static [u8],
}

/// The session. Each step waits for the previous answer, so input never races the shell.
const SESSION: &[Step] = &[
    Step {
        after: "HSYNC-OS shell: type `help`",
        input: b"help\r",
    },
    Step {
        after: "  reboot           restart the machine",
        // An unknown command, then bytes that are not text, then a line far over the limit.
        input: b"fsck /\r\xff\xfe\x01\x1b[A",
    },
    Step {
        after: "unknown command `fsck`",
        input: LONG_LINE,
    },
    Step {
        after: "line too long",
        input: b"ps\r",
    },
    Step {
        // `ps`'s header: the shell finishes the listing before it reads the next line.
        after: "  #  name          state",
        input: b"poweroff\r",
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
    let mut cmd = qemu::command(&Machine::default(), &boot)?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start QEMU: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no QEMU stdin")?;
    let stdout = child.stdout.take().ok_or("no QEMU stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut buf = Vec::new();
        while lines.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            if tx.send(line).is_err() {
                break;
            }
            buf.clear();
        }
    });

    let deadline = start + TIMEOUT;
    let mut output = String::new();
    let mut next = 0;
    let mut ended = false;
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
            if let Err(e) = stdin.write_all(step.input).and_then(|()| stdin.flush()) {
                output.push_str(&format!("xtask: writing QEMU stdin: {e}\n"));
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

    let results = judge(&output, next, status);
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

/// The verdicts: `typed` steps were reached, QEMU ended with `status`.
fn judge(output: &str, typed: usize, status: Option<i32>) -> Vec<Case> {
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
            has("commands:")
                && has("  caps <pid>")
                && has("  reboot           restart the machine"),
            "the help text did not come back on serial",
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
            !has("KERNEL PANIC") && !has("faulted") && !has("panic:"),
            "a panic or a server fault during the session",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_judge_needs_every_answer_and_exit_0() {
        let good = "[root] system ready: serial vga ps2 phase shell\ncommands:\n  caps <pid>       x\n  \
                    reboot           restart the machine\nunknown command `fsck` (try `help`)\n\
                    line too long (at most 120 characters); discarded\n  3  phase         running\n";
        assert!(judge(good, SESSION.len(), Some(0)).iter().all(|c| c.passed));
        let failed = |out: &str, typed, status| {
            judge(out, typed, status)
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
            ["shell::help_on_serial"]
        );
        let faulted = format!("{good}[root] server `vga` faulted: PageFault\n");
        assert_eq!(
            failed(&faulted, SESSION.len(), Some(0)),
            ["shell::no_fault"]
        );
    }
}
