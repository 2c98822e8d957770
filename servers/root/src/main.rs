//! Root: the supervisor. The first user process of the normal image.
//!
//! It reads the compiled system manifest from the initfs (`hsync_initfs::manifest`), starts
//! every server in start order with exactly the capabilities the manifest grants (I/O port
//! ranges, IRQ lines, MMIO frames, one endpoint per export, a badged endpoint per import, and a
//! badged endpoint to root — nothing else), waits for each `ready = true` server's ready message
//! (the `root` protocol, `servers/root-api`), and prints one line `system ready: <names>`.
//!
//! Supervision: one watcher thread per running server blocks in `process_wait` and reports the
//! end (exit status and fault record) to root's main thread as a message on root's own endpoint
//! (with a badge no server holds). Root logs a fault (kind, address, RIP), restarts the server
//! when the manifest says so (within its restart limit) with fresh export endpoints — the old
//! ones lose their last `RECV` handle with the dead server, so its clients get `PeerDied` and
//! reconnect through `connect`.
//!
//! A manifest server whose image is missing from the initfs is logged and skipped (state
//! `missing`), and so is every server importing from a server that is not running; the rest of
//! the system still starts and `system ready` names the servers that run.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use hsync_abi::DeviceCache;
use hsync_initfs::manifest::{self, Manifest, Resource, Restart, Server};
use hsync_root_api::{
    Bytes, FbGeometry, ResourceKind, RootError, RootServer, ServerStatus, StartLayout, State,
};
use libhsync::hw::HwAuthority;
use libhsync::process::{CHILD_MAX_HANDLES, CHILD_MAX_WORDS, Child, Image, Spawn};
use libhsync::protocol::Message;
use libhsync::{
    AnyHandle, DEADLINE_NEVER, Endpoint, Error, ExitStatus, FaultRecord, Frame, IpcBuf, PAGE_SIZE,
    Process, Rights, StartArgs,
};

libhsync::entry!(main);

/// What a server holds on each endpoint it exports.
const EXPORT_RIGHTS: Rights = Rights::RECV.union(Rights::SEND).union(Rights::DUPLICATE);
/// Badge of the endpoint copy the watcher threads report on (no server index reaches it).
const WATCH_BADGE: u64 = 1 << 63;
/// Label of a watcher's report.
const WATCH_LABEL: u64 = 0x57a7c4;
/// Watcher report tag: the server did not report ready within [`READY_TIMEOUT_NS`].
const TAG_READY_OVERDUE: u64 = 0xff;
/// How long boot waits for a server's ready message before going on without it.
const READY_TIMEOUT_NS: u64 = 5_000_000_000;
/// Priority of root's watcher threads (root's own).
const WATCH_PRIORITY: u64 = 31;

/// What root logs of a fault record.
#[derive(Clone, Copy, Debug)]
struct Fault {
    address: u64,
    rip: u64,
    rsp: u64,
    error_code: u64,
    thread_id: u64,
}

impl From<FaultRecord> for Fault {
    fn from(f: FaultRecord) -> Fault {
        Fault {
            address: f.address,
            rip: f.rip,
            rsp: f.rsp,
            error_code: f.error_code,
            thread_id: f.thread_id,
        }
    }
}

/// One manifest server as root tracks it (by manifest index in [`Root::srvs`]).
struct Srv {
    state: State,
    image: Option<Image>,
    process: Option<Process>,
    /// The watch id of `process` (a key of [`Root::watched`]).
    watch: Option<WatchId>,
    /// Root's copies of the current export endpoints (every right but `RECV`).
    exports: Vec<Endpoint>,
    generation: u32,
    restarts: u16,
    faults: u16,
    /// Set by `kill`: the coming end is wanted; leave it stopped.
    stop_requested: bool,
    /// Set by `restart`: start it again when it ends (not counted).
    restart_requested: bool,
    /// Boot stopped waiting for its ready message (it may still send it).
    overdue: bool,
}

/// Names one started server process for its watcher's reports; never reused.
type WatchId = u64;

struct Root {
    manifest: Manifest<'static>,
    archive: hsync_initfs::Archive<'static>,
    hw: Option<HwAuthority>,
    ep: Endpoint,
    /// Root's endpoint badged [`WATCH_BADGE`]: each watcher gets a copy.
    watch_ep: Endpoint,
    srvs: Vec<Srv>,
    /// Supervised processes: watch id → manifest index. An entry lives from the start until
    /// the end is handled, so a late report of an older process finds nothing.
    watched: BTreeMap<WatchId, usize>,
    next_watch: WatchId,
    /// Next server boot starts.
    cursor: usize,
    announced: bool,
}

/// What [`Root::grant`] prepared for one start: the start words, the start handles in layout
/// order, and root's copies of the fresh export endpoints.
struct Grants {
    layout: StartLayout,
    handles: Vec<(AnyHandle, Rights)>,
    exports: Vec<Endpoint>,
}

fn main(mut args: StartArgs) -> i32 {
    log::info!(
        "root: hello from user space, ABI version {}",
        libhsync::ABI_VERSION
    );
    let Some(initfs) = args.initfs() else {
        log::error!("root: no initfs handle in arg1; nothing to start");
        return 1;
    };
    let archive = match hsync_initfs::Archive::parse(initfs) {
        Ok(a) => a,
        Err(e) => {
            log::error!("root: the initfs is corrupt: {e}");
            return 1;
        }
    };
    for entry in archive.entries() {
        log::info!("root: initfs {} ({} bytes)", entry.name, entry.data.len());
    }
    let Some(table) = archive.get(manifest::FILE_NAME) else {
        log::error!(
            "root: the initfs has no `{}`; no servers to start",
            manifest::FILE_NAME
        );
        return park();
    };
    let manifest = match Manifest::parse(table) {
        Ok(m) => m,
        Err(e) => {
            log::error!("root: rejecting the system manifest: {e}");
            return park();
        }
    };
    let ep = match Endpoint::create() {
        Ok(ep) => ep,
        Err(e) => {
            log::error!("root: endpoint_create failed: {e:?}");
            return 1;
        }
    };
    let watch_ep = match ep.badged(Rights::SEND | Rights::DUPLICATE, WATCH_BADGE) {
        Ok(w) => w,
        Err(e) => {
            log::error!("root: cannot mint the watchers' endpoint: {e:?}");
            return 1;
        }
    };
    let hw = HwAuthority::root();
    if hw.is_none() {
        log::warn!("root: no hardware authority; servers needing hardware will not start");
    }
    let srvs = manifest
        .servers()
        .map(|_| Srv {
            state: State::Pending,
            image: None,
            process: None,
            watch: None,
            exports: Vec::new(),
            generation: 0,
            restarts: 0,
            faults: 0,
            stop_requested: false,
            restart_requested: false,
            overdue: false,
        })
        .collect();
    let mut root = Root {
        manifest,
        archive,
        hw,
        ep,
        watch_ep,
        srvs,
        watched: BTreeMap::new(),
        next_watch: 0,
        cursor: 0,
        announced: false,
    };
    log::info!("root: manifest with {} servers", manifest.len());
    root.advance();
    let err = root.run(&mut args.ipc);
    log::error!("root: receiving failed: {err:?}");
    2
}

fn park() -> i32 {
    loop {
        match libhsync::Notification::create().and_then(|n| n.wait()) {
            Ok(_) => {}
            Err(e) => {
                log::error!("root: cannot park: {e:?}");
                return 1;
            }
        }
    }
}

impl Root {
    /// Root's receive loop: watcher reports and `root` protocol requests.
    fn run(&mut self, ipc: &mut IpcBuf) -> libhsync::Error {
        let mut pending: Option<Message> = None;
        loop {
            // The reply owns the handles it carries: keep it until the kernel copied them.
            let reply = pending.take();
            let next = match reply.as_ref().map(|r| r.load(ipc)) {
                // A refused reply (the caller died, or its handle table is full) loses only
                // that reply; root goes on receiving.
                Some(Ok(out)) => self.ep.reply_recv(out).or_else(|e| {
                    log::warn!("root: reply refused: {e:?}");
                    self.ep.recv()
                }),
                Some(Err(_)) | None => self.ep.recv(),
            };
            drop(reply);
            let rx = match next {
                Ok(rx) => rx,
                Err(e) => return e,
            };
            let mut req = Message::receive(&rx.msg, ipc);
            if rx.badge == WATCH_BADGE {
                self.on_report(&mut req);
                self.advance();
                continue;
            }
            let reply = self.dispatch(rx.badge, &mut req);
            drop(req);
            self.advance();
            pending = Some(reply);
        }
    }

    /// Boot: starts servers in order, each after the previous one reported ready.
    fn advance(&mut self) {
        while self.cursor < self.srvs.len() {
            let prev = self.cursor.checked_sub(1).and_then(|p| self.srvs.get(p));
            if prev.is_some_and(|p| p.state == State::Starting && !p.overdue) {
                return;
            }
            let i = self.cursor;
            self.cursor += 1;
            self.start(i);
        }
        if !self.announced
            && self
                .srvs
                .iter()
                .all(|s| s.state != State::Starting || s.overdue)
        {
            self.announced = true;
            let mut names = String::new();
            let mut missing = String::new();
            for s in self.manifest.servers() {
                let list = match self.srvs[s.index].state {
                    State::Running => &mut names,
                    _ => &mut missing,
                };
                if !list.is_empty() {
                    list.push(' ');
                }
                list.push_str(s.name);
            }
            if !missing.is_empty() {
                log::warn!("root: not running: {missing}");
            }
            libhsync::println!("system ready: {names}");
        }
    }

    fn server(&self, i: usize) -> Option<Server<'static>> {
        self.manifest.server(i)
    }

    /// Starts server `i` (state becomes Starting or Running, or Missing/Stopped on failure).
    fn start(&mut self, i: usize) {
        let Some(spec) = self.server(i) else { return };
        match self.try_start(spec) {
            Ok(()) => {}
            Err(why) => {
                log::error!("root: not starting `{}`: {why}", spec.name);
                let s = &mut self.srvs[i];
                s.state = if s.generation == 0 {
                    State::Missing
                } else {
                    State::Stopped
                };
                s.exports.clear();
            }
        }
    }

    /// A write-combining Frame over the boot framebuffer, its base, size and geometry.
    fn framebuffer_grant(&self) -> Result<(Frame, u64, u64, FbGeometry), String> {
        let hw = self.hw.as_ref().ok_or("root has no hardware authority")?;
        let fb = match hw.framebuffer_info() {
            Ok(fb) => fb,
            Err(Error::NotFound) => return Err("the loader reported no framebuffer".into()),
            Err(e) => return Err(alloc::format!("framebuffer_info: {e}")),
        };
        let small = |v: u64| u8::try_from(v).map_err(|_| "framebuffer format out of range");
        let geometry = FbGeometry {
            width: u32::try_from(fb.width).map_err(|_| "framebuffer too wide")?,
            height: u32::try_from(fb.height).map_err(|_| "framebuffer too tall")?,
            pitch: u32::try_from(fb.pitch).map_err(|_| "framebuffer pitch too large")?,
            bpp: small(fb.bpp)?,
            rgb: [
                (small(fb.red_size)?, small(fb.red_shift)?),
                (small(fb.green_size)?, small(fb.green_shift)?),
                (small(fb.blue_size)?, small(fb.blue_shift)?),
            ],
        };
        let page = PAGE_SIZE;
        let base = fb.phys & !(page - 1);
        let end = fb
            .phys
            .checked_add(fb.pitch.saturating_mul(fb.height))
            .and_then(|e| e.checked_add(page - 1))
            .ok_or("framebuffer range overflows")?
            & !(page - 1);
        if fb.phys != base {
            return Err("framebuffer is not page-aligned".into());
        }
        let frame = hw
            .frame_create_physical(base, end - base, DeviceCache::WriteCombining)
            .map_err(|e| alloc::format!("frame_create_physical: {e}"))?;
        Ok((frame, base, end - base, geometry))
    }

    /// Starts `spec`: load its image, grant its capabilities, start it, await its ready.
    fn try_start(&mut self, spec: Server<'static>) -> Result<(), String> {
        self.load(spec)?;
        let grants = self.grant(spec)?;
        let (child, exports) = self.spawn(spec, grants)?;
        self.await_ready(spec, child, exports);
        Ok(())
    }

    /// Load: parse the server's ELF image from the initfs (once; restarts reuse it).
    fn load(&mut self, spec: Server<'static>) -> Result<(), String> {
        let s = &mut self.srvs[spec.index];
        if s.image.is_none() {
            let elf = self.archive.get(spec.binary).ok_or_else(|| {
                alloc::format!("its image `{}` is not in the initfs", spec.binary)
            })?;
            let image = Image::from_bytes(elf)
                .map_err(|e| alloc::format!("cannot load `{}`: {e:?}", spec.binary))?;
            s.image = Some(image);
        }
        Ok(())
    }

    /// Grant: every start handle the manifest gives `spec`, in the start layout's order —
    /// exports, imports, resources (the framebuffer last), the endpoint to root.
    fn grant(&self, spec: Server<'static>) -> Result<Grants, String> {
        let mut g = Grants {
            layout: StartLayout::new(spec.index as u64),
            handles: Vec::new(),
            exports: Vec::new(),
        };
        self.grant_exports(spec, &mut g)?;
        self.grant_imports(spec, &mut g)?;
        self.grant_resources(spec, &mut g)?;
        if spec.framebuffer {
            match self.framebuffer_grant() {
                Ok((h, base, size, geometry)) => {
                    let rights = h.inspect().map_err(err("inspect"))?.rights;
                    g.handles.push((h.erase(), rights));
                    g.layout.framebuffer(base, size, geometry);
                }
                Err(why) => log::info!(
                    "root: `{}` asks for the framebuffer; not granted: {why}",
                    spec.name
                ),
            }
        }
        let badge = (spec.index + 1) as u64;
        let to_root = self
            .ep
            .badged(Rights::SEND | Rights::TRANSFER, badge)
            .map_err(err("root endpoint"))?;
        g.handles.push((to_root.erase(), Rights::SEND));
        Ok(g)
    }

    /// Exports: fresh endpoints. The server receives on them, and may mint (badged) SEND
    /// copies for its own threads, e.g. the IRQ helpers of `libhsync::serve`.
    fn grant_exports(&self, spec: Server<'static>, g: &mut Grants) -> Result<(), String> {
        for _ in spec.exports() {
            let ep = Endpoint::create().map_err(err("endpoint_create"))?;
            let copy = ep
                .duplicate(EXPORT_RIGHTS | Rights::TRANSFER)
                .map_err(err("export endpoint"))?;
            g.handles.push((copy.erase(), EXPORT_RIGHTS));
            g.layout.export();
            g.exports.push(ep);
        }
        Ok(())
    }

    /// Imports: a badged SEND copy of the exporter's current endpoint.
    fn grant_imports(&self, spec: Server<'static>, g: &mut Grants) -> Result<(), String> {
        for imp in spec.imports() {
            let exporter = &self.srvs[imp.server];
            let k = self
                .manifest
                .server(imp.server)
                .and_then(|s| s.exports().position(|e| e.index == imp.export.index))
                .ok_or("manifest import without its export")?;
            let name = self.manifest.server(imp.server).map_or("?", |s| s.name);
            if !matches!(exporter.state, State::Running | State::Starting) {
                return Err(alloc::format!(
                    "it imports `{}` from `{name}`, which is not running",
                    imp.export.protocol
                ));
            }
            let ep = exporter
                .exports
                .get(k)
                .ok_or("exporter has no endpoint")?
                .badged(Rights::SEND | Rights::TRANSFER, u64::from(imp.badge))
                .map_err(err("badged import endpoint"))?;
            g.handles.push((ep.erase(), Rights::SEND));
            g.layout.import(imp.export.protocol);
        }
        Ok(())
    }

    /// Resources, exactly as the manifest lists them.
    fn grant_resources(&self, spec: Server<'static>, g: &mut Grants) -> Result<(), String> {
        for r in spec.resources() {
            let hw = self
                .hw
                .as_ref()
                .ok_or("it needs hardware and root has no authority")?;
            let (h, kind, a, b): (AnyHandle, _, u64, u64) = match r {
                Resource::IoPorts { base, count } => {
                    let h = hw
                        .ioport_create(base, count)
                        .map_err(err("ioport_create"))?;
                    let (a, b) = (u64::from(base), u64::from(count));
                    (h.erase(), ResourceKind::IoPorts, a, b)
                }
                Resource::Irq(line) => {
                    let h = hw.irq_create(u32::from(line)).map_err(err("irq_create"))?;
                    (h.erase(), ResourceKind::Irq, u64::from(line), 0)
                }
                Resource::Mmio { base, size } => {
                    let h = hw
                        .frame_create_physical(base, size, DeviceCache::Uncached)
                        .map_err(err("frame_create_physical"))?;
                    (h.erase(), ResourceKind::Mmio, base, size)
                }
            };
            let rights = h.inspect().map_err(err("inspect"))?.rights;
            g.handles.push((h, rights));
            g.layout.resource(kind, a, b);
        }
        Ok(())
    }

    /// Start: the process with its start words and handles; root then keeps every right on
    /// the exports but RECV, so when the server dies its clients get `PeerDied`.
    fn spawn(&self, spec: Server<'static>, g: Grants) -> Result<(Child, Vec<Endpoint>), String> {
        let words = g.layout.words().ok_or_else(|| {
            alloc::format!(
                "it needs {} start words and {} handles; at most {CHILD_MAX_WORDS} and {CHILD_MAX_HANDLES} fit",
                g.layout.word_count(),
                g.layout.handle_count()
            )
        })?;
        let image = self.srvs[spec.index].image.as_ref().ok_or("no image")?;
        let mut spawn = Spawn::new(image, spec.name)
            .priority(u64::from(spec.priority))
            .words(words.as_slice());
        for (h, rights) in &g.handles {
            spawn = spawn.handle(h, *rights).map_err(err("start handle"))?;
        }
        let child = spawn.start().map_err(err("spawn"))?;
        drop(g.handles);
        for ep in &g.exports {
            ep.restrict(Rights::all().difference(Rights::RECV))
                .map_err(err("restrict export"))?;
        }
        Ok((child, g.exports))
    }

    /// Await ready: record the new process (Starting when the manifest wants its ready
    /// message, else Running) and start its watcher, which also times the ready handshake.
    fn await_ready(&mut self, spec: Server<'static>, child: Child, exports: Vec<Endpoint>) {
        let id = self.next_watch;
        self.next_watch += 1;
        let s = &mut self.srvs[spec.index];
        s.generation = s.generation.wrapping_add(1);
        s.exports = exports;
        s.state = if spec.ready {
            State::Starting
        } else {
            State::Running
        };
        s.stop_requested = false;
        s.restart_requested = false;
        s.overdue = false;
        let watched = child.process.duplicate(Rights::WAIT);
        s.process = Some(child.process);
        s.watch = Some(id);
        log::info!(
            "root: started `{}` (priority {}, generation {})",
            spec.name,
            spec.priority,
            s.generation
        );
        self.watched.insert(id, spec.index);
        let watch = watched.and_then(|process| {
            let ep = self.watch_ep.duplicate(Rights::SEND)?;
            let w = Watch {
                id,
                ready: spec.ready,
                process,
                ep,
            };
            libhsync::process::spawn_thread_with(watcher, w, WATCH_PRIORITY)
        });
        if let Err(e) = watch {
            log::error!("root: cannot supervise `{}`: {e:?}", spec.name);
        }
    }

    /// A watcher's report: words watch id, status tag, status value, fault record.
    fn on_report(&mut self, req: &mut Message) {
        let mut d = req.decoder();
        let mut next = || d.word().unwrap_or(0);
        let (id, tag, value) = (next(), next(), next());
        let fault = Fault {
            address: next(),
            rip: next(),
            rsp: next(),
            error_code: next(),
            thread_id: next(),
        };
        // Gone when already handled (e.g. by `connect` noticing the death first).
        let Some(&i) = self.watched.get(&id) else {
            return;
        };
        let Some(spec) = self.server(i) else { return };
        let s = &mut self.srvs[i];
        if tag == TAG_READY_OVERDUE {
            if s.state == State::Starting {
                s.overdue = true;
                log::error!(
                    "root: `{}` has not reported ready after {} s; going on without it",
                    spec.name,
                    READY_TIMEOUT_NS / 1_000_000_000
                );
            }
            return;
        }
        let status = match ExitStatus::from_regs(tag, value) {
            Ok(st) => st,
            Err(_) => {
                log::error!(
                    "root: `{}`: could not wait for it (error {value})",
                    spec.name
                );
                return;
            }
        };
        self.ended(spec, status, Some(fault));
    }

    /// Server `spec` ended with `status`: log, and restart when policy says so.
    fn ended(&mut self, spec: Server<'static>, status: ExitStatus, fault: Option<Fault>) {
        let i = spec.index;
        let s = &mut self.srvs[i];
        s.process = None;
        if let Some(id) = s.watch.take() {
            self.watched.remove(&id);
        }
        s.exports.clear();
        let faulted = matches!(status, ExitStatus::Faulted(_));
        match (status, fault) {
            (ExitStatus::Faulted(kind), Some(f)) => {
                s.faults = s.faults.saturating_add(1);
                log::error!(
                    "root: server `{}` faulted: {kind:?} address=0x{:016x} rip=0x{:016x} rsp=0x{:016x} error=0x{:x} thread={}",
                    spec.name,
                    f.address,
                    f.rip,
                    f.rsp,
                    f.error_code,
                    f.thread_id
                );
            }
            (st, _) => {
                if faulted {
                    s.faults = s.faults.saturating_add(1);
                }
                log::warn!("root: server `{}` ended: {st:?}", spec.name);
            }
        }
        if s.restart_requested {
            log::info!("root: restarting `{}` as asked", spec.name);
            self.start(i);
            return;
        }
        if s.stop_requested {
            s.state = State::Stopped;
            log::info!("root: `{}` stopped as asked", spec.name);
            return;
        }
        let limit = match spec.restart {
            Restart::Never => None,
            Restart::OnFault { limit } if faulted => Some(limit),
            Restart::OnFault { .. } => None,
            Restart::Always { limit } => Some(limit),
        };
        match limit {
            Some(limit) if s.restarts < limit => {
                s.restarts += 1;
                log::info!(
                    "root: restarting `{}` ({} of {limit})",
                    spec.name,
                    s.restarts
                );
                self.start(i);
            }
            Some(limit) => {
                s.state = State::Stopped;
                log::error!(
                    "root: `{}` reached its restart limit ({limit}); leaving it stopped",
                    spec.name
                );
            }
            None => {
                s.state = State::Stopped;
                log::info!("root: `{}` stays stopped (restart policy)", spec.name);
            }
        }
    }

    /// If server `i`'s process has ended but its watcher has not reported yet, handle it now.
    fn reap(&mut self, i: usize) {
        let Some(spec) = self.server(i) else { return };
        let ended = match self.srvs[i].process.as_ref().map(Process::poll) {
            Some(Ok(ended)) => ended,
            _ => return,
        };
        self.ended(spec, ended.status, ended.fault.map(Fault::from));
    }

    fn find(&self, name: &str) -> Result<usize, RootError> {
        self.manifest
            .find(name)
            .map(|s| s.index)
            .ok_or(RootError::NoSuchServer)
    }
}

impl RootServer for Root {
    fn ready(&mut self, badge: u64) -> Result<(), RootError> {
        let i = client_index(badge, self.srvs.len()).ok_or(RootError::Refused)?;
        let s = &mut self.srvs[i];
        if s.state == State::Starting {
            s.state = State::Running;
            s.overdue = false;
            if let Some(spec) = self.manifest.server(i) {
                log::info!("root: `{}` is ready", spec.name);
            }
        }
        Ok(())
    }

    fn connect(&mut self, badge: u64, protocol: &str) -> Result<Endpoint, RootError> {
        let i = client_index(badge, self.srvs.len()).ok_or(RootError::NotImported)?;
        let spec = self.server(i).ok_or(RootError::NotImported)?;
        let imp = spec
            .imports()
            .find(|imp| imp.export.protocol == protocol)
            .ok_or(RootError::NotImported)?;
        self.reap(imp.server);
        let k = self
            .server(imp.server)
            .and_then(|s| s.exports().position(|e| e.index == imp.export.index))
            .ok_or(RootError::Failed)?;
        let exporter = &self.srvs[imp.server];
        if !matches!(exporter.state, State::Running | State::Starting) {
            return Err(RootError::NotRunning);
        }
        let ep = exporter.exports.get(k).ok_or(RootError::NotRunning)?;
        ep.badged(Rights::SEND | Rights::TRANSFER, u64::from(imp.badge))
            .map_err(|e| {
                log::error!("root: connect: cannot mint an endpoint: {e:?}");
                RootError::Failed
            })
    }

    fn status(&mut self, _badge: u64, index: u64) -> Result<Bytes, RootError> {
        let i = usize::try_from(index).map_err(|_| RootError::NoSuchServer)?;
        let spec = self.server(i).ok_or(RootError::NoSuchServer)?;
        self.reap(i);
        let s = &self.srvs[i];
        Ok(ServerStatus::new(
            i as u16,
            spec.name,
            s.state,
            spec.priority,
            s.restarts,
            s.faults,
        )
        .encode())
    }

    fn kill(&mut self, badge: u64, name: &str) -> Result<(), RootError> {
        let i = self.find(name)?;
        let s = &mut self.srvs[i];
        let p = s.process.as_ref().ok_or(RootError::NotRunning)?;
        log::info!("root: killing `{name}` (asked by badge {badge})");
        s.stop_requested = true;
        p.kill().map_err(|_| RootError::Failed)
    }

    fn power(&mut self, badge: u64, op: u64) -> Result<(), RootError> {
        // Policy (root-api docs): any server holding a root endpoint may ask.
        if op != libhsync::POWER_OFF && op != libhsync::POWER_REBOOT {
            return Err(RootError::Refused);
        }
        let hw = self.hw.as_ref().ok_or(RootError::Failed)?;
        let what = if op == libhsync::POWER_OFF {
            "power-off"
        } else {
            "reboot"
        };
        log::info!("root: {what} asked by badge {badge}");
        let e = hw.system_power(op).err();
        log::error!("root: {what} failed: {e:?}");
        Err(RootError::Failed)
    }

    fn caps(&mut self, _badge: u64, index: u64) -> Result<Bytes, RootError> {
        let i = usize::try_from(index).map_err(|_| RootError::NoSuchServer)?;
        self.server(i).ok_or(RootError::NoSuchServer)?;
        self.reap(i);
        let p = self.srvs[i].process.as_ref().ok_or(RootError::NotRunning)?;
        let mut recs = [libhsync::HandleRecord {
            handle: hsync_abi::Handle::NULL,
            kind: libhsync::ObjectKind::Process,
            rights: Rights::empty(),
            badge: 0,
        }; hsync_root_api::MAX_CAPS];
        let total = p.handles(&mut recs).map_err(|e| {
            log::error!("root: handle_list: {e:?}");
            RootError::Failed
        })?;
        let mut caps = [hsync_root_api::Cap {
            kind: libhsync::ObjectKind::Process,
            rights: Rights::empty(),
            badge: 0,
        }; hsync_root_api::MAX_CAPS];
        let n = total.min(recs.len());
        for (c, r) in caps.iter_mut().zip(&recs[..n]) {
            *c = hsync_root_api::Cap {
                kind: r.kind,
                rights: r.rights,
                badge: r.badge,
            };
        }
        Ok(hsync_root_api::encode_caps(&caps[..n], total as u64))
    }

    fn restart(&mut self, badge: u64, name: &str) -> Result<(), RootError> {
        let i = self.find(name)?;
        let s = &mut self.srvs[i];
        log::info!("root: restart of `{name}` asked by badge {badge}");
        match s.process.as_ref() {
            Some(p) => {
                s.restart_requested = true;
                p.kill().map_err(|_| RootError::Failed)
            }
            None => {
                self.start(i);
                match self.srvs[i].state {
                    State::Running | State::Starting => Ok(()),
                    _ => Err(RootError::Failed),
                }
            }
        }
    }
}

/// A `map_err` adapter: "what: error".
fn err(what: &'static str) -> impl Fn(libhsync::Error) -> String {
    move |e| alloc::format!("{what}: {e:?}")
}

/// The manifest server index a badge names (`index + 1`), if any.
fn client_index(badge: u64, n: usize) -> Option<usize> {
    let i = usize::try_from(badge.checked_sub(1)?).ok()?;
    (i < n).then_some(i)
}

/// What a watcher thread is given: the process to wait for, how its reports name it, and its
/// own handle to root's endpoint (badged [`WATCH_BADGE`]).
struct Watch {
    id: WatchId,
    /// Also time the ready handshake.
    ready: bool,
    process: Process,
    ep: Endpoint,
}

/// A watcher thread: waits for one server process to end and reports how to root's main
/// thread; when `ready`, first reports [`TAG_READY_OVERDUE`] if the process is still running
/// after [`READY_TIMEOUT_NS`] (root ignores it once the server is ready).
fn watcher(w: Watch, mut ipc: IpcBuf) {
    let mut ended = None;
    if w.ready {
        match w
            .process
            .wait(libhsync::clock().saturating_add(READY_TIMEOUT_NS))
        {
            Err(libhsync::Error::TimedOut) => {
                report(&w.ep, &mut ipc, [w.id, TAG_READY_OVERDUE, 0], None);
            }
            r => ended = Some(r),
        }
    }
    let ended = ended.unwrap_or_else(|| w.process.wait(DEADLINE_NEVER));
    drop(w.process);
    let (tag, value, fault) = match ended {
        Ok(ended) => {
            let (t, v) = match ended.status {
                ExitStatus::Exited(code) => (1, code),
                ExitStatus::Killed => (2, 0),
                ExitStatus::Faulted(kind) => (3, kind.raw()),
            };
            (t, v, ended.fault)
        }
        Err(e) => (0, e as u64, None),
    };
    report(&w.ep, &mut ipc, [w.id, tag, value], fault);
}

/// Sends one watcher report on `ep` (blocks until root's main thread receives it).
fn report(ep: &Endpoint, ipc: &mut IpcBuf, words: [u64; 3], fault: Option<FaultRecord>) {
    let mut m = Message::new(WATCH_LABEL);
    let f = fault.map_or([0; 5], |f| {
        [f.address, f.rip, f.rsp, f.error_code, f.thread_id]
    });
    let ok = words
        .iter()
        .chain(f.iter())
        .all(|&w| m.push_word(w).is_ok());
    match m.load(ipc) {
        Ok(msg) if ok => {
            if let Err(e) = ep.send(msg) {
                log::error!("root: watcher cannot report: {e:?}");
            }
        }
        _ => log::error!("root: watcher cannot encode its report"),
    }
}
