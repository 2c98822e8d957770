//! A first run that just works: before anything is built, check that the toolchain pinned in
//! `rust-toolchain.toml` has the bare-metal target (and, for `cargo xtask check`, the components)
//! the build needs, and install what is missing with rustup — or say the exact command.
//!
//! Rustup installs a toolchain file's `targets` and `components` only when it installs the
//! toolchain itself; a toolchain that was already there (or one linked in with `rustup
//! toolchain link`) may lack them, and then the first build fails deep inside cargo with
//! `can't find crate for core`. The check looks where rustc looks: the target's standard library
//! under `<sysroot>/lib/rustlib/<target>/lib`, and the component binaries under `<sysroot>/bin`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::Result;
use crate::artifacts::root;
use crate::tools::step;

/// What `rust-toolchain.toml` asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pinned {
    /// `channel`.
    pub channel: String,
    /// `targets`.
    pub targets: Vec<String>,
    /// `components`.
    pub components: Vec<String>,
}

/// Reads the `[toolchain]` table's `channel`, `targets` and `components` (one line each, as
/// rust-toolchain.toml writes them).
pub fn parse_pinned(text: &str) -> Pinned {
    let mut p = Pinned::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let quoted: Vec<String> = value
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        match key.trim() {
            "channel" => p.channel = quoted.into_iter().next().unwrap_or_default(),
            "targets" => p.targets = quoted,
            "components" => p.components = quoted,
            _ => {}
        }
    }
    p
}

/// Whether `sysroot` holds the standard library for `target` (its `libcore-*.rlib`).
pub fn has_target(sysroot: &Path, target: &str) -> bool {
    let dir = sysroot.join("lib").join("rustlib").join(target).join("lib");
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libcore-") && name.ends_with(".rlib")
        })
    })
}

/// The binary a component puts into `<sysroot>/bin`, for the components xtask runs.
fn component_binary(component: &str) -> Option<&'static str> {
    match component {
        "rustfmt" => Some("rustfmt"),
        "clippy" => Some("cargo-clippy"),
        _ => None,
    }
}

/// Whether `sysroot` has `component` (only those xtask runs are checked; others pass).
pub fn has_component(sysroot: &Path, component: &str) -> bool {
    component_binary(component).is_none_or(|bin| sysroot.join("bin").join(bin).is_file())
}

/// The rustup command that installs what is missing.
pub fn install_command(toolchain: &str, targets: &[String], components: &[String]) -> Vec<String> {
    let mut cmd = vec!["rustup".to_owned()];
    if !targets.is_empty() {
        cmd.extend(["target", "add"].map(String::from));
        cmd.extend(targets.iter().cloned());
    } else {
        cmd.extend(["component", "add"].map(String::from));
        cmd.extend(components.iter().cloned());
    }
    cmd.extend(["--toolchain".to_owned(), toolchain.to_owned()]);
    cmd
}

fn sysroot() -> Result<PathBuf> {
    let out = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .current_dir(root())
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| {
            format!("cannot run rustc: {e} (install Rust with rustup: https://rustup.rs)")
        })?;
    if !out.status.success() {
        return Err(format!(
            "rustc --print sysroot failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Checks the pinned target (and with `components`, the pinned components); installs what is
/// missing with rustup, or fails with the exact command. Runs once per xtask process.
pub fn ensure(components: bool) -> Result<()> {
    static TARGETS: OnceLock<Result<()>> = OnceLock::new();
    static ALL: OnceLock<Result<()>> = OnceLock::new();
    let cell = if components { &ALL } else { &TARGETS };
    cell.get_or_init(|| check(components)).clone()
}

fn check(with_components: bool) -> Result<()> {
    let file = root().join("rust-toolchain.toml");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let pinned = parse_pinned(&text);
    // The toolchain rustup picked for us (the pinned one, unless overridden).
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| pinned.channel.clone());
    let sysroot = sysroot()?;
    let missing = |sysroot: &Path| {
        let targets: Vec<String> = pinned
            .targets
            .iter()
            .filter(|t| !has_target(sysroot, t))
            .cloned()
            .collect();
        let components: Vec<String> = pinned
            .components
            .iter()
            .filter(|c| with_components && !has_component(sysroot, c))
            .cloned()
            .collect();
        (targets, components)
    };
    let (targets, components) = missing(&sysroot);
    for (targets, components) in [(targets, Vec::new()), (Vec::new(), components)] {
        if targets.is_empty() && components.is_empty() {
            continue;
        }
        let cmd = install_command(&toolchain, &targets, &components);
        let what = if targets.is_empty() {
            format!("component(s) {}", components.join(", "))
        } else {
            format!("target {}", targets.join(", "))
        };
        step(&format!(
            "toolchain {toolchain} lacks the {what} (rust-toolchain.toml); running: {}",
            cmd.join(" ")
        ));
        let ran = Command::new(&cmd[0]).args(&cmd[1..]).status();
        if !ran.is_ok_and(|s| s.success()) {
            return Err(format!(
                "toolchain {toolchain} lacks the {what} that rust-toolchain.toml pins, and \
                 installing it failed; run: {}",
                cmd.join(" ")
            ));
        }
    }
    let (targets, components) = missing(&sysroot);
    if !targets.is_empty() || !components.is_empty() {
        let cmd = install_command(&toolchain, &targets, &components);
        return Err(format!(
            "toolchain {toolchain} still lacks {} after rustup ran; run: {}",
            [targets, components].concat().join(", "),
            cmd.join(" ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_file_is_read() {
        let text = "# comment\n[toolchain]\nchannel = \"1.95.0\"\ncomponents = [\"rustfmt\", \
                    \"clippy\"]\ntargets = [\"x86_64-unknown-none\"]\nprofile = \"minimal\"\n";
        let p = parse_pinned(text);
        assert_eq!(p.channel, "1.95.0");
        assert_eq!(p.targets, ["x86_64-unknown-none"]);
        assert_eq!(p.components, ["rustfmt", "clippy"]);
        // The real file pins the bare-metal target the build uses.
        let real = std::fs::read_to_string(root().join("rust-toolchain.toml")).unwrap();
        assert!(
            parse_pinned(&real)
                .targets
                .contains(&crate::artifacts::TARGET.to_owned())
        );
    }

    #[test]
    fn a_sysroot_without_the_target_is_missing_it() {
        let sysroot = std::env::temp_dir().join(format!("xtask-sysroot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&sysroot);
        let lib = sysroot.join("lib/rustlib/x86_64-unknown-none/lib");
        // Only the host's standard library: the bare-metal target is missing.
        let host = sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/lib");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("libcore-0123.rlib"), b"").unwrap();
        assert!(!has_target(&sysroot, "x86_64-unknown-none"));
        // Its folder alone (as an interrupted install leaves it) is not enough either.
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libcompiler_builtins-1.rlib"), b"").unwrap();
        assert!(!has_target(&sysroot, "x86_64-unknown-none"));
        std::fs::write(lib.join("libcore-4567.rlib"), b"").unwrap();
        assert!(has_target(&sysroot, "x86_64-unknown-none"));
        // Components: clippy's driver binary decides; unknown components are not checked.
        assert!(!has_component(&sysroot, "clippy"));
        std::fs::create_dir_all(sysroot.join("bin")).unwrap();
        std::fs::write(sysroot.join("bin/cargo-clippy"), b"").unwrap();
        assert!(has_component(&sysroot, "clippy"));
        assert!(!has_component(&sysroot, "rustfmt"));
        assert!(has_component(&sysroot, "rust-src"));
        std::fs::remove_dir_all(&sysroot).unwrap();
    }

    #[test]
    fn the_command_says_what_to_install() {
        let t = ["x86_64-unknown-none".to_owned()];
        assert_eq!(
            install_command("1.95.0", &t, &[]).join(" "),
            "rustup target add x86_64-unknown-none --toolchain 1.95.0"
        );
        let c = ["rustfmt".to_owned(), "clippy".to_owned()];
        assert_eq!(
            install_command("1.95.0", &[], &c).join(" "),
            "rustup component add rustfmt clippy --toolchain 1.95.0"
        );
    }
}
