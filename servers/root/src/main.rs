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

use alloc::string::String;
use alloc::vec::Vec;
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicU64, Ordering};

use hsync_abi::DeviceCache;
use hsync_initfs::manifest::{self, Manifest, Resource, Restart, Server};
use hsync_root_api::{
    Bytes, FbGeometry, ResourceKind, RootError, RootServer, START_HEADER_WORDS, START_MAGIC,
    ServerStatus, State, protocol_hash, resource_word,
};
use libhsync::hw::HwAuthority;
use libhsync::process::{CHILD_MAX_HANDLES, CHILD_MAX_WORDS, Image, Spawn};
use libhsync::protocol::Message;
use libhsync::{
    AnyHandle, DEADLINE_NEVER, Endpoint, Error, ExitStatus, FaultRecord, Frame, Handle, IpcBuf,
    PAGE_SIZE, Process, Rights, StartArgs,
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
/// Watcher argument bit: also time the ready handshake.
const WATCH_READY: u64 = 1 << 31;
/// Priority of root's watcher threads (root's own).
const WATCH_PRIORITY: u64 = 31;

/// Raw value of the watchers' badged endpoint (set once before the first watcher starts).
static WATCH_EP: AtomicU64 = AtomicU64::new(0);
/// Process handles handed to watcher threads: slot `arg & 0xff` (taken with a swap).
static WATCH_SLOTS: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];

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

/// One manifest server as root tracks it.
struct Srv {
    state: State,
    image: Option<Image>,
    process: Option<Process>,
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

struct Root {
    manifest: Manifest<'static>,
    archive: hsync_initfs::Archive<'static>,
    hw: Option<HwAuthority>,
    ep: Endpoint,
    srvs: Vec<Srv>,
    /// Next server boot starts.
    cursor: usize,
    announced: bool,
    next_slot: u64,
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
    match ep.badged(Rights::SEND, WATCH_BADGE) {
        Ok(w) => WATCH_EP.store(w.into_raw().raw(), Ordering::Release),
        Err(e) => {
            log::error!("root: cannot mint the watchers' endpoint: {e:?}");
            return 1;
        }
    }
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
        srvs,
        cursor: 0,
        announced: false,
        next_slot: 0,
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

    fn try_start(&mut self, spec: Server<'static>) -> Result<(), String> {
        let i = spec.index;
        if self.srvs[i].image.is_none() {
            let elf = self.archive.get(spec.binary).ok_or_else(|| {
                alloc::format!("its image `{}` is not in the initfs", spec.binary)
            })?;
            let image = Image::from_bytes(elf)
                .map_err(|e| alloc::format!("cannot load `{}`: {e:?}", spec.binary))?;
            self.srvs[i].image = Some(image);
        }
        let badge = (i + 1) as u64;
        let mut words: Vec<u64> = Vec::new();
        let mut grants: Vec<(AnyHandle, Rights)> = Vec::new();
        // Exports: fresh endpoints. The server receives on them, and may mint (badged) SEND
        // copies for its own threads, e.g. an IRQ helper posting to its server loop.
        let mut exports = Vec::new();
        for _ in spec.exports() {
            let ep = Endpoint::create().map_err(err("endpoint_create"))?;
            let copy = ep
                .duplicate(EXPORT_RIGHTS | Rights::TRANSFER)
                .map_err(err("export endpoint"))?;
            grants.push((copy.erase(), EXPORT_RIGHTS));
            exports.push(ep);
        }
        // Imports: a badged SEND copy of the exporter's current endpoint.
        let mut hashes = Vec::new();
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
            grants.push((ep.erase(), Rights::SEND));
            hashes.push(protocol_hash(imp.export.protocol));
        }
        // Resources, exactly as the manifest lists them.
        let mut res_words = Vec::new();
        let nres = spec.resources().count();
        for r in spec.resources() {
            let hw = self
                .hw
                .as_ref()
                .ok_or("it needs hardware and root has no authority")?;
            let (h, w0, w1): (AnyHandle, u64, u64) = match r {
                Resource::IoPorts { base, count } => {
                    let h = hw
                        .ioport_create(base, count)
                        .map_err(err("ioport_create"))?;
                    let w0 = resource_word(ResourceKind::IoPorts, u64::from(base));
                    (h.erase(), w0, u64::from(count))
                }
                Resource::Irq(line) => {
                    let irq = u32::from(line);
                    let h = hw.irq_create(irq).map_err(err("irq_create"))?;
                    (
                        h.erase(),
                        resource_word(ResourceKind::Irq, u64::from(irq)),
                        0,
                    )
                }
                Resource::Mmio { base, size } => {
                    let h = hw
                        .frame_create_physical(base, size, DeviceCache::Uncached)
                        .map_err(err("frame_create_physical"))?;
                    (h.erase(), resource_word(ResourceKind::Mmio, base), size)
                }
            };
            let rights = h.inspect().map_err(err("inspect"))?.rights;
            grants.push((h, rights));
            res_words.push(w0);
            res_words.push(w1);
        }
        // The framebuffer, when the manifest asks and the loader set one up: a write-combining
        // Frame over it as one more resource, its geometry in the words after the resources.
        let mut nres = nres;
        let mut fb_words = Vec::new();
        if spec.framebuffer {
            match self.framebuffer_grant() {
                Ok((h, base, size, geometry)) => {
                    let rights = h.inspect().map_err(err("inspect"))?.rights;
                    grants.push((h.erase(), rights));
                    res_words.push(resource_word(ResourceKind::Framebuffer, base));
                    res_words.push(size);
                    fb_words.extend_from_slice(&geometry.to_words());
                    nres += 1;
                }
                Err(why) => log::info!(
                    "root: `{}` asks for the framebuffer; not granted: {why}",
                    spec.name
                ),
            }
        }
        let to_root = self
            .ep
            .badged(Rights::SEND | Rights::TRANSFER, badge)
            .map_err(err("root endpoint"))?;
        grants.push((to_root.erase(), Rights::SEND));
        words.push(START_MAGIC);
        words.push(i as u64);
        words.push(exports.len() as u64 | (hashes.len() as u64) << 8 | (nres as u64) << 16);
        words.extend_from_slice(&hashes);
        words.extend_from_slice(&res_words);
        words.extend_from_slice(&fb_words);
        debug_assert_eq!(
            words.len(),
            START_HEADER_WORDS + hashes.len() + res_words.len() + fb_words.len()
        );
        if words.len() > CHILD_MAX_WORDS || grants.len() > CHILD_MAX_HANDLES {
            return Err(alloc::format!(
                "it needs {} start words and {} handles; at most {CHILD_MAX_WORDS} and {CHILD_MAX_HANDLES} fit",
                words.len(),
                grants.len()
            ));
        }
        let image = self.srvs[i].image.as_ref().ok_or("no image")?;
        let mut spawn = Spawn::new(image, spec.name).priority(u64::from(spec.priority));
        for &w in &words {
            spawn = spawn.word(w);
        }
        for (h, rights) in &grants {
            spawn = spawn.handle(h, *rights).map_err(err("start handle"))?;
        }
        let child = spawn.start().map_err(err("spawn"))?;
        drop(grants);
        // Root keeps every right but RECV: when the server dies the endpoint's last receiver
        // goes and its clients get PeerDied.
        for ep in &exports {
            ep.restrict(Rights::all().difference(Rights::RECV))
                .map_err(err("restrict export"))?;
        }
        let s = &mut self.srvs[i];
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
        let watched = child
            .process
            .duplicate(Rights::WAIT)
            .map_err(err("watch handle"));
        s.process = Some(child.process);
        let generation = s.generation;
        log::info!(
            "root: started `{}` (priority {}, generation {generation})",
            spec.name,
            spec.priority
        );
        match watched {
            Ok(p) => self.watch(i, generation, spec.ready, p),
            Err(e) => log::error!("root: cannot supervise `{}`: {e}", spec.name),
        }
        Ok(())
    }

    fn watch(&mut self, i: usize, generation: u32, ready: bool, p: Process) {
        let slot = self.next_slot % WATCH_SLOTS.len() as u64;
        self.next_slot += 1;
        let old = WATCH_SLOTS[slot as usize].swap(p.into_raw().raw(), Ordering::AcqRel);
        if old != 0 {
            log::warn!("root: watcher slot {slot} reused before its watcher started");
        }
        let flag = if ready { WATCH_READY } else { 0 };
        let arg = slot | (i as u64) << 8 | flag | u64::from(generation) << 32;
        if let Err(e) = libhsync::process::spawn_thread(watcher, arg, WATCH_PRIORITY) {
            log::error!("root: cannot start a watcher thread: {e:?}");
        }
    }

    /// A watcher's report: words index, generation, status tag, status value, fault record.
    fn on_report(&mut self, req: &mut Message) {
        let mut d = req.decoder();
        let mut next = || d.word().unwrap_or(0);
        let (i, generation, tag, value) = (next() as usize, next() as u32, next(), next());
        let fault = Fault {
            address: next(),
            rip: next(),
            rsp: next(),
            error_code: next(),
            thread_id: next(),
        };
        let Some(spec) = self.server(i) else { return };
        let s = &mut self.srvs[i];
        if s.generation != generation || s.process.is_none() {
            return; // already handled (e.g. by `connect` noticing the death first)
        }
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

/// A watcher thread: waits for one server process to end and reports how to root's main
/// thread; with [`WATCH_READY`], first reports [`TAG_READY_OVERDUE`] if the process is still
/// running after [`READY_TIMEOUT_NS`] (root ignores it once the server is ready).
/// `arg`: slot (bits 0..8), server index (8..31), flag (31), generation (32..64).
fn watcher(arg: u64, mut ipc: IpcBuf) {
    let slot = (arg & 0xff) as usize;
    let id = [(arg >> 8) & 0x7f_ffff, arg >> 32];
    let raw = WATCH_SLOTS[slot].swap(0, Ordering::AcqRel);
    let process: Process = Handle::from_raw(hsync_abi::Handle::from_raw(raw));
    let mut ended = None;
    if arg & WATCH_READY != 0 {
        match process.wait(libhsync::clock().saturating_add(READY_TIMEOUT_NS)) {
            Err(libhsync::Error::TimedOut) => {
                report(&mut ipc, [id[0], id[1], TAG_READY_OVERDUE, 0], None);
            }
            r => ended = Some(r),
        }
    }
    let ended = ended.unwrap_or_else(|| process.wait(DEADLINE_NEVER));
    drop(process);
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
    report(&mut ipc, [id[0], id[1], tag, value], fault);
}

/// Sends one watcher report (blocks until root's main thread receives it).
fn report(ipc: &mut IpcBuf, words: [u64; 4], fault: Option<FaultRecord>) {
    let mut m = Message::new(WATCH_LABEL);
    let f = fault.map_or([0; 5], |f| {
        [f.address, f.rip, f.rsp, f.error_code, f.thread_id]
    });
    let ok = words
        .iter()
        .chain(f.iter())
        .all(|&w| m.push_word(w).is_ok());
    let ep = ManuallyDrop::new(Endpoint::from_raw(hsync_abi::Handle::from_raw(
        WATCH_EP.load(Ordering::Acquire),
    )));
    match m.load(ipc) {
        Ok(msg) if ok => {
            if let Err(e) = ep.send(msg) {
                log::error!("root: watcher cannot report: {e:?}");
            }
        }
        _ => log::error!("root: watcher cannot encode its report"),
    }
}
