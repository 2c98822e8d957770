//! The `system` suites: root as the supervisor.
//!
//! - `system` boots the normal image and checks that root prints exactly one
//!   `system ready: <names>` line naming, in start order, every manifest server whose crate is
//!   packed and whose exporters run (so the expectation follows the manifest as servers land),
//!   with no panic and no fault.
//! - `system-restart` boots root with a test manifest (below): `echo` (the template server) and
//!   `crasher` (servers/test/crasher), which uses the root protocol, overflows its stack once,
//!   and after root restarts it checks `status`, `connect`, `kill` and `restart`; `mute` (the
//!   crasher's image under another name) never reports ready, and boot goes on without it;
//!   `broken`'s image is a malformed ELF (the template server cut short, so its segments run
//!   past the end of the file): root names the loader's refusal and nothing else fails.

use super::{Case, Ctx, check, no_panic};
use crate::Result;
use crate::artifacts;
use crate::qemu::{self, Boot, Captured, Outcome};

/// The test manifest of `system-restart`.
const RESTART_MANIFEST: &str = r#"
[server.echo]
crate = "hsync-template"
priority = 10
exports = ["template"]

[server.crasher]
crate = "hsync-test-crasher"
priority = 10
imports = ["template"]
restart = "on-fault"
restart-limit = 2

[server.mute]
crate = "hsync-test-crasher"
priority = 10

[server.broken]
crate = "hsync-broken"
priority = 10
"#;

/// Bytes of the template server's ELF that `broken` gets: the headers and a little more.
const BROKEN_LEN: usize = 512;

/// The names `system ready` must list for the normal image: manifest servers in start order
/// whose crate is a workspace member (so it is packed) and whose exporters are all listed.
pub fn expected_ready() -> Result<Vec<String>> {
    let system = crate::manifest::system()?;
    let members = crate::manifest::workspace_packages()?;
    let mut running: Vec<String> = Vec::new();
    for s in &system.servers {
        let packed = members.contains(&s.binary);
        if packed && s.imports.iter().all(|i| running.contains(&i.server)) {
            running.push(s.name.clone());
        }
    }
    Ok(running)
}

/// Lines of the output that carry root's `system ready:` announcement.
fn ready_lines(out: &str) -> Vec<&str> {
    out.lines()
        .filter_map(|l| l.find("system ready:").map(|at| l[at..].trim_end()))
        .collect()
}

fn ready_case(suite: &str, out: &str, names: &[String]) -> Case {
    let want = format!("system ready: {}", names.join(" "));
    let lines = ready_lines(out);
    check(
        suite,
        "ready",
        lines.len() == 1 && lines[0] == want.trim_end(),
        format!("expected exactly one line `{want}`, got {lines:?}"),
    )
}

fn keeps_running(suite: &str, run: &Captured) -> Case {
    check(
        suite,
        "keeps_running",
        run.outcome == Outcome::Timeout,
        format!(
            "expected the system to run until the timeout, got {:?}",
            run.outcome
        ),
    )
}

/// `out` holds exactly one `system ready` line, naming the servers [`expected_ready`] names.
pub fn judge_ready(suite: &str, out: &str) -> Case {
    match expected_ready() {
        Ok(names) => ready_case(suite, out, &names),
        Err(e) => check(
            suite,
            "ready",
            false,
            format!("cannot read the manifest: {e}"),
        ),
    }
}

/// The normal image reaches `system ready` with the expected servers.
pub fn judge_system(suite: &str, run: &Captured) -> Vec<Case> {
    let out = &run.output;
    vec![
        judge_ready(suite, out),
        check(
            suite,
            "no_fault",
            !out.contains("faulted:"),
            "a server faulted during boot",
        ),
        no_panic(suite, run),
        keeps_running(suite, run),
    ]
}

/// Boots root with [`RESTART_MANIFEST`], the template server and the crasher.
pub fn boot_restart(ctx: &mut Ctx) -> Result<Boot> {
    let crates = ["hsync-root", "hsync-template", "hsync-test-crasher"];
    let dir = artifacts::cargo_build_target(&crates, ctx.release, &[])?;
    let system =
        crate::manifest::check_str("system-restart.toml", RESTART_MANIFEST).map_err(|d| {
            let d: Vec<String> = d.iter().map(ToString::to_string).collect();
            format!(
                "the system-restart test manifest is invalid: {}",
                d.join("; ")
            )
        })?;
    let mut b = hsync_initfs::Builder::new();
    let version = format!("HSYNC-OS {}\n", env!("CARGO_PKG_VERSION"));
    b.add("version", version.into_bytes())
        .map_err(|e| e.to_string())?;
    b.add("manifest", system.table).map_err(|e| e.to_string())?;
    for (file, krate) in [
        ("root", "hsync-root"),
        ("hsync-template", "hsync-template"),
        ("hsync-test-crasher", "hsync-test-crasher"),
    ] {
        let p = dir.join(krate);
        let elf = std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        b.add(file, elf).map_err(|e| e.to_string())?;
    }
    let template = dir.join("hsync-template");
    let mut elf =
        std::fs::read(&template).map_err(|e| format!("cannot read {}: {e}", template.display()))?;
    elf.truncate(BROKEN_LEN);
    b.add("hsync-broken", elf).map_err(|e| e.to_string())?;
    let path = artifacts::out_dir().join("initfs-system-restart.img");
    artifacts::write_file(&path, &b.finish())?;
    Ok(qemu::boot_with_initfs(&ctx.system, &path, ""))
}

/// `crasher` faults once; root logs it, restarts it, and the root protocol checks pass.
pub fn judge_restart(suite: &str, run: &Captured) -> Vec<Case> {
    let out = &run.output;
    let has = |s: &str| out.contains(s);
    vec![
        ready_case(suite, out, &["echo".into(), "crasher".into()]),
        check(
            suite,
            "import_badge",
            has("crasher: echo sees badge 2"),
            "the imported endpoint did not carry the importer's badge (index + 1)",
        ),
        check(
            suite,
            "fault_logged",
            out.lines()
                .any(|l| l.contains("root: server `crasher` faulted:") && l.contains("rip=0x")),
            "root did not log crasher's fault with its RIP",
        ),
        check(
            suite,
            "restarted",
            has("root: restarting `crasher` (1 of 2)") && has("crasher: restarted: crasher"),
            "root did not restart crasher",
        ),
        check(
            suite,
            "root_protocol",
            has("crasher: all checks passed") && !has("crasher: FAIL"),
            "the crasher's checks of status/connect/kill/restart failed (see `crasher: FAIL`)",
        ),
        check(
            suite,
            "ready_timeout",
            has("root: `mute` has not reported ready after 5 s; going on without it")
                && has("root: not running: mute"),
            "root did not go on without a server that never reports ready",
        ),
        check(
            suite,
            "malformed_elf",
            has("root: not starting `broken`: spawn: BadElf"),
            "root did not name the loader's refusal of a malformed ELF",
        ),
        check(
            suite,
            "restart_once",
            !has("restarting `crasher` (2 of 2)"),
            "crasher was restarted more than once",
        ),
        no_panic(suite, run),
        keeps_running(suite, run),
    ]
}

/// The normal image: root greets with the ABI version, lists the initfs, and keeps running.
pub fn judge_root(suite: &str, run: &Captured) -> Vec<Case> {
    let out = &run.output;
    vec![
        check(
            suite,
            "hello",
            out.contains("root: hello from user space, ABI version"),
            "no hello line from root",
        ),
        check(
            suite,
            "initfs_listing",
            out.contains("root: initfs version") && out.contains("root: initfs root"),
            "root did not list the initfs (version, root)",
        ),
        no_panic(suite, run),
        check(
            suite,
            "keeps_running",
            run.outcome == Outcome::Timeout,
            format!(
                "expected root to wait until the timeout, got {:?}",
                run.outcome
            ),
        ),
    ]
}
