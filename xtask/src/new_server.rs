//! `cargo xtask new-server NAME`: a new server crate and its `-api` crate, copied from
//! `servers/template` and `servers/template-api` with every name substituted, added to the
//! workspace `members`, and registered in the system manifest (`initfs/system.toml`).
//!
//! Substitutions (in every copied file): `template_api` → `NAME_api` (with `-` as `_`),
//! `Template` → the CamelCase name, `template` → `NAME`. The template's README is replaced by a
//! short one. Nothing is written unless every check passes first: the name is valid and neither
//! directory exists.
//!
//! With `--irq` the server's `main.rs` is the template's interrupt-driven skeleton
//! (`servers/template/src/irq.rs`: a driver on `libhsync::serve` with `on_irq`) and its manifest
//! entry grants the skeleton's device: the CMOS clock's I/O ports and IRQ line. Either way the
//! copy keeps one `main.rs` and one binary.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::tools::step;

/// The longest server name (the manifest's limit).
const MAX_NAME_LEN: usize = 64;

/// The template's interrupt-driven skeleton (a second binary of the template crate).
const IRQ_SKELETON: &str = "src/irq.rs";
/// The first line of its `[[bin]]` block in the template's Cargo.toml (a comment).
const IRQ_BIN_MARK: &str = "# The interrupt-driven skeleton";

/// Creates server `name` in the workspace at `root` (an interrupt-driven driver when `irq`);
/// returns the two new directories.
pub fn run(name: &str, root: &Path, irq: bool) -> Result<(PathBuf, PathBuf)> {
    validate(name)?;
    let servers = root.join("servers");
    let (dir, api) = (servers.join(name), servers.join(format!("{name}-api")));
    for d in [&dir, &api] {
        if d.exists() {
            return Err(format!("{} already exists", d.display()));
        }
    }
    let (src, src_api) = (servers.join("template"), servers.join("template-api"));
    for d in [&src, &src_api] {
        if !d.is_dir() {
            return Err(format!("{} is missing: nothing to copy", d.display()));
        }
    }
    let manifest = root.join("initfs/system.toml");
    let manifest_text = match std::fs::read_to_string(&manifest) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", manifest.display())),
    };
    if let Some(t) = &manifest_text
        && t.lines().any(|l| l.trim() == format!("[server.{name}]"))
    {
        return Err(format!(
            "{} already has a [server.{name}] table",
            manifest.display()
        ));
    }
    let cargo_toml = root.join("Cargo.toml");
    let workspace = read(&cargo_toml)?;
    let workspace = add_members(&workspace, name)?;

    step(&format!("creating servers/{name} and servers/{name}-api"));
    copy_tree(&src, &dir, name)?;
    copy_tree(&src_api, &api, name)?;
    one_binary(&dir, irq)?;
    write(&dir.join("README.md"), &readme(name))?;
    write(&cargo_toml, &workspace)?;
    match manifest_text {
        Some(t) => {
            write(&manifest, &format!("{}{}", t, manifest_entry(name, irq)))?;
            let grants = if irq {
                ", I/O ports 0x70-0x71, IRQ 8"
            } else {
                ""
            };
            eprintln!(
                "    added [server.{name}] to {} (priority 16, exports \"{name}\"{grants})",
                manifest.display()
            );
        }
        None => eprintln!(
            "    no {}: add the server to it by hand",
            manifest.display()
        ),
    }
    eprintln!(
        "    next: edit servers/{name}-api/src/lib.rs (the protocol) and servers/{name}/src/main.rs"
    );
    Ok((dir, api))
}

/// A server name: `[a-z][a-z0-9-]*`, not ending in `-` or `-api`, no `--`, at most 64 bytes.
pub fn validate(name: &str) -> Result<()> {
    let bad = |why: &str| Err(format!("invalid server name `{name}`: {why}"));
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return bad("must be 1 to 64 bytes");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("must start with a lowercase letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("only lowercase letters, digits and `-` are allowed");
    }
    if name.ends_with('-') || name.contains("--") {
        return bad("`-` separates words: not at the end, not doubled");
    }
    if name.ends_with("-api") {
        return bad("`-api` is added for the protocol crate");
    }
    if ["template", "root", "selftest"].contains(&name) {
        return bad("reserved");
    }
    Ok(())
}

/// `my-thing` → `MyThing`.
fn camel(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The template's text with the new names.
fn substitute(text: &str, name: &str) -> String {
    let snake = name.replace('-', "_");
    text.replace("template_api", &format!("{snake}_api"))
        .replace("Template", &camel(name))
        .replace("template", name)
}

fn copy_tree(from: &Path, to: &Path, name: &str) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let (path, file_name) = (entry.path(), entry.file_name());
        if file_name == "target" || file_name.to_string_lossy().starts_with('.') {
            continue;
        }
        let dest = to.join(&file_name);
        if path.is_dir() {
            copy_tree(&path, &dest, name)?;
        } else {
            write(&dest, &substitute(&read(&path)?, name))?;
        }
    }
    Ok(())
}

/// Leaves the new server one binary: `main.rs`, replaced by the interrupt-driven skeleton when
/// `irq`; the skeleton's file and its `[[bin]]` block go.
fn one_binary(dir: &Path, irq: bool) -> Result<()> {
    let skeleton = dir.join(IRQ_SKELETON);
    if irq {
        write(&dir.join("src/main.rs"), &read(&skeleton)?)?;
    }
    if skeleton.exists() {
        std::fs::remove_file(&skeleton)
            .map_err(|e| format!("cannot remove {}: {e}", skeleton.display()))?;
    }
    let cargo = dir.join("Cargo.toml");
    let text = read(&cargo)?;
    if let Some(at) = text.find(IRQ_BIN_MARK) {
        // The block ends where the next table starts (`\n\n[`), or with the file.
        let end = text[at..].find("\n\n[").map_or(text.len(), |i| at + i + 2);
        let (head, rest) = (text[..at].trim_end(), &text[end..]);
        let sep = if rest.is_empty() { "\n" } else { "\n\n" };
        write(&cargo, &format!("{head}{sep}{rest}"))?;
    }
    Ok(())
}

/// The workspace `Cargo.toml` with `servers/NAME` and `servers/NAME-api` in `members`, right
/// after the template's entries (or at the end of the list).
fn add_members(text: &str, name: &str) -> Result<String> {
    let start = text
        .find("members = [")
        .ok_or("Cargo.toml has no `members = [` list")?;
    let end = start
        + text[start..]
            .find("\n]")
            .ok_or("Cargo.toml: `members` list is not closed by a `]` line")?;
    let entries = format!("    \"servers/{name}\",\n    \"servers/{name}-api\",\n");
    let anchor = "    \"servers/template-api\",\n";
    let at = match text[start..end].find(anchor) {
        Some(i) => start + i + anchor.len(),
        None => end + 1,
    };
    Ok(format!("{}{}{}", &text[..at], entries, &text[at..]))
}

/// The `[server.NAME]` table appended to `initfs/system.toml` (format: docs/manifest.md).
fn manifest_entry(name: &str, irq: bool) -> String {
    // The template reports ready to root (hsync_root_api), so root may wait for it (the
    // default `ready = true`).
    let hardware = if irq {
        "# The skeleton's device, the CMOS clock: index/data ports and its IRQ line.\n\
         io-ports = [{ base = 0x70, count = 2 }]\n\
         irqs = [8]\n"
    } else {
        ""
    };
    let created = if irq { " --irq" } else { "" };
    format!(
        "\n[server.{name}]\n\
         # Created by `cargo xtask new-server {name}{created}`: serves the `{name}` protocol\n\
         # (servers/{name}-api). Grant hardware here (io-ports, irqs, mmio) if it needs any.\n\
         priority = 16\n\
         {hardware}\
         exports = [\"{name}\"]\n\
         restart = \"on-fault\"\n"
    )
}

fn readme(name: &str) -> String {
    format!(
        "# servers/{name}\n\n\
         Created by `cargo xtask new-server {name}` from `servers/template`.\n\n\
         - The protocol: [`servers/{name}-api/src/lib.rs`](../{name}-api/src/lib.rs).\n\
         - The server: [`src/main.rs`](src/main.rs), which implements `{camel}Server`.\n\
         - Its manifest entry: `[server.{name}]` in `initfs/system.toml`.\n\n\
         Writing a server, step by step: [docs/servers.md](../../docs/servers.md).\n",
        camel = camel(name)
    )
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    crate::artifacts::write_file(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch workspace: the real template crates and a reduced root `Cargo.toml`.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str, with_manifest: bool) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("hsync-new-server-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let real = crate::artifacts::root();
            for t in ["template", "template-api"] {
                copy_raw(&real.join("servers").join(t), &dir.join("servers").join(t));
            }
            write(
                &dir.join("Cargo.toml"),
                "[workspace]\nmembers = [\n    \"libhsync\",\n    \"servers/template\",\n    \
                 \"servers/template-api\",\n    \"xtask\",\n]\n",
            )
            .unwrap();
            if with_manifest {
                write(
                    &dir.join("initfs/system.toml"),
                    "[server.serial]\npriority = 24\nexports = [\"serial\"]\n",
                )
                .unwrap();
            }
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn copy_raw(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.path().is_dir() {
                copy_raw(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }

    #[test]
    fn creates_both_crates_with_names_substituted() {
        let s = Scratch::new("ok", true);
        let (dir, api) = run("echo-box", &s.0, false).unwrap();
        let main = read(&dir.join("src/main.rs")).unwrap();
        assert!(main.contains("use hsync_echo_box_api::{Bytes, EchoBoxError, EchoBoxServer};"));
        assert!(main.contains("impl EchoBoxServer for EchoBox"));
        assert!(main.contains("#![forbid(unsafe_code)]"));
        assert!(!main.contains("emplate"), "a template name survived");
        let cargo = read(&dir.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"hsync-echo-box\""));
        assert!(cargo.contains("hsync-echo-box-api = { path = \"../echo-box-api\" }"));
        assert!(dir.join("build.rs").is_file());
        let lib = read(&api.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub protocol EchoBox {"));
        assert!(lib.contains("server EchoBoxServer;"));
        let api_cargo = read(&api.join("Cargo.toml")).unwrap();
        assert!(api_cargo.contains("name = \"hsync-echo-box-api\""));
        assert!(
            read(&dir.join("README.md"))
                .unwrap()
                .contains("new-server echo-box")
        );

        let ws = read(&s.0.join("Cargo.toml")).unwrap();
        assert!(ws.contains(
            "    \"servers/template-api\",\n    \"servers/echo-box\",\n    \
             \"servers/echo-box-api\",\n    \"xtask\",\n]"
        ));
        let m = read(&s.0.join("initfs/system.toml")).unwrap();
        assert!(m.starts_with("[server.serial]\n"), "existing entries kept");
        assert!(m.contains("\n[server.echo-box]\n"));
        assert!(m.contains("exports = [\"echo-box\"]"));

        // A second run refuses: the directories exist, and nothing is touched.
        assert!(
            run("echo-box", &s.0, false)
                .unwrap_err()
                .contains("already exists")
        );
        assert_eq!(read(&s.0.join("Cargo.toml")).unwrap(), ws);
    }

    #[test]
    fn irq_makes_the_skeleton_the_main_and_grants_its_device() {
        let s = Scratch::new("irq", true);
        let (dir, api) = run("tick-tock", &s.0, true).unwrap();
        let main = read(&dir.join("src/main.rs")).unwrap();
        assert!(main.contains("use hsync_tick_tock_api::{TickTockDeviceServer, TickTockError};"));
        assert!(main.contains(".on_irq(irq_line, Device::on_irq)"));
        assert!(!main.contains("emplate"), "a template name survived");
        assert!(!dir.join(IRQ_SKELETON).exists());
        let cargo = read(&dir.join("Cargo.toml")).unwrap();
        assert_eq!(cargo.matches("[[bin]]").count(), 1, "{cargo}");
        assert!(!cargo.contains("irq"), "{cargo}");
        assert!(cargo.contains("[dependencies]"));
        let lib = read(&api.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub protocol TickTockDevice {"));
        let m = read(&s.0.join("initfs/system.toml")).unwrap();
        assert!(m.contains("io-ports = [{ base = 0x70, count = 2 }]\nirqs = [8]\n"));
        // Without --irq: the template's main, one binary, no skeleton file.
        let (plain, _) = run("plain", &s.0, false).unwrap();
        assert!(
            read(&plain.join("src/main.rs"))
                .unwrap()
                .contains("impl PlainServer for Plain")
        );
        assert!(!plain.join(IRQ_SKELETON).exists());
        let cargo = read(&plain.join("Cargo.toml")).unwrap();
        assert_eq!(cargo.matches("[[bin]]").count(), 1, "{cargo}");
    }

    /// docs/servers.md shows the skeleton verbatim, after a marker naming its file.
    #[test]
    fn docs_show_the_irq_skeleton_verbatim() {
        let root = crate::artifacts::root();
        let doc = read(&root.join("docs/servers.md")).unwrap();
        let marker = "<!-- servers/template/src/irq.rs -->\n```rust\n";
        let at = doc
            .find(marker)
            .expect("docs/servers.md has no irq.rs block")
            + marker.len();
        let end = at + doc[at..].find("```\n").expect("the block is not closed");
        let file = read(&root.join("servers/template").join(IRQ_SKELETON)).unwrap();
        assert!(
            doc[at..end] == file,
            "docs/servers.md differs from {IRQ_SKELETON}"
        );
        assert!(file.lines().count() <= 80, "the example grew past 80 lines");
    }

    #[test]
    fn works_without_a_manifest() {
        let s = Scratch::new("nomanifest", false);
        run("x1", &s.0, false).unwrap();
        assert!(s.0.join("servers/x1/src/main.rs").is_file());
        assert!(!s.0.join("initfs/system.toml").exists());
    }

    #[test]
    fn refuses_a_name_the_manifest_already_has() {
        let s = Scratch::new("dup", true);
        assert!(
            run("serial", &s.0, false)
                .unwrap_err()
                .contains("[server.serial]")
        );
        assert!(!s.0.join("servers/serial").exists(), "nothing written");
    }

    #[test]
    fn validates_names() {
        for ok in ["a", "vga2", "my-server", &"x".repeat(64)] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Vga",
            "1st",
            "-a",
            "a-",
            "a--b",
            "a_b",
            "a b",
            "é",
            "foo-api",
            "template",
            "root",
            &"x".repeat(65),
        ] {
            assert!(validate(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(camel("echo-box-2"), "EchoBox2");
    }
}
