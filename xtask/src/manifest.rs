//! The system manifest: `initfs/system.toml` → validated → the compiled table root reads.
//!
//! The TOML is read with `toml::de::DeTable`, which keeps the byte span of every key and value,
//! so every error names the file, line and column of the offending key or value. Validation
//! collects every error it can find (not just the first), then [`hsync_initfs::manifest::compile`]
//! writes the table; the writer parses its own output back, so anything xtask packs, root
//! accepts. See docs/manifest.md for the keys and the rules.
//!
//! This module refuses to guess: unknown keys, wrong types and out-of-range values are errors,
//! never ignored.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hsync_initfs::manifest::{
    self as format, ImportSpec, PAGE_SIZE, PORT_LIMIT, PRIORITY_LEVELS, Resource, Restart,
    ServerSpec, is_valid_name,
};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::Result;
use crate::artifacts::root;

/// Where the system's manifest lives, relative to the workspace root.
pub const SYSTEM_MANIFEST: &str = "initfs/system.toml";
/// Restart limit when `restart` is `on-fault`/`always` and `restart-limit` is not given.
pub const DEFAULT_RESTART_LIMIT: u16 = 5;

/// One validation error: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// A validated manifest.
#[derive(Clone, Debug)]
pub struct System {
    /// The servers in start order, as the compiler takes them.
    pub servers: Vec<ServerSpec>,
    /// The compiled table (the initfs file `manifest`).
    pub table: Vec<u8>,
}

impl System {
    /// The distinct cargo packages the servers run, in start order (each is also the initfs file
    /// name of its ELF).
    pub fn crates(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.servers {
            if !out.contains(&s.binary.as_str()) {
                out.push(&s.binary);
            }
        }
        out
    }
}

/// Validates and compiles the manifest text `src`; `file` only labels the diagnostics.
pub fn check_str(file: &str, src: &str) -> Result<System, Vec<Diagnostic>> {
    let mut cx = Cx {
        file,
        src,
        errors: Vec::new(),
    };
    let servers = cx.servers();
    let servers = cx.resolve(servers);
    if !cx.errors.is_empty() {
        cx.errors.sort_by_key(|d| (d.line, d.column));
        return Err(cx.errors);
    }
    match format::compile(&servers) {
        Ok(table) => Ok(System { servers, table }),
        // Validation above covers every rule the reader checks; reaching this is an xtask bug,
        // but it still must not produce a table root rejects.
        Err(e) => Err(vec![
            cx.diag(0..0, format!("internal: cannot compile: {e}")),
        ]),
    }
}

/// Reads, validates and compiles the manifest at `path`; the error lists every diagnostic.
pub fn load(path: &Path) -> Result<System> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let shown = path
        .strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string();
    check_str(&shown, &src).map_err(|errors| {
        let n = errors.len();
        let mut text = vec![format!(
            "{shown}: {n} error{} in the system manifest (see docs/manifest.md):",
            if n == 1 { "" } else { "s" }
        )];
        text.extend(errors.iter().map(|d| format!("  {d}")));
        text.join("\n")
    })
}

/// The system manifest of this workspace, validated and compiled.
pub fn system() -> Result<System> {
    load(&root().join(SYSTEM_MANIFEST))
}

/// `cargo xtask manifest [--check FILE]`: validates and prints the start order and the grants.
pub fn run(check: Option<&Path>) -> Result<()> {
    let path = check.map_or_else(|| root().join(SYSTEM_MANIFEST), PathBuf::from);
    let system = load(&path)?;
    println!(
        "{}: ok, {} servers, compiled table {} bytes; start order:",
        path.strip_prefix(root()).unwrap_or(&path).display(),
        system.servers.len(),
        system.table.len()
    );
    for (i, s) in system.servers.iter().enumerate() {
        let restart = match s.restart {
            Restart::Never => "never".to_string(),
            Restart::OnFault { limit } => format!("on-fault x{limit}"),
            Restart::Always { limit } => format!("always x{limit}"),
        };
        println!(
            "  {i}. {:<10} prio {:>2}  {:<13} {}{}",
            s.name,
            s.priority,
            restart,
            s.binary,
            if s.ready {
                ""
            } else {
                "  (no ready handshake)"
            }
        );
        for r in &s.resources {
            println!("       {}", describe(r));
        }
        if s.framebuffer {
            println!("       framebuffer");
        }
        for e in &s.exports {
            println!("       exports {e}");
        }
        for m in &s.imports {
            println!("       imports {} from {}", m.protocol, m.server);
        }
    }
    Ok(())
}

/// What `cargo xtask build` does with the manifest.
#[derive(Clone, Debug)]
pub struct BuildPlan {
    /// The compiled table, packed as the initfs file [`format::FILE_NAME`].
    pub table: Vec<u8>,
    /// The server crates to build and pack (each under its package name).
    pub crates: Vec<String>,
}

/// Validates the system manifest (failing the build on any error) and picks the server crates
/// to build: those that are workspace members. Servers whose crate does not exist yet are named
/// on one line and left out of the image (root reports them missing at boot).
pub fn plan() -> Result<BuildPlan> {
    let system = system()?;
    let members = workspace_packages()?;
    let (crates, missing): (Vec<&str>, Vec<&str>) = system
        .crates()
        .into_iter()
        .partition(|c| members.iter().any(|m| m == c));
    if !missing.is_empty() {
        eprintln!(
            "    manifest: not in the workspace yet, not packed: {}",
            missing.join(", ")
        );
    }
    Ok(BuildPlan {
        crates: crates.into_iter().map(str::to_owned).collect(),
        table: system.table,
    })
}

/// The names of the packages in the workspace (from the root Cargo.toml's `members`).
pub fn workspace_packages() -> Result<Vec<String>> {
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let top = read(root().join("Cargo.toml"))?;
    let top = DeTable::parse(&top).map_err(|e| format!("Cargo.toml: {e}"))?;
    let members = top
        .get_ref()
        .get("workspace")
        .and_then(|w| w.get_ref().get("members"))
        .and_then(|m| m.get_ref().as_array())
        .ok_or("Cargo.toml has no [workspace] members")?;
    let mut names = Vec::new();
    for m in members.iter() {
        let Some(dir) = m.get_ref().as_str() else {
            continue;
        };
        let text = read(root().join(dir).join("Cargo.toml"))?;
        let t = DeTable::parse(&text).map_err(|e| format!("{dir}/Cargo.toml: {e}"))?;
        if let Some(name) = t
            .get_ref()
            .get("package")
            .and_then(|p| p.get_ref().get("name"))
            .and_then(|n| n.get_ref().as_str())
        {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// A server as read from the file, with the spans its checks need.
struct Parsed {
    spec: ServerSpec,
    /// The `[server.NAME]` header (or key).
    span: Range<usize>,
    priority_span: Range<usize>,
    /// Span of each resource, and of the framebuffer key.
    resource_spans: Vec<Range<usize>>,
    framebuffer_span: Range<usize>,
    /// Each import as written: protocol, optional explicit server, span.
    imports: Vec<(String, Option<String>, Range<usize>)>,
}

struct Cx<'a> {
    file: &'a str,
    src: &'a str,
    errors: Vec<Diagnostic>,
}

type Table<'i> = DeTable<'i>;
type Value<'i> = Spanned<DeValue<'i>>;

impl Cx<'_> {
    fn diag(&self, span: Range<usize>, message: String) -> Diagnostic {
        let at = span.start.min(self.src.len());
        let before = self.src.get(..at).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            message,
        }
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = self.diag(span, message.into());
        self.errors.push(d);
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        self.diag(span.clone(), String::new()).line
    }

    /// Parses the document and every `[server.NAME]` table, in file order.
    fn servers(&mut self) -> Vec<Parsed> {
        let doc = match DeTable::parse(self.src) {
            Ok(doc) => doc,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let what = match e.message() {
                    "duplicate key" => {
                        "duplicate key: this server (or key) is already defined above".to_owned()
                    }
                    m => format!("TOML syntax: {}", m.trim()),
                };
                self.error(span, what);
                return Vec::new();
            }
        };
        let mut servers = Vec::new();
        for (key, value) in sorted(doc.get_ref()) {
            if key.get_ref() != "server" {
                self.error(
                    key.span(),
                    format!(
                        "unknown top-level key `{}`; the only one is `server` ([server.NAME] \
                         tables)",
                        key.get_ref()
                    ),
                );
                continue;
            }
            let Some(table) = value.get_ref().as_table() else {
                self.error(
                    value.span(),
                    "`server` must be a table of [server.NAME] tables",
                );
                continue;
            };
            for (name, body) in sorted(table) {
                if let Some(p) = self.server(name, body) {
                    servers.push(p);
                }
            }
        }
        if servers.is_empty() && self.errors.is_empty() {
            self.error(
                0..0,
                "the manifest names no servers; add a [server.NAME] table",
            );
        }
        servers
    }

    fn server(
        &mut self,
        name: &Spanned<std::borrow::Cow<'_, str>>,
        body: &Value<'_>,
    ) -> Option<Parsed> {
        let span = name.span();
        let name = name.get_ref().to_string();
        if !is_valid_name(&name) {
            self.error(
                span.clone(),
                format!("bad server name `{name}`: use [a-z][a-z0-9-]*, at most 64 bytes"),
            );
        }
        let Some(table) = body.get_ref().as_table() else {
            self.error(body.span(), format!("server `{name}` must be a table"));
            return None;
        };
        let mut p = Parsed {
            spec: ServerSpec {
                name: name.clone(),
                binary: format!("hsync-{name}"),
                priority: 0,
                restart: Restart::OnFault {
                    limit: DEFAULT_RESTART_LIMIT,
                },
                ready: true,
                framebuffer: false,
                resources: Vec::new(),
                exports: Vec::new(),
                imports: Vec::new(),
            },
            span: span.clone(),
            priority_span: span.clone(),
            resource_spans: Vec::new(),
            framebuffer_span: span.clone(),
            imports: Vec::new(),
        };
        let mut priority = None;
        let mut priority_seen = false;
        let mut restart: Option<(String, Range<usize>)> = None;
        let mut limit: Option<(u16, Range<usize>)> = None;
        for (key, value) in sorted(table) {
            let k = key.get_ref().as_ref();
            match k {
                "crate" => {
                    if let Some(s) = self.name_value(value, "crate") {
                        p.spec.binary = s;
                    }
                }
                "priority" => {
                    priority_seen = true;
                    let max = i128::from(PRIORITY_LEVELS - 1);
                    if let Some(v) = self.int(value, 0, max, "priority") {
                        priority = Some(v as u8);
                        p.priority_span = value.span();
                    }
                }
                "io-ports" => {
                    for item in self.array(value, "io-ports") {
                        if let Some(r) = self.ports(item) {
                            p.spec.resources.push(r);
                            p.resource_spans.push(item.span());
                        }
                    }
                }
                "irqs" => {
                    for item in self.array(value, "irqs") {
                        if let Some(v) = self.int(item, 0, 255, "an IRQ") {
                            p.spec.resources.push(Resource::Irq(v as u8));
                            p.resource_spans.push(item.span());
                        }
                    }
                }
                "mmio" => {
                    for item in self.array(value, "mmio") {
                        if let Some(r) = self.mmio(item) {
                            p.spec.resources.push(r);
                            p.resource_spans.push(item.span());
                        }
                    }
                }
                "framebuffer" => {
                    if let Some(b) = self.bool(value, "framebuffer") {
                        p.spec.framebuffer = b;
                        p.framebuffer_span = key.span();
                    }
                }
                "ready" => {
                    if let Some(b) = self.bool(value, "ready") {
                        p.spec.ready = b;
                    }
                }
                "exports" => {
                    for item in self.array(value, "exports") {
                        if let Some(s) = self.name_value(item, "a protocol") {
                            if p.spec.exports.contains(&s) {
                                self.error(item.span(), format!("`{s}` is exported twice"));
                            } else {
                                p.spec.exports.push(s);
                            }
                        }
                    }
                }
                "imports" => {
                    for item in self.array(value, "imports") {
                        if let Some(i) = self.import(item) {
                            p.imports.push(i);
                        }
                    }
                }
                "restart" => {
                    if let Some(s) = self.string(value, "restart") {
                        restart = Some((s, value.span()));
                    }
                }
                "restart-limit" => {
                    if let Some(v) = self.int(value, 1, i128::from(u16::MAX), "restart-limit") {
                        limit = Some((v as u16, value.span()));
                    }
                }
                _ => self.error(
                    key.span(),
                    format!(
                        "unknown key `{k}` in server `{name}`; known keys: crate, priority, \
                         io-ports, irqs, mmio, framebuffer, exports, imports, restart, \
                         restart-limit, ready"
                    ),
                ),
            }
        }
        match priority {
            Some(v) => p.spec.priority = v,
            None if priority_seen => {}
            None => self.error(
                span.clone(),
                format!("server `{name}` has no `priority` (0 lowest ..= 31 highest)"),
            ),
        }
        let limit_or_default = limit.as_ref().map_or(DEFAULT_RESTART_LIMIT, |l| l.0);
        p.spec.restart = match restart.as_ref().map(|(s, span)| (s.as_str(), span.clone())) {
            None | Some(("on-fault", _)) => Restart::OnFault {
                limit: limit_or_default,
            },
            Some(("always", _)) => Restart::Always {
                limit: limit_or_default,
            },
            Some(("never", _)) => {
                if let Some((_, span)) = limit {
                    self.error(
                        span,
                        "`restart-limit` makes no sense with restart = \"never\"",
                    );
                }
                Restart::Never
            }
            Some((other, span)) => {
                self.error(
                    span,
                    format!(
                        "bad restart policy `{other}`: use \"never\", \"on-fault\" or \"always\""
                    ),
                );
                Restart::Never
            }
        };
        Some(p)
    }

    fn ports(&mut self, item: &Value<'_>) -> Option<Resource> {
        let (base, count) = match item.get_ref() {
            DeValue::Integer(_) => (self.int(item, 0, 0xffff, "an I/O port")?, 1),
            DeValue::Table(t) => {
                let [base, count] = self.fields(item, t, ["base", "count"], "an I/O port range")?;
                (
                    self.int(base, 0, 0xffff, "base")?,
                    self.int(count, 1, i128::from(PORT_LIMIT as u32), "count")?,
                )
            }
            _ => {
                self.error(
                    item.span(),
                    "an I/O port is a number (0x60) or a range { base = 0x3F8, count = 8 }",
                );
                return None;
            }
        };
        if base + count > i128::from(PORT_LIMIT as u32) {
            self.error(
                item.span(),
                format!("I/O port range {base:#x} + {count} runs past port 0xFFFF"),
            );
            return None;
        }
        Some(Resource::IoPorts {
            base: base as u16,
            count: count as u32,
        })
    }

    fn mmio(&mut self, item: &Value<'_>) -> Option<Resource> {
        let Some(t) = item.get_ref().as_table() else {
            self.error(
                item.span(),
                "an MMIO range is { base = 0xB8000, size = 0x8000 }",
            );
            return None;
        };
        let [base, size] = self.fields(item, t, ["base", "size"], "an MMIO range")?;
        let max = i128::from(u64::MAX);
        let (b, s) = (
            self.int(base, 0, max, "base")?,
            self.int(size, 1, max, "size")?,
        );
        let page = i128::from(PAGE_SIZE);
        if b % page != 0 || s % page != 0 {
            self.error(
                item.span(),
                format!("MMIO range {b:#x} +{s:#x} is not page-aligned (4 KiB base and size)"),
            );
            return None;
        }
        if b + s > max {
            self.error(
                item.span(),
                format!("MMIO range {b:#x} +{s:#x} wraps around"),
            );
            return None;
        }
        Some(Resource::Mmio {
            base: b as u64,
            size: s as u64,
        })
    }

    fn import(&mut self, item: &Value<'_>) -> Option<(String, Option<String>, Range<usize>)> {
        match item.get_ref() {
            DeValue::String(_) => {
                let protocol = self.name_value(item, "a protocol")?;
                Some((protocol, None, item.span()))
            }
            DeValue::Table(t) => {
                let [protocol, server] =
                    self.fields(item, t, ["protocol", "server"], "an import")?;
                let protocol = self.name_value(protocol, "a protocol")?;
                let server = self.name_value(server, "a server")?;
                Some((protocol, Some(server), item.span()))
            }
            _ => {
                self.error(
                    item.span(),
                    "an import is a protocol name (\"serial\") or { protocol = \"serial\", \
                     server = \"serial\" }",
                );
                None
            }
        }
    }

    /// The named fields of an inline table, all required, no others allowed.
    fn fields<'v, 'i, const N: usize>(
        &mut self,
        item: &Value<'_>,
        t: &'v Table<'i>,
        names: [&str; N],
        what: &str,
    ) -> Option<[&'v Value<'i>; N]> {
        let mut ok = true;
        for (key, _) in t.iter() {
            if !names.contains(&key.get_ref().as_ref()) {
                self.error(
                    key.span(),
                    format!(
                        "unknown key `{}` in {what}; expected {}",
                        key.get_ref(),
                        names.join(", ")
                    ),
                );
                ok = false;
            }
        }
        let mut out = Vec::with_capacity(N);
        for n in names {
            match t.get(n) {
                Some(v) => out.push(v),
                None => {
                    self.error(item.span(), format!("{what} needs `{n}`"));
                    ok = false;
                }
            }
        }
        if ok { out.try_into().ok() } else { None }
    }

    fn array<'v, 'i>(&mut self, value: &'v Value<'i>, key: &str) -> Vec<&'v Value<'i>> {
        match value.get_ref().as_array() {
            Some(a) => a.iter().collect(),
            None => {
                self.error(
                    value.span(),
                    format!(
                        "`{key}` must be an array, found {}",
                        value.get_ref().type_str()
                    ),
                );
                Vec::new()
            }
        }
    }

    fn int(&mut self, value: &Value<'_>, min: i128, max: i128, what: &str) -> Option<i128> {
        let parsed = value
            .get_ref()
            .as_integer()
            .map(|i| i128::from_str_radix(i.as_str(), i.radix()));
        match parsed {
            Some(Ok(v)) if (min..=max).contains(&v) => Some(v),
            Some(_) => {
                self.error(
                    value.span(),
                    format!("{what} out of range: expected {min}..={max} ({min:#x}..={max:#x})"),
                );
                None
            }
            None => {
                self.error(
                    value.span(),
                    format!(
                        "{what} must be an integer, found {}",
                        value.get_ref().type_str()
                    ),
                );
                None
            }
        }
    }

    fn bool(&mut self, value: &Value<'_>, what: &str) -> Option<bool> {
        let b = value.get_ref().as_bool();
        if b.is_none() {
            self.error(
                value.span(),
                format!(
                    "`{what}` must be true or false, found {}",
                    value.get_ref().type_str()
                ),
            );
        }
        b
    }

    fn string(&mut self, value: &Value<'_>, what: &str) -> Option<String> {
        let s = value.get_ref().as_str().map(str::to_owned);
        if s.is_none() {
            self.error(
                value.span(),
                format!(
                    "{what} must be a string, found {}",
                    value.get_ref().type_str()
                ),
            );
        }
        s
    }

    fn name_value(&mut self, value: &Value<'_>, what: &str) -> Option<String> {
        let s = self.string(value, what)?;
        if is_valid_name(&s) {
            Some(s)
        } else {
            self.error(
                value.span(),
                format!("bad name `{s}` for {what}: use [a-z][a-z0-9-]*, at most 64 bytes"),
            );
            None
        }
    }

    /// Cross-server rules: names, claims, imports, priorities, start order.
    fn resolve(&mut self, mut servers: Vec<Parsed>) -> Vec<ServerSpec> {
        // Exclusive claims: every resource (and the framebuffer) against every earlier one.
        let mut claims: Vec<(usize, Resource, Range<usize>)> = Vec::new();
        for (si, s) in servers.iter().enumerate() {
            for (r, span) in s.spec.resources.iter().zip(&s.resource_spans) {
                if let Some((owner, _, at)) = claims.iter().find(|(_, c, _)| c.overlaps(r)) {
                    let what = match r {
                        Resource::IoPorts { .. } => "I/O ports overlap",
                        Resource::Irq(_) => "IRQ is claimed twice",
                        Resource::Mmio { .. } => "MMIO ranges overlap",
                    };
                    let msg = format!(
                        "{what}: {} of server `{}` is already claimed by server `{}` (line {})",
                        describe(r),
                        s.spec.name,
                        servers[*owner].spec.name,
                        self.line_of(at)
                    );
                    self.error(span.clone(), msg);
                }
                claims.push((si, *r, span.clone()));
            }
        }
        let fb: Vec<&Parsed> = servers.iter().filter(|s| s.spec.framebuffer).collect();
        if let [first, rest @ ..] = fb.as_slice() {
            let line = self.line_of(&first.framebuffer_span);
            let errs: Vec<_> = rest
                .iter()
                .map(|s| {
                    let msg = format!(
                        "the framebuffer is claimed twice: server `{}` asks for it, but server \
                         `{}` (line {line}) already has it",
                        s.spec.name, first.spec.name
                    );
                    (s.framebuffer_span.clone(), msg)
                })
                .collect();
            for (span, msg) in errs {
                self.error(span, msg);
            }
        }

        // Imports: resolve to one exporter each.
        let exporters: HashMap<&str, Vec<usize>> = {
            let mut m: HashMap<&str, Vec<usize>> = HashMap::new();
            for (i, s) in servers.iter().enumerate() {
                for e in &s.spec.exports {
                    m.entry(e.as_str()).or_default().push(i);
                }
            }
            m
        };
        let index: HashMap<&str, usize> = servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.spec.name.as_str(), i))
            .collect();
        let mut resolved: Vec<Vec<(usize, ImportSpec, Range<usize>)>> = Vec::new();
        for (si, s) in servers.iter().enumerate() {
            let mut list = Vec::new();
            for (protocol, server, span) in &s.imports {
                let target = match server {
                    Some(server) => match index.get(server.as_str()) {
                        None => {
                            self.error(
                                span.clone(),
                                format!(
                                    "unknown server `{server}` in an import of `{}`",
                                    s.spec.name
                                ),
                            );
                            continue;
                        }
                        Some(&t) if !servers[t].spec.exports.contains(protocol) => {
                            self.error(
                                span.clone(),
                                format!(
                                    "import with no exporter: server `{server}` does not export \
                                     `{protocol}` (it exports: {})",
                                    list_or_none(&servers[t].spec.exports)
                                ),
                            );
                            continue;
                        }
                        Some(&t) => t,
                    },
                    None => match exporters.get(protocol.as_str()).map(Vec::as_slice) {
                        None | Some([]) => {
                            self.error(
                                span.clone(),
                                format!(
                                    "import with no exporter: no server exports `{protocol}` \
                                     (imported by `{}`)",
                                    s.spec.name
                                ),
                            );
                            continue;
                        }
                        Some([t]) => *t,
                        Some(many) => {
                            let names: Vec<&str> = many
                                .iter()
                                .map(|&t| servers[t].spec.name.as_str())
                                .collect();
                            self.error(
                                span.clone(),
                                format!(
                                    "ambiguous import: `{protocol}` is exported by {}; write {{ \
                                     protocol = \"{protocol}\", server = \"...\" }}",
                                    names.join(", ")
                                ),
                            );
                            continue;
                        }
                    },
                };
                if target == si {
                    self.error(
                        span.clone(),
                        format!("server `{}` imports its own `{protocol}`", s.spec.name),
                    );
                    continue;
                }
                if list.iter().any(|(t, i, _): &(usize, ImportSpec, _)| {
                    *t == target && i.protocol == *protocol
                }) {
                    self.error(span.clone(), format!("`{protocol}` is imported twice"));
                    continue;
                }
                let exporter = &servers[target].spec;
                if s.spec.priority > exporter.priority {
                    let msg = format!(
                        "priority inversion: `{}` (priority {}) imports `{protocol}` from `{}` \
                         (priority {}, line {}); a server may only import from servers of equal \
                         or higher priority",
                        s.spec.name,
                        s.spec.priority,
                        exporter.name,
                        exporter.priority,
                        self.line_of(&servers[target].priority_span)
                    );
                    self.error(span.clone(), msg);
                }
                list.push((
                    target,
                    ImportSpec {
                        protocol: protocol.clone(),
                        server: exporter.name.clone(),
                    },
                    span.clone(),
                ));
            }
            resolved.push(list);
        }
        for (s, list) in servers.iter_mut().zip(&resolved) {
            s.spec.imports = list.iter().map(|(_, i, _)| i.clone()).collect();
        }

        // Start order: exporters before importers; ties keep file order.
        let n = servers.len();
        let mut placed = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while order.len() < n {
            let next =
                (0..n).find(|&i| !placed[i] && resolved[i].iter().all(|(t, _, _)| placed[*t]));
            match next {
                Some(i) => {
                    placed[i] = true;
                    order.push(i);
                }
                None => {
                    let i = (0..n).find(|&i| !placed[i]).unwrap_or(0);
                    let stuck: Vec<&str> = (0..n)
                        .filter(|&i| !placed[i])
                        .map(|i| servers[i].spec.name.as_str())
                        .collect();
                    let span = resolved[i]
                        .iter()
                        .find(|(t, _, _)| !placed[*t])
                        .map_or(servers[i].span.clone(), |(_, _, s)| s.clone());
                    self.error(
                        span,
                        format!(
                            "import cycle among {}: no start order puts every exporter first",
                            stuck.join(", ")
                        ),
                    );
                    break;
                }
            }
        }
        let mut out: Vec<Option<ServerSpec>> = servers.into_iter().map(|p| Some(p.spec)).collect();
        order.iter().filter_map(|&i| out[i].take()).collect()
    }
}

/// A table's entries in file order (the parser's map is sorted by key).
fn sorted<'t, 'i>(
    t: &'t Table<'i>,
) -> Vec<(&'t Spanned<std::borrow::Cow<'i, str>>, &'t Value<'i>)> {
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

fn describe(r: &Resource) -> String {
    match *r {
        Resource::IoPorts { base, count: 1 } => format!("port {base:#x}"),
        Resource::IoPorts { base, count } => {
            format!("ports {base:#x}..={:#x}", u32::from(base) + count - 1)
        }
        Resource::Irq(line) => format!("IRQ {line}"),
        Resource::Mmio { base, size } => format!("MMIO {base:#x} +{size:#x}"),
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "nothing".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests;
