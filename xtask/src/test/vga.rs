//! The vga server on the real text buffer: a test initfs whose root is `hsync-vga-probe`
//! (servers/vga/src/probe.rs), which starts `hsync-vga` and drives it through its protocol;
//! meanwhile xtask reads guest memory at 0xB8000 through a QEMU monitor socket (`pmemsave`)
//! until the screen the probe leaves appears, then quits QEMU.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::kernel::parse_tagged;
use super::{Case, check, no_panic};
use crate::Result;
use crate::artifacts::{self, Artifacts};
use crate::qemu;
use crate::symbolize::Symbolizer;

/// The suite's name (`--filter vga`).
pub const SUITE: &str = "vga";
const TIMEOUT: Duration = Duration::from_secs(90);
const COLS: usize = 80;

/// What the probe leaves on screen: (row, column, text, attribute).
const EXPECT: &[(usize, usize, &str, u8)] = &[
    (0, 1, "HSYNC-OS | up ", 0x70),
    (1, 0, "line 1", 0x07),
    (10, 0, "HSYNC-OS vga probe: hello, screen", 0x1E),
    (20, 0, "wave", 0x0A),
    (24, 79, "#", 0x4F),
];

/// Where the screen differs from [`EXPECT`], or `None` when it matches.
pub fn mismatch(screen: &[u8]) -> Option<String> {
    for &(row, col, text, attr) in EXPECT {
        for (i, ch) in text.bytes().enumerate() {
            let at = (row * COLS + col + i) * 2;
            let got = (screen.get(at).copied(), screen.get(at + 1).copied());
            if got != (Some(ch), Some(attr)) {
                return Some(format!(
                    "cell ({}, {row}): want {:?}/{attr:#04x}, got {got:?}",
                    col + i,
                    ch as char
                ));
            }
        }
    }
    None
}

/// The screen's glyphs as text rows (non-blank rows only), for failure reports.
pub fn render(screen: &[u8]) -> String {
    let mut out = String::new();
    for (y, row) in screen.chunks(COLS * 2).enumerate() {
        let line: String = row
            .chunks(2)
            .map(|c| match c[0] {
                0x20..=0x7E => c[0] as char,
                0 => ' ',
                _ => '?',
            })
            .collect();
        if !line.trim().is_empty() {
            out.push_str(&format!("{y:2}|{}\n", line.trim_end()));
        }
    }
    out
}

/// A QEMU monitor connection: one command at a time, each answered up to the next prompt.
pub(crate) struct Monitor(UnixStream);

impl Monitor {
    pub(crate) fn connect(path: &Path, deadline: Instant) -> Option<Monitor> {
        while Instant::now() < deadline {
            if let Ok(s) = UnixStream::connect(path) {
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                let mut m = Monitor(s);
                m.until_prompt()?;
                return Some(m);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn until_prompt(&mut self) -> Option<String> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"(qemu) ") {
            let n = self.0.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Some(String::from_utf8_lossy(&got).into_owned())
    }

    pub(crate) fn command(&mut self, cmd: &str) -> Option<String> {
        self.0.write_all(format!("{cmd}\n").as_bytes()).ok()?;
        self.until_prompt()
    }
}

/// Polls the text buffer until it matches or `deadline`; always asks QEMU to quit.
fn watch(sock: &Path, dump: &Path, deadline: Instant) -> (bool, String) {
    let Some(mut mon) = Monitor::connect(sock, deadline) else {
        return (false, "no QEMU monitor connection".into());
    };
    let mut last = String::from("no dump read");
    let mut matched = false;
    while Instant::now() < deadline {
        let _ = std::fs::remove_file(dump);
        let cmd = format!("pmemsave 0xb8000 4000 \"{}\"", dump.display());
        if mon.command(&cmd).is_none() {
            last = "the monitor stopped answering".into();
            break;
        }
        if let Ok(screen) = std::fs::read(dump) {
            match mismatch(&screen) {
                None => {
                    matched = true;
                    last = render(&screen);
                    break;
                }
                Some(why) => last = format!("{why}\n{}", render(&screen)),
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = mon.command("quit");
    (matched, last)
}

pub fn run(system: &Artifacts, symbolizer: &Symbolizer) -> Result<Vec<Case>> {
    crate::tools::step(&format!("QEMU suite `{SUITE}`"));
    let dir = system
        .kernel
        .parent()
        .ok_or("kernel path has no directory")?
        .to_owned();
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let mut b = hsync_initfs::Builder::new();
    b.add("version", b"HSYNC-OS vga probe\n".to_vec())
        .map_err(|e| e.to_string())?;
    let (probe, server) = (read("hsync-vga-probe")?, read("hsync-vga")?);
    b.add("root", probe)
        .and_then(|b| b.add("hsync-vga", server))
        .map_err(|e| e.to_string())?;
    let initfs = artifacts::out_dir().join("initfs-vga.img");
    artifacts::write_file(&initfs, &b.finish())?;
    let sock = artifacts::out_dir().join("vga-monitor.sock");
    let dump = artifacts::out_dir().join("vga-screen.bin");
    let _ = std::fs::remove_file(&sock);
    let machine = qemu::with_monitor(&sock);
    let boot = qemu::boot_with_initfs(system, &initfs, "");
    let cmd = qemu::command(&machine, &boot)?;
    let deadline = Instant::now() + TIMEOUT;
    let watcher = std::thread::spawn({
        let (sock, dump) = (sock.clone(), dump.clone());
        move || watch(&sock, &dump, deadline)
    });
    let captured = qemu::run_captured(
        cmd,
        symbolizer,
        Some(TIMEOUT + Duration::from_secs(5)),
        false,
        false,
    )?;
    let (matched, screen) = watcher
        .join()
        .unwrap_or((false, "the monitor thread panicked".into()));
    let (mut cases, done) = parse_tagged(SUITE, &captured.output, "[vga] ");
    cases.push(check(
        SUITE,
        "probe_done",
        done.is_some_and(|(_, failed)| failed == 0),
        format!("`[vga] done` line: {done:?}"),
    ));
    cases.push(check(SUITE, "text_buffer", matched, screen));
    cases.push(no_panic(SUITE, &captured));
    let failed = cases.iter().filter(|c| !c.passed).count();
    eprintln!(
        "    {} tests, {} failed, {:.1} s, {:?}",
        cases.len(),
        failed,
        captured.elapsed.as_secs_f64(),
        captured.outcome
    );
    if failed > 0 {
        eprintln!(
            "---- output of suite `{SUITE}` ----\n{}----",
            captured.output
        );
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen() -> Vec<u8> {
        let mut s = vec![0u8; 4000];
        for &(row, col, text, attr) in EXPECT {
            for (i, ch) in text.bytes().enumerate() {
                let at = (row * COLS + col + i) * 2;
                s[at] = ch;
                s[at + 1] = attr;
            }
        }
        s
    }

    #[test]
    fn vga_screen_check_matches_and_names_the_first_difference() {
        let mut s = screen();
        assert_eq!(mismatch(&s), None);
        s[(10 * COLS + 3) * 2 + 1] = 0x07;
        let why = mismatch(&s).unwrap();
        assert!(why.contains("cell (3, 10)"), "{why}");
        assert_eq!(mismatch(&s[..100]).map(|w| w.contains("None")), Some(true));
        assert!(render(&screen()).contains("10|HSYNC-OS vga probe: hello, screen"));
    }
}
