//! The `iso-bios` and `iso-uefi` suites: `target/hsync-os.iso` (the GRUB hybrid image of
//! `cargo xtask iso`) booted from the CD drive under SeaBIOS and under OVMF reaches the same
//! `system ready` as the direct boot (judged as the `system` suite). QEMU is stopped shortly
//! after the line appears; the time to it is printed.

use std::time::Duration;

use super::{Case, system};
use crate::Result;
use crate::artifacts::Artifacts;
use crate::images;
use crate::qemu::{self, Boot, Machine};
use crate::symbolize::Symbolizer;
use crate::tools::step;

/// The suites: name, UEFI, timeout (TCG; OVMF alone takes tens of seconds).
const SUITES: &[(&str, bool, Duration)] = &[
    ("iso-bios", false, Duration::from_secs(90)),
    ("iso-uefi", true, Duration::from_secs(180)),
];

/// Whether `filter` selects any ISO suite.
pub fn wanted(filter: &dyn Fn(&str) -> bool) -> bool {
    SUITES.iter().any(|(name, ..)| filter(name))
}

/// Builds the ISO and runs the selected suites.
pub fn run(
    a: &Artifacts,
    symbolizer: &Symbolizer,
    filter: &dyn Fn(&str) -> bool,
) -> Result<Vec<Case>> {
    let iso = images::system_iso(a, "")?;
    let size = std::fs::metadata(&iso).map(|m| m.len()).unwrap_or(0);
    let mut cases = Vec::new();
    for &(name, uefi, timeout) in SUITES.iter().filter(|(n, ..)| filter(n)) {
        step(&format!("QEMU suite `{name}` ({} bytes)", size));
        let boot = Boot::Cdrom {
            iso: iso.clone(),
            uefi,
        };
        let cmd = qemu::command(&Machine::default(), &boot)?;
        let (captured, ready) = qemu::run_until(cmd, symbolizer, timeout, "system ready")?;
        let mut results = system::judge_system(name, &captured);
        if uefi {
            results.push(framebuffer_console(name, &captured.output));
        }
        let failed = results.iter().filter(|c| !c.passed).count();
        eprintln!(
            "    {} tests, {} failed, {:.1} s, system ready after {}",
            results.len(),
            failed,
            captured.elapsed.as_secs_f64(),
            ready.map_or("(never)".into(), |t| format!("{:.1} s", t.as_secs_f64()))
        );
        if failed > 0 {
            eprintln!(
                "---- output of suite `{name}` ----\n{}----",
                captured.output
            );
        }
        cases.extend(results);
    }
    Ok(cases)
}

/// UEFI has no VGA text mode: the vga server's console must come up on the loader's
/// framebuffer.
pub fn framebuffer_console(suite: &str, output: &str) -> Case {
    super::check(
        suite,
        "framebuffer_console",
        output.contains("vga: framebuffer console"),
        "vga did not start a framebuffer console",
    )
}
