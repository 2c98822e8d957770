//! Driver bring-up suites (`serial`, `ps2`): a test initfs whose `root` is the driver itself. A
//! driver started as the first process holds the hardware authority, claims its device and
//! reports what it receives (servers/serial and servers/ps2, "bring-up"). xtask waits for the
//! driver's ready line, then types: bytes on QEMU's stdin (the `-serial stdio` line into COM1)
//! or `sendkey` on a QEMU monitor socket (the PS/2 keyboard), and waits for the driver to log
//! what arrived. Each boot ends at the expected line or its timeout.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Case, check, no_panic};
use crate::Result;
use crate::artifacts::{self, Artifacts};
use crate::qemu;
use crate::symbolize::Symbolizer;

/// How the suite types.
enum Input {
    /// Bytes written to COM1's receive side.
    Serial(&'static [u8]),
    /// QEMU monitor `sendkey` arguments, one per key.
    Keys(&'static [&'static str]),
}

/// One driver suite.
struct DriverSuite {
    name: &'static str,
    /// The driver crate, packed as `root`.
    crate_name: &'static str,
    /// The line that says the driver listens.
    ready: &'static str,
    input: Input,
    /// Lines that must appear after the input, in this order.
    expect: &'static [&'static str],
}

const TIMEOUT: Duration = Duration::from_secs(60);

const SUITES: &[DriverSuite] = &[
    DriverSuite {
        name: "serial",
        crate_name: "hsync-serial",
        ready: "serial: COM1 ready",
        // Two lines, the second with a byte that is not UTF-8 on its own and a CR ending.
        input: Input::Serial(b"hello hsync\nsecond \xff line\r"),
        expect: &[
            "serial: received line \"hello hsync\"",
            "serial: received line \"<not UTF-8>\"",
        ],
    },
    DriverSuite {
        name: "ps2",
        crate_name: "hsync-ps2",
        ready: "ps2: i8042 ready",
        input: Input::Keys(&["h", "e", "l", "l", "o", "shift-i", "ret"]),
        expect: &[
            "ps2: key H pressed (char Some('h'))",
            "ps2: key H released (char None)",
            "ps2: key O pressed (char Some('o'))",
            "ps2: key I pressed (char Some('I'))",
            "ps2: key Return pressed (char Some('\\n'))",
        ],
    },
];

/// Whether `filter` selects any driver suite.
pub fn wanted(filter: &dyn Fn(&str) -> bool) -> bool {
    SUITES.iter().any(|s| filter(s.name))
}

/// Runs the selected suites.
pub fn run(
    system: &Artifacts,
    symbolizer: &Symbolizer,
    filter: &dyn Fn(&str) -> bool,
) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for suite in SUITES.iter().filter(|s| filter(s.name)) {
        crate::tools::step(&format!("QEMU suite `{}`", suite.name));
        let (output, ok_exit) = boot(system, symbolizer, suite)?;
        let mut results = judge(suite, &output);
        results.push(check(
            suite.name,
            "bounded",
            ok_exit,
            "QEMU did not stop when asked",
        ));
        let failed = results.iter().filter(|c| !c.passed).count();
        eprintln!("    {} tests, {failed} failed", results.len());
        if failed > 0 {
            eprintln!("---- output of suite `{}` ----\n{output}----", suite.name);
        }
        cases.extend(results);
    }
    Ok(cases)
}

/// `ready` once, then each `expect` line in order (after the ready line), no panic.
fn judge(suite: &DriverSuite, output: &str) -> Vec<Case> {
    let lines: Vec<&str> = output.lines().collect();
    let ready = lines.iter().position(|l| l.contains(suite.ready));
    let mut cases = vec![check(
        suite.name,
        "ready",
        ready.is_some(),
        format!("no `{}` line", suite.ready),
    )];
    let mut at = ready.map_or(lines.len(), |i| i + 1);
    for (n, want) in suite.expect.iter().enumerate() {
        let found = lines[at.min(lines.len())..]
            .iter()
            .position(|l| l.contains(want));
        cases.push(check(
            suite.name,
            &format!("input_{n}"),
            found.is_some(),
            format!("no `{want}` line after the previous expectation"),
        ));
        if let Some(i) = found {
            at += i + 1;
        }
    }
    let crashed = output.contains("panic:") || output.contains("fault");
    cases.push(check(
        suite.name,
        "no_driver_fault",
        !crashed,
        "the driver panicked or faulted",
    ));
    cases.push(no_panic(
        suite.name,
        &qemu::Captured {
            outcome: qemu::Outcome::Timeout,
            output: output.to_owned(),
            elapsed: Duration::ZERO,
        },
    ));
    cases
}

/// One boot: returns the serial output and whether QEMU ended when told to.
fn boot(
    system: &Artifacts,
    symbolizer: &Symbolizer,
    suite: &DriverSuite,
) -> Result<(String, bool)> {
    let dir = system
        .kernel
        .parent()
        .ok_or("kernel path has no directory")?
        .to_owned();
    let elf = std::fs::read(dir.join(suite.crate_name))
        .map_err(|e| format!("cannot read {}: {e}", suite.crate_name))?;
    let mut b = hsync_initfs::Builder::new();
    b.add("version", b"HSYNC-OS driver bring-up\n".to_vec())
        .and_then(|b| b.add("root", elf))
        .map_err(|e| e.to_string())?;
    let initfs = artifacts::out_dir().join(format!("initfs-{}.img", suite.name));
    artifacts::write_file(&initfs, &b.finish())?;
    let sock = artifacts::out_dir().join(format!("{}-monitor.sock", suite.name));
    let _ = std::fs::remove_file(&sock);
    let machine = qemu::with_monitor(&sock);
    let boot = qemu::boot_with_initfs(system, &initfs, "");
    let mut cmd = qemu::command(&machine, &boot)?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start QEMU: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no QEMU stdin")?;
    let stdout = child.stdout.take().ok_or("no QEMU stdout")?;
    let (rx, reader) = qemu::line_reader(stdout);
    let deadline = Instant::now() + TIMEOUT;
    let mut output = String::new();
    let mut typed = false;
    let mut seen = 0;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let line = match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => symbolizer.annotate(&line),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        output.push_str(&line);
        output.push('\n');
        if !typed && line.contains(suite.ready) {
            typed = true;
            match &suite.input {
                Input::Serial(bytes) => {
                    stdin
                        .write_all(bytes)
                        .and_then(|()| stdin.flush())
                        .map_err(|e| format!("writing QEMU stdin: {e}"))?;
                }
                Input::Keys(keys) => {
                    if let Err(e) = send_keys(&sock, keys) {
                        output.push_str(&format!("xtask: monitor: {e}\n"));
                        break;
                    }
                }
            }
        }
        if typed && seen < suite.expect.len() && line.contains(suite.expect[seen]) {
            seen += 1;
            if seen == suite.expect.len() {
                break;
            }
        }
    }
    let _ = child.kill();
    let ok = child.wait().is_ok();
    drop(rx);
    let _ = reader.join();
    Ok((output, ok))
}

/// `sendkey` each key on the monitor at `sock`, answering each prompt.
fn send_keys(sock: &std::path::Path, keys: &[&str]) -> std::io::Result<()> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let prompt = |s: &mut UnixStream| -> std::io::Result<()> {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"(qemu) ") {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok(())
    };
    prompt(&mut s)?;
    for key in keys {
        s.write_all(format!("sendkey {key}\n").as_bytes())?;
        prompt(&mut s)?;
        // One key at a time: the guest sees press and release before the next.
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
