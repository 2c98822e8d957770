//! `cargo xtask screenshot`: boots the system (direct boot in VGA text mode, or the GRUB ISO
//! under OVMF on a framebuffer with `--uefi`), types `help` on the PS/2 keyboard (so the
//! display shows the command line too), with `--wave` also `wave on`, waits for a few frames,
//! takes a QEMU `screendump` (PPM) and writes it as PNG.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Result;
use crate::artifacts::{self, target_dir};
use crate::qemu::{self, Boot};
use crate::symbolize::Symbolizer;
use crate::test::display::{screendump, write_png};
use crate::test::shell::{Event, HELP_END, Input, Step, drive};
use crate::test::vga::Monitor;
use crate::tools::step;

/// Keys for `help` and `wave on`, one `sendkey` each.
const HELP_KEYS: &[&str] = &["h", "e", "l", "p", "ret"];
const WAVE_KEYS: &[&str] = &["w", "a", "v", "e", "spc", "o", "n", "ret"];

/// The file name for a mode: `console[-wave].png` (text) or `uefi-framebuffer[-wave].png`.
pub fn file_name(uefi: bool, wave: bool) -> String {
    format!(
        "{}{}.png",
        if uefi { "uefi-framebuffer" } else { "console" },
        if wave { "-wave" } else { "" }
    )
}

/// `cargo xtask screenshot`; returns the PNG's path.
pub fn run(uefi: bool, wave: bool, out: Option<&Path>, release: bool) -> Result<PathBuf> {
    let a = artifacts::build(release)?;
    let symbolizer = Symbolizer::new(&a.kernel);
    let boot = if uefi {
        Boot::Cdrom {
            iso: crate::images::system_iso(&a, "")?,
            uefi: true,
        }
    } else {
        qemu::system_boot(&a, "")
    };
    let dir = out.map_or_else(|| target_dir().join("screenshots"), Path::to_path_buf);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let png = dir.join(file_name(uefi, wave));
    let ppm = artifacts::out_dir().join("screenshot.ppm");
    let sock = artifacts::out_dir().join("screenshot-monitor.sock");
    let _ = std::fs::remove_file(&sock);
    let machine = qemu::with_monitor(&sock);
    let mut steps = vec![Step {
        after: "HSYNC-OS shell: type `help`",
        input: Input::Keys(HELP_KEYS),
    }];
    if wave {
        steps.push(Step {
            after: HELP_END,
            input: Input::Keys(WAVE_KEYS),
        });
    }
    // The picture is taken when this last step is reached, then the machine is switched off.
    steps.push(Step {
        after: if wave {
            "wave: visualizer on"
        } else {
            HELP_END
        },
        input: Input::Serial(b"poweroff\r"),
    });
    let last = steps.len() - 1;
    let mut taken: Option<Result<()>> = None;
    step(&format!("booting to take {}", png.display()));
    let session = drive(
        &machine,
        &boot,
        &sock,
        &steps,
        Duration::from_secs(if uefi { 240 } else { 90 }),
        &symbolizer,
        |event, monitor| {
            let Event::Step(i) = event else { return };
            if i != last {
                return;
            }
            if monitor.is_none() {
                *monitor = Monitor::connect(&sock, Instant::now() + Duration::from_secs(10));
            }
            // Let the typed line's answer, a status line refresh (once a second) and (with
            // --wave) the timing run and a few frames reach the screen.
            std::thread::sleep(Duration::from_secs(4));
            taken = Some(match monitor.as_mut() {
                Some(m) => screendump(m, &ppm).and_then(|img| write_png(&png, &img)),
                None => Err("no QEMU monitor connection".into()),
            });
        },
    )?;
    let _ = std::fs::remove_file(&sock);
    match taken {
        Some(Ok(())) => {
            step(&format!("wrote {}", png.display()));
            Ok(png)
        }
        Some(Err(e)) => Err(e),
        None => Err(format!(
            "the session stopped after {} of {} steps; serial output:\n{}",
            session.typed,
            steps.len(),
            session.output
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::file_name(false, false), "console.png");
        assert_eq!(super::file_name(true, true), "uefi-framebuffer-wave.png");
    }
}
