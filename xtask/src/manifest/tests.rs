//! One test per error kind, each checking the diagnostic names the right line; plus the real
//! manifest and start order.

use super::*;
use hsync_initfs::manifest::Manifest;

/// A small valid system the error tests start from (line numbers matter: keep the layout).
const BASE: &str = r#"
[server.serial]
priority = 24
io-ports = [{ base = 0x3F8, count = 8 }]
irqs = [4]
exports = ["serial"]

[server.vga]
priority = 20
mmio = [{ base = 0xB8000, size = 0x8000 }]
framebuffer = true
exports = ["vga"]
imports = ["serial"]
"#;

/// Checks `src` fails with exactly one diagnostic, on `line`, whose message contains `needle`.
#[track_caller]
fn fails(src: &str, line: usize, needle: &str) -> Diagnostic {
    let errors = check_str("test.toml", src).expect_err("manifest accepted");
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let d = errors.into_iter().next().unwrap();
    assert_eq!(d.file, "test.toml");
    assert_eq!(d.line, line, "wrong line: {d}");
    assert!(d.message.contains(needle), "`{needle}` not in: {d}");
    assert!(
        d.to_string().starts_with(&format!("test.toml:{line}:")),
        "{d}"
    );
    d
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn base_is_valid() {
    let s = check_str("test.toml", BASE).unwrap();
    assert_eq!(s.servers.len(), 2);
    Manifest::parse(&s.table).unwrap();
}

#[test]
fn the_system_manifest_is_valid_and_starts_exporters_first() {
    let system = system().unwrap();
    let names: Vec<&str> = system.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["serial", "vga", "ps2", "phase", "shell"]);
    let m = Manifest::parse(&system.table).unwrap();
    let shell = m.find("shell").unwrap();
    let imported: Vec<&str> = shell
        .imports()
        .map(|i| m.server(i.server).unwrap().name)
        .collect();
    assert_eq!(imported, ["serial", "vga", "ps2", "phase"]);
    let serial = m.find("serial").unwrap();
    let res: Vec<Resource> = serial.resources().collect();
    assert_eq!(
        res,
        [
            Resource::IoPorts {
                base: 0x3f8,
                count: 8
            },
            Resource::Irq(4)
        ]
    );
    assert!(m.find("vga").unwrap().framebuffer);
    assert_eq!(
        system.crates(),
        [
            "hsync-serial",
            "hsync-vga",
            "hsync-ps2",
            "hsync-phase",
            "hsync-shell"
        ]
    );
}

#[test]
fn start_order_puts_exporters_before_importers_and_keeps_file_order_otherwise() {
    let src = r#"
[server.b]
priority = 1
imports = ["pa"]
[server.a]
priority = 2
exports = ["pa"]
[server.c]
priority = 0
"#;
    let s = check_str("t", src).unwrap();
    let names: Vec<&str> = s.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn defaults_and_explicit_values() {
    let src = r#"
[server.x]
priority = 3
crate = "my-driver"
ready = false
restart = "never"
io-ports = [0x80]
"#;
    let s = &check_str("t", src).unwrap().servers[0];
    assert_eq!(s.binary, "my-driver");
    assert!(!s.ready);
    assert_eq!(s.restart, Restart::Never);
    assert_eq!(
        s.resources,
        [Resource::IoPorts {
            base: 0x80,
            count: 1
        }]
    );
    let s = &check_str("t", "[server.y]\npriority = 0\n")
        .unwrap()
        .servers[0];
    assert_eq!(s.binary, "hsync-y");
    assert!(s.ready);
    assert_eq!(
        s.restart,
        Restart::OnFault {
            limit: DEFAULT_RESTART_LIMIT
        }
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let src = "[server.a]\npriority = 99\nirqs = [\"x\"]\nfoo = 1\n";
    let errors = check_str("t", src).unwrap_err();
    let lines: Vec<usize> = errors.iter().map(|d| d.line).collect();
    assert_eq!(lines, [2, 3, 4], "{errors:#?}");
}

#[test]
fn toml_syntax_error() {
    fails(&with("[server.ps2]\npriority = \n"), 15, "TOML syntax");
}

#[test]
fn duplicate_server_name() {
    fails(
        &with("\n[server.serial]\npriority = 1\n"),
        15,
        "already defined",
    );
}

#[test]
fn bad_server_name() {
    fails(
        &with("[server.Ps2]\npriority = 1\n"),
        14,
        "bad server name `Ps2`",
    );
}

#[test]
fn unknown_top_level_key() {
    fails(
        &with("[services.x]\npriority = 1\n"),
        14,
        "unknown top-level key `services`",
    );
}

#[test]
fn unknown_server_key() {
    fails(
        &with("[server.ps2]\npriority = 1\nirq = [1]\n"),
        16,
        "unknown key `irq`",
    );
}

#[test]
fn unknown_key_in_an_inline_table() {
    fails(
        &with("[server.ps2]\npriority = 1\nio-ports = [{ base = 0x60, count = 1, len = 1 }]\n"),
        16,
        "unknown key `len`",
    );
}

#[test]
fn missing_priority() {
    fails(
        &with("[server.ps2]\nexports = [\"ps2\"]\n"),
        14,
        "no `priority`",
    );
}

#[test]
fn priority_out_of_range() {
    fails(
        &with("[server.ps2]\npriority = 32\n"),
        15,
        "priority out of range",
    );
}

#[test]
fn wrong_type() {
    fails(
        &with("[server.ps2]\npriority = \"high\"\n"),
        15,
        "must be an integer, found string",
    );
    fails(
        &with("[server.ps2]\npriority = 1\nirqs = 1\n"),
        16,
        "must be an array",
    );
    fails(
        &with("[server.ps2]\npriority = 1\nready = 1\n"),
        16,
        "true or false",
    );
}

#[test]
fn bad_irq_number() {
    fails(
        &with("[server.ps2]\npriority = 1\nirqs = [256]\n"),
        16,
        "IRQ out of range",
    );
}

#[test]
fn port_range_past_the_end() {
    fails(
        &with("[server.ps2]\npriority = 1\nio-ports = [{ base = 0xFFFF, count = 2 }]\n"),
        16,
        "runs past port 0xFFFF",
    );
}

#[test]
fn misaligned_mmio() {
    fails(
        &with("[server.ps2]\npriority = 1\nmmio = [{ base = 0xB8100, size = 0x1000 }]\n"),
        16,
        "not page-aligned",
    );
}

#[test]
fn bad_restart_policy() {
    fails(
        &with("[server.ps2]\npriority = 1\nrestart = \"sometimes\"\n"),
        16,
        "bad restart policy",
    );
    fails(
        &with("[server.ps2]\npriority = 1\nrestart = \"never\"\nrestart-limit = 3\n"),
        17,
        "makes no sense",
    );
    fails(
        &with("[server.ps2]\npriority = 1\nrestart-limit = 0\n"),
        16,
        "restart-limit out of range",
    );
}

#[test]
fn irq_claimed_twice() {
    let d = fails(
        &with("[server.ps2]\npriority = 1\nirqs = [1, 4]\n"),
        16,
        "IRQ is claimed twice",
    );
    assert!(d.message.contains("IRQ 4"), "{d}");
    assert!(d.message.contains("server `serial` (line 5)"), "{d}");
}

#[test]
fn irq_repeated_within_one_server() {
    fails(
        &with("[server.ps2]\npriority = 1\nirqs = [1,\n  1]\n"),
        17,
        "IRQ is claimed twice",
    );
}

#[test]
fn io_ports_overlap() {
    let d = fails(
        &with("[server.ps2]\npriority = 1\nio-ports = [0x60, 0x3FF]\n"),
        16,
        "I/O ports overlap",
    );
    assert!(d.message.contains("port 0x3ff"), "{d}");
    assert!(d.message.contains("(line 4)"), "{d}");
}

#[test]
fn mmio_overlaps() {
    fails(
        &with("[server.ps2]\npriority = 1\nmmio = [{ base = 0xBF000, size = 0x2000 }]\n"),
        16,
        "MMIO ranges overlap",
    );
}

#[test]
fn framebuffer_claimed_twice() {
    fails(
        &with("[server.ps2]\npriority = 1\nframebuffer = true\n"),
        16,
        "framebuffer is claimed twice",
    );
}

#[test]
fn unknown_server_in_an_import() {
    fails(
        &with(
            "[server.ps2]\npriority = 1\nimports = [{ protocol = \"serial\", server = \"uart\" }]\n",
        ),
        16,
        "unknown server `uart`",
    );
}

#[test]
fn import_with_no_exporter() {
    fails(
        &with("[server.ps2]\npriority = 1\nimports = [\"serial\", \"audio\"]\n"),
        16,
        "no server exports `audio`",
    );
}

#[test]
fn import_from_a_server_that_does_not_export_it() {
    fails(
        &with(
            "[server.ps2]\npriority = 1\nimports = [{ protocol = \"vga\", server = \"serial\" }]\n",
        ),
        16,
        "server `serial` does not export `vga` (it exports: serial)",
    );
}

#[test]
fn ambiguous_import() {
    fails(
        &with(
            "[server.ps2]\npriority = 22\nexports = [\"vga\"]\n[server.x]\npriority = 1\nimports = [\"vga\"]\n",
        ),
        19,
        "ambiguous import",
    );
}

#[test]
fn self_and_double_imports() {
    fails(
        &with("[server.ps2]\npriority = 1\nexports = [\"ps2\"]\nimports = [\"ps2\"]\n"),
        17,
        "imports its own",
    );
    fails(
        &with("[server.ps2]\npriority = 1\nimports = [\"serial\",\n \"serial\"]\n"),
        17,
        "imported twice",
    );
    fails(
        &with("[server.ps2]\npriority = 1\nexports = [\"a\", \"a\"]\n"),
        16,
        "exported twice",
    );
}

#[test]
fn priority_inversion() {
    // ps2 (25) is more urgent than serial (24), which it would wait on.
    let d = fails(
        &with("[server.ps2]\npriority = 25\nimports = [\"serial\"]\n"),
        16,
        "priority inversion",
    );
    assert!(d.message.contains("`ps2` (priority 25)"), "{d}");
    assert!(d.message.contains("`serial` (priority 24, line 3)"), "{d}");
    // Equal priority is allowed.
    check_str(
        "t",
        &with("[server.ps2]\npriority = 24\nimports = [\"serial\"]\n"),
    )
    .unwrap();
}

#[test]
fn import_cycle() {
    let src = r#"
[server.a]
priority = 1
exports = ["pa"]
imports = ["pb"]
[server.b]
priority = 1
exports = ["pb"]
imports = ["pa"]
"#;
    fails(src, 5, "import cycle among a, b");
}

#[test]
fn empty_manifest() {
    fails("# nothing\n", 1, "names no servers");
}
