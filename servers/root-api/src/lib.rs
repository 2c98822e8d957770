//! The `root` protocol — how servers reach root, the supervisor — and the start layout root
//! gives every server it starts.
//!
//! # Start layout
//!
//! Root starts each manifest server with these start handles, in this order:
//!
//! ```text
//! exports    E endpoints with RECV | SEND | DUPLICATE, one per manifest export, in manifest
//!            order (handle 0 is the first export, as servers/template expects); DUPLICATE lets
//!            the server mint badged SEND copies for its own threads
//! imports    I endpoints with SEND, each badged with the importer's badge (its index + 1)
//! resources  R hardware handles, in manifest order: IoPortRange | IrqLine | Frame (MMIO)
//! root       1 endpoint with SEND to root, badged with the server's badge
//! ```
//!
//! and these start words: `[0]` [`START_MAGIC`], `[1]` the server's index in start order, `[2]`
//! `E | I << 8 | R << 16`, then one word per import ([`protocol_hash`] of its protocol name),
//! then two words per resource ([`ResourceKind`] in the top byte of the first word, the first
//! port / IRQ line / physical base below it; the port count / 0 / size in bytes in the second),
//! then, when a framebuffer is granted (a [`ResourceKind::Framebuffer`] resource: a
//! write-combining Frame over it), its geometry: [`FB_GEOMETRY_WORDS`] words
//! ([`FbGeometry::to_words`]).
//! [`StartLayout`] writes (root, test probes) and decodes these words; [`Start::take`] reads
//! them and the handles. A server should not index start handles itself.
//!
//! # Protocol
//!
//! A server with `ready = true` in the manifest calls [`RootClient::ready`] once it serves;
//! root starts the next server only then. A client whose server died (its calls fail with
//! [`ProtocolError::ServerDied`]) calls [`RootClient::connect`] with the protocol name for a
//! fresh endpoint to the restarted server. The shell uses `status`, `kill` and `restart`;
//! `caps` (a server's handles) and `power` (power-off, reboot) serve any server.
//!
//! # Power policy
//!
//! Only root holds the hardware authority that `system_power` needs, so powering off or
//! rebooting goes through root's `power` op, and root grants it to **any server that holds a
//! `root` endpoint** — every manifest server does. Starting a server is already a trust decision
//! (its manifest entry); a server that could misuse power-off could as well stop serving. If that
//! ever needs narrowing, root checks the caller's badge here, in one place.
#![no_std]
#![forbid(unsafe_code)]

use libhsync::hw::{IoPortRange, IoPorts, IrqLine};
pub use libhsync::protocol::{Bytes, Protocol, ProtocolError};
use libhsync::{AnyHandle, Endpoint, Frame, IpcBuf, StartArgs, kind};

libhsync::wire_enum! {
    /// Why a `root` request failed.
    pub enum RootError {
        /// The caller's manifest entry does not import that protocol (or the caller is not a
        /// manifest server).
        NotImported = 1,
        /// No server has that name or index.
        NoSuchServer = 2,
        /// The server is stopped (restart limit reached, killed, or its image is missing).
        NotRunning = 3,
        /// Root could not do it (out of memory or handles, or the kernel refused); logged.
        Failed = 4,
        /// The caller may not do this (e.g. a server killing root's own bookkeeping).
        Refused = 5,
    }
}

libhsync::protocol! {
    /// The `root` protocol: ready handshake, reconnection, and supervision for the shell.
    pub protocol Root {
        server RootServer;
        client RootClient;
        error RootError;
        /// The caller serves its exports now. Root waits for this from servers with `ready =
        /// true` before starting the next one. Repeated calls are harmless.
        fn ready() = 1;
        /// A fresh `SEND` endpoint (badged with the caller's badge) to the server that exports
        /// `protocol` to the caller — after that server was restarted, say.
        fn connect(protocol: &str) -> Endpoint = 2;
        /// Server number `index` in start order: a [`ServerStatus`] encoded with
        /// [`ServerStatus::encode`]. [`RootError::NoSuchServer`] past the last one.
        fn status(index: u64) -> Bytes = 3;
        /// Kills the server called `name` and leaves it stopped.
        fn kill(name: &str) = 4;
        /// Kills (if running) and starts again the server called `name` (not counted against
        /// its restart limit).
        fn restart(name: &str) = 5;
        /// Powers the machine off ([`POWER_OFF`]) or reboots it ([`POWER_REBOOT`]) — see the
        /// power policy in the crate docs: any server may ask. Does not return on success;
        /// [`RootError::Refused`] for another `op`, [`RootError::Failed`] if the kernel refused.
        fn power(op: u64) = 6;
        /// The handles server number `index` holds: [`CAP_RECORD`]-byte records (decode with
        /// [`decode_caps`]), at most [`MAX_CAPS`] of them, then the total count as a final
        /// 8-byte word. [`RootError::NotRunning`] if it has no process.
        fn caps(index: u64) -> Bytes = 7;
    }
}

pub use libhsync::{POWER_OFF, POWER_REBOOT};

/// Bytes per handle in a `caps` reply: kind (1 byte), 3 zero bytes, rights (`u32` LE), badge
/// (`u64` LE).
pub const CAP_RECORD: usize = 16;
/// Most handles one `caps` reply lists (the rest are only counted).
pub const MAX_CAPS: usize = (Bytes::CAPACITY - 8) / CAP_RECORD;

/// One handle as `caps` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    /// What it names.
    pub kind: libhsync::ObjectKind,
    /// What it allows.
    pub rights: libhsync::Rights,
    /// Its badge, or 0.
    pub badge: u64,
}

/// Encodes a `caps` reply: the first [`MAX_CAPS`] of `caps`, then `total`.
pub fn encode_caps(caps: &[Cap], total: u64) -> Bytes {
    let mut b = Bytes::new();
    for c in caps.iter().take(MAX_CAPS) {
        let mut rec = [0u8; CAP_RECORD];
        rec[0] = c.kind as u8;
        rec[4..8].copy_from_slice(&(c.rights.raw() as u32).to_le_bytes());
        rec[8..16].copy_from_slice(&c.badge.to_le_bytes());
        b.extend(&rec);
    }
    b.extend(&total.to_le_bytes());
    b
}

/// Decodes a `caps` reply: the listed handles and the total count; `None` if malformed.
pub fn decode_caps(bytes: &[u8]) -> Option<(impl Iterator<Item = Cap> + '_, u64)> {
    let split = bytes.len().checked_sub(8)?;
    let (recs, total) = bytes.split_at(split);
    if recs.len() % CAP_RECORD != 0 {
        return None;
    }
    let total = u64::from_le_bytes(total.try_into().ok()?);
    let caps = recs.chunks_exact(CAP_RECORD).map(|r| {
        let rights = u32::from_le_bytes([r[4], r[5], r[6], r[7]]);
        let mut badge = [0u8; 8];
        badge.copy_from_slice(&r[8..16]);
        Cap {
            kind: libhsync::ObjectKind::try_from(u64::from(r[0]))
                .unwrap_or(libhsync::ObjectKind::Process),
            rights: libhsync::Rights::from_raw(u64::from(rights))
                .unwrap_or(libhsync::Rights::empty()),
            badge: u64::from_le_bytes(badge),
        }
    });
    Some((caps, total))
}

/// The caller's error type for every operation.
pub type Error = ProtocolError<RootError>;

/// A server's state as root sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Not started yet (boot has not reached it).
    Pending = 0,
    /// Started; root waits for its ready message.
    Starting = 1,
    /// Running (ready, or started without a ready handshake).
    Running = 2,
    /// Stopped for good: killed, exited, or faulted past its restart limit.
    Stopped = 3,
    /// Never started: its image is missing or an exporter it imports from is not running.
    Missing = 4,
}

impl State {
    /// The state for its wire byte.
    pub fn from_u8(b: u8) -> Option<State> {
        Some(match b {
            0 => State::Pending,
            1 => State::Starting,
            2 => State::Running,
            3 => State::Stopped,
            4 => State::Missing,
            _ => return None,
        })
    }

    /// A short lowercase name (`ps` output).
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Starting => "starting",
            State::Running => "running",
            State::Stopped => "stopped",
            State::Missing => "missing",
        }
    }
}

/// Longest server name in a [`ServerStatus`] (as the manifest allows).
pub const MAX_NAME: usize = 64;

/// One server, as `status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerStatus {
    /// Index in start order.
    pub index: u16,
    /// State.
    pub state: State,
    /// Scheduling priority (0..=31).
    pub priority: u8,
    /// Restarts after faults or exits so far.
    pub restarts: u16,
    /// Faults so far.
    pub faults: u16,
    name: [u8; MAX_NAME],
    name_len: u8,
}

/// Bytes before the name in an encoded [`ServerStatus`].
const STATUS_HEADER: usize = 8;

impl ServerStatus {
    /// A status; `name` is cut to [`MAX_NAME`] bytes (on a character boundary).
    pub fn new(
        index: u16,
        name: &str,
        state: State,
        priority: u8,
        restarts: u16,
        faults: u16,
    ) -> Self {
        let mut cut = name.len().min(MAX_NAME);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut buf = [0u8; MAX_NAME];
        buf[..cut].copy_from_slice(&name.as_bytes()[..cut]);
        ServerStatus {
            index,
            state,
            priority,
            restarts,
            faults,
            name: buf,
            name_len: cut as u8,
        }
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..usize::from(self.name_len)]).unwrap_or("?")
    }

    /// Wire form: index u16, state u8, priority u8, restarts u16, faults u16, then the name.
    pub fn encode(&self) -> Bytes {
        let mut b = Bytes::new();
        b.extend(&self.index.to_le_bytes());
        b.extend(&[self.state as u8, self.priority]);
        b.extend(&self.restarts.to_le_bytes());
        b.extend(&self.faults.to_le_bytes());
        b.extend(&self.name[..usize::from(self.name_len)]);
        b
    }

    /// Reads [`ServerStatus::encode`]'s form; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<ServerStatus> {
        let h = bytes.get(..STATUS_HEADER)?;
        let name = core::str::from_utf8(bytes.get(STATUS_HEADER..)?).ok()?;
        if name.len() > MAX_NAME {
            return None;
        }
        Some(ServerStatus::new(
            u16::from_le_bytes([h[0], h[1]]),
            name,
            State::from_u8(h[2])?,
            h[3],
            u16::from_le_bytes([h[4], h[5]]),
            u16::from_le_bytes([h[6], h[7]]),
        ))
    }
}

/// Start word 0 of a server root started.
pub const START_MAGIC: u64 = u64::from_le_bytes(*b"HSYNCSRV");
/// Words before the import hashes.
pub const START_HEADER_WORDS: usize = 3;

/// What a resource start handle is (top byte of its first start word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ResourceKind {
    /// An `IoPortRange`; the words give first port and count.
    IoPorts = 1,
    /// An `IrqLine`; the first word gives the IRQ.
    Irq = 2,
    /// A device `Frame`; the words give physical base and size.
    Mmio = 3,
    /// The boot framebuffer: a write-combining device `Frame`; the words give physical base
    /// and size; its geometry follows the resource words.
    Framebuffer = 4,
}

/// Start words of the framebuffer geometry (after the resource words).
pub const FB_GEOMETRY_WORDS: usize = 4;

/// The framebuffer's geometry and pixel format, as root passes it in start words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FbGeometry {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub pitch: u32,
    /// Bits per pixel (16, 24 or 32 are drawn).
    pub bpp: u8,
    /// (size, shift) of the red, green and blue masks.
    pub rgb: [(u8, u8); 3],
}

impl FbGeometry {
    /// The start words: width, height, pitch, then `bpp | rs << 8 | rsh << 16 | gs << 24 |
    /// gsh << 32 | bs << 40 | bsh << 48`.
    pub fn to_words(&self) -> [u64; FB_GEOMETRY_WORDS] {
        let mut f = u64::from(self.bpp);
        for (i, (size, shift)) in self.rgb.iter().enumerate() {
            f |= u64::from(*size) << (8 + 16 * i);
            f |= u64::from(*shift) << (16 + 16 * i);
        }
        [
            u64::from(self.width),
            u64::from(self.height),
            u64::from(self.pitch),
            f,
        ]
    }

    /// Decodes [`FbGeometry::to_words`]; `None` when a size does not fit.
    pub fn from_words(w: &[u64; FB_GEOMETRY_WORDS]) -> Option<FbGeometry> {
        let f = w[3];
        let byte = |at: u32| (f >> at) as u8;
        Some(FbGeometry {
            width: u32::try_from(w[0]).ok()?,
            height: u32::try_from(w[1]).ok()?,
            pitch: u32::try_from(w[2]).ok()?,
            bpp: byte(0),
            rgb: [
                (byte(8), byte(16)),
                (byte(24), byte(32)),
                (byte(40), byte(48)),
            ],
        })
    }
}

/// FNV-1a (64-bit) of a protocol name: how start words name imports.
pub const fn protocol_hash(name: &str) -> u64 {
    let b = name.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// Packs the first word of a resource: kind in the top byte, `a` (< 2^56) below.
pub const fn resource_word(kind: ResourceKind, a: u64) -> u64 {
    ((kind as u64) << 56) | (a & ((1 << 56) - 1))
}

/// Most start handles a server has (libhsync's limit).
pub const MAX_START_HANDLES: usize = libhsync::process::CHILD_MAX_HANDLES;

/// A resource root granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// What it is.
    pub kind: ResourceKind,
    /// First port, IRQ line, or physical base.
    pub a: u64,
    /// Port count, 0, or size in bytes.
    pub b: u64,
}

/// Most imports, resources and exports a start layout holds (each is a start handle).
const LAYOUT_CAP: usize = MAX_START_HANDLES;

/// A server's start words, as root writes them and [`Start::take`] reads them (see the crate
/// docs for the layout): built with [`StartLayout::new`] and its adders, in the same order as
/// the start handles are passed (exports, imports, resources with the framebuffer last, root);
/// encoded with [`StartLayout::words`]; decoded with [`StartLayout::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartLayout {
    index: u64,
    exports: usize,
    imports: usize,
    import_hashes: [u64; LAYOUT_CAP],
    resources: usize,
    resource_words: [(u64, u64); LAYOUT_CAP],
    framebuffer: Option<FbGeometry>,
    overflow: bool,
}

/// Encoded start words ([`StartLayout::words`]).
#[derive(Clone, Copy, Debug)]
pub struct StartWords {
    words: [u64; libhsync::process::CHILD_MAX_WORDS],
    len: usize,
}

impl StartWords {
    /// The words, in start order.
    pub fn as_slice(&self) -> &[u64] {
        &self.words[..self.len]
    }
}

impl StartLayout {
    /// The layout of the server with start index `index` (its badge is `index + 1`), with
    /// nothing granted yet.
    pub const fn new(index: u64) -> StartLayout {
        StartLayout {
            index,
            exports: 0,
            imports: 0,
            import_hashes: [0; LAYOUT_CAP],
            resources: 0,
            resource_words: [(0, 0); LAYOUT_CAP],
            framebuffer: None,
            overflow: false,
        }
    }

    /// One more export endpoint.
    pub fn export(&mut self) -> &mut Self {
        self.exports += 1;
        self.overflow |= self.exports > LAYOUT_CAP;
        self
    }

    /// One more import, of the protocol called `protocol`.
    pub fn import(&mut self, protocol: &str) -> &mut Self {
        self.import_hash(protocol_hash(protocol))
    }

    /// One more import, by its [`protocol_hash`].
    pub fn import_hash(&mut self, hash: u64) -> &mut Self {
        match self.import_hashes.get_mut(self.imports) {
            Some(slot) => *slot = hash,
            None => self.overflow = true,
        }
        self.imports += 1;
        self
    }

    /// One more resource: `kind`, its first word's value `a` (first port, IRQ line or physical
    /// base, below 2^56) and `b` (port count, 0, or size in bytes). A
    /// [`ResourceKind::Framebuffer`] is added with [`StartLayout::framebuffer`] instead.
    pub fn resource(&mut self, kind: ResourceKind, a: u64, b: u64) -> &mut Self {
        match self.resource_words.get_mut(self.resources) {
            Some(slot) => *slot = (resource_word(kind, a), b),
            None => self.overflow = true,
        }
        self.resources += 1;
        self
    }

    /// The framebuffer as the last resource (physical `base`, `size` in bytes) and its
    /// geometry after the resource words.
    pub fn framebuffer(&mut self, base: u64, size: u64, geometry: FbGeometry) -> &mut Self {
        self.overflow |= self.framebuffer.is_some();
        self.framebuffer = Some(geometry);
        self.resource(ResourceKind::Framebuffer, base, size)
    }

    /// Number of start words the layout takes.
    pub fn word_count(&self) -> usize {
        START_HEADER_WORDS
            + self.imports
            + 2 * self.resources
            + self.framebuffer.map_or(0, |_| FB_GEOMETRY_WORDS)
    }

    /// Number of start handles it describes (exports, imports, resources, root).
    pub fn handle_count(&self) -> usize {
        self.exports + self.imports + self.resources + 1
    }

    /// The start words; `None` when they or the handles do not fit what a process receives
    /// (`CHILD_MAX_WORDS`, `CHILD_MAX_HANDLES`).
    pub fn words(&self) -> Option<StartWords> {
        if self.overflow
            || self.word_count() > libhsync::process::CHILD_MAX_WORDS
            || self.handle_count() > MAX_START_HANDLES
        {
            return None;
        }
        let mut out = StartWords {
            words: [0; libhsync::process::CHILD_MAX_WORDS],
            len: 0,
        };
        let counts =
            self.exports as u64 | (self.imports as u64) << 8 | (self.resources as u64) << 16;
        let resources = self.resource_words[..self.resources]
            .iter()
            .flat_map(|&(a, b)| [a, b]);
        let geometry = self.framebuffer.map(|g| g.to_words());
        let all = [START_MAGIC, self.index, counts]
            .into_iter()
            .chain(self.import_hashes[..self.imports].iter().copied())
            .chain(resources)
            .chain(geometry.into_iter().flatten());
        for (slot, w) in out.words.iter_mut().zip(all) {
            *slot = w;
            out.len += 1;
        }
        Some(out)
    }

    /// Reads start words written by [`StartLayout::words`]; `None` when they are not a start
    /// layout (no [`START_MAGIC`], counts that do not fit the words or the limits, an unknown
    /// resource kind, a framebuffer without its geometry).
    pub fn decode(words: &[u64]) -> Option<StartLayout> {
        let (&[magic, index, counts], rest) = words.split_first_chunk::<START_HEADER_WORDS>()?;
        if magic != START_MAGIC {
            return None;
        }
        let mut l = StartLayout::new(index);
        l.exports = (counts & 0xff) as usize;
        let imports = ((counts >> 8) & 0xff) as usize;
        let resources = ((counts >> 16) & 0xff) as usize;
        if l.exports > LAYOUT_CAP || imports > LAYOUT_CAP || resources > LAYOUT_CAP {
            return None;
        }
        let hashes = rest.get(..imports)?;
        l.import_hashes[..imports].copy_from_slice(hashes);
        l.imports = imports;
        let res = rest.get(imports..imports + 2 * resources)?;
        for (i, pair) in res.chunks_exact(2).enumerate() {
            l.resource_words[i] = (pair[0], pair[1]);
            l.resources += 1;
            let kind = l.resource_info(i)?.kind;
            if kind == ResourceKind::Framebuffer {
                let at = imports + 2 * resources;
                let w: &[u64; FB_GEOMETRY_WORDS] =
                    rest.get(at..at + FB_GEOMETRY_WORDS)?.try_into().ok()?;
                l.framebuffer = Some(FbGeometry::from_words(w)?);
            }
        }
        Some(l)
    }

    /// The server's index in start order.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Number of exports.
    pub fn exports(&self) -> usize {
        self.exports
    }

    /// The imports' protocol hashes, in start-handle order.
    pub fn imports(&self) -> &[u64] {
        &self.import_hashes[..self.imports.min(LAYOUT_CAP)]
    }

    /// Number of resources (the framebuffer included).
    pub fn resources(&self) -> usize {
        self.resources
    }

    /// What resource `i` is.
    pub fn resource_info(&self, i: usize) -> Option<ResourceInfo> {
        let &(w, b) = self.resource_words[..self.resources.min(LAYOUT_CAP)].get(i)?;
        let kind = match w >> 56 {
            1 => ResourceKind::IoPorts,
            2 => ResourceKind::Irq,
            3 => ResourceKind::Mmio,
            4 => ResourceKind::Framebuffer,
            _ => return None,
        };
        Some(ResourceInfo {
            kind,
            a: w & ((1 << 56) - 1),
            b,
        })
    }

    /// The framebuffer's geometry, when one is granted.
    pub fn framebuffer_geometry(&self) -> Option<FbGeometry> {
        self.framebuffer
    }
}

/// Everything root gave a server at start, taken out of its [`StartArgs`] (so `args.ipc` stays
/// free for serving). Each handle can be taken once.
pub struct Start {
    /// The server's index in start order (its badge is `index + 1`).
    pub index: u64,
    layout: StartLayout,
    handles: [Option<AnyHandle>; MAX_START_HANDLES],
}

impl Start {
    /// Reads the start layout; `None` when the process was not started by root with it (or
    /// the counts do not fit what was granted).
    pub fn take(args: &mut StartArgs) -> Option<Start> {
        let mut words = [0u64; libhsync::process::CHILD_MAX_WORDS];
        let n = args.words().min(words.len());
        for (i, w) in words.iter_mut().enumerate().take(n) {
            *w = args.word(i)?;
        }
        let layout = StartLayout::decode(&words[..n])?;
        let nhandles = layout.handle_count();
        if nhandles > args.handles() {
            return None;
        }
        let mut handles: [Option<AnyHandle>; MAX_START_HANDLES] = Default::default();
        for (i, h) in handles.iter_mut().enumerate().take(nhandles) {
            *h = args.take_handle::<kind::Any>(i);
        }
        Some(Start {
            index: layout.index(),
            layout,
            handles,
        })
    }

    /// The layout the start words describe.
    pub fn layout(&self) -> &StartLayout {
        &self.layout
    }

    /// The server's badge as its clients' servers see it.
    pub fn badge(&self) -> u64 {
        self.index + 1
    }

    fn take_at<K: kind::Kind>(&mut self, i: usize) -> Option<libhsync::Handle<K>> {
        self.handles
            .get_mut(i)?
            .take()
            .map(|h| h.retype_unchecked())
    }

    /// Export number `i` (manifest order): the endpoint to serve (`RECV | SEND | DUPLICATE`).
    pub fn export(&mut self, i: usize) -> Option<Endpoint> {
        if i >= self.layout.exports() {
            return None;
        }
        self.take_at(i)
    }

    /// The endpoint for the imported `protocol` (badged `SEND`), once.
    pub fn import(&mut self, protocol: &str) -> Option<Endpoint> {
        let hash = protocol_hash(protocol);
        let i = self.layout.imports().iter().position(|&h| h == hash)?;
        self.take_at(self.layout.exports() + i)
    }

    /// Number of resources granted.
    pub fn resources(&self) -> usize {
        self.layout.resources()
    }

    /// What resource `i` is.
    pub fn resource_info(&self, i: usize) -> Option<ResourceInfo> {
        self.layout.resource_info(i)
    }

    /// Start-handle index of resource `i`.
    fn resource_slot(&self, i: usize) -> usize {
        self.layout.exports() + self.layout.imports().len() + i
    }

    fn resource_handle<K: kind::Kind>(
        &mut self,
        i: usize,
        want: ResourceKind,
    ) -> Option<(libhsync::Handle<K>, ResourceInfo)> {
        let info = self.resource_info(i).filter(|r| r.kind == want)?;
        let h = self.take_at(self.resource_slot(i))?;
        Some((h, info))
    }

    /// The `n`-th I/O port range granted (counting only port ranges), with its first port and
    /// count.
    pub fn io_port_range(&mut self, n: usize) -> Option<(IoPortRange, u16, u32)> {
        let i = self.nth(ResourceKind::IoPorts, n)?;
        let (h, r) = self.resource_handle(i, ResourceKind::IoPorts)?;
        Some((h, u16::try_from(r.a).ok()?, u32::try_from(r.b).ok()?))
    }

    /// The `n`-th I/O port range, enabled for this process ([`IoPorts::enable`]).
    pub fn io_ports(&mut self, n: usize) -> Option<Result<IoPorts, libhsync::Error>> {
        let (range, base, count) = self.io_port_range(n)?;
        Some(IoPorts::enable(range, base, count))
    }

    /// The `n`-th IRQ line granted, with its IRQ number.
    pub fn irq(&mut self, n: usize) -> Option<(IrqLine, u64)> {
        let i = self.nth(ResourceKind::Irq, n)?;
        let (h, r) = self.resource_handle(i, ResourceKind::Irq)?;
        Some((h, r.a))
    }

    /// The `n`-th MMIO frame granted, with its physical base and size.
    pub fn mmio(&mut self, n: usize) -> Option<(Frame, u64, u64)> {
        let i = self.nth(ResourceKind::Mmio, n)?;
        let (h, r) = self.resource_handle(i, ResourceKind::Mmio)?;
        Some((h, r.a, r.b))
    }

    /// The framebuffer, when root granted one: a write-combining Frame over it, its physical
    /// base and size, and its geometry.
    pub fn framebuffer(&mut self) -> Option<(Frame, u64, u64, FbGeometry)> {
        let i = self.nth(ResourceKind::Framebuffer, 0)?;
        let geometry = self.layout.framebuffer_geometry()?;
        let (h, r) = self.resource_handle(i, ResourceKind::Framebuffer)?;
        Some((h, r.a, r.b, geometry))
    }

    fn nth(&self, kind: ResourceKind, n: usize) -> Option<usize> {
        (0..self.resources())
            .filter(|&i| self.resource_info(i).is_some_and(|r| r.kind == kind))
            .nth(n)
    }

    /// A client for root (badged with this server's badge), once.
    pub fn root(&mut self) -> Option<RootClient> {
        let i = self.resource_slot(self.resources());
        self.take_at::<kind::Endpoint>(i).map(RootClient::new)
    }
}

/// Reports ready to root (the handshake), logging — not panicking — when it fails.
pub fn report_ready(root: &RootClient, ipc: &mut IpcBuf) -> bool {
    match root.ready(ipc) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("ready handshake with root failed: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fb_geometry_round_trip() {
        let g = FbGeometry {
            width: 1024,
            height: 768,
            pitch: 4096,
            bpp: 32,
            rgb: [(8, 16), (8, 8), (8, 0)],
        };
        assert_eq!(FbGeometry::from_words(&g.to_words()), Some(g));
    }

    #[test]
    fn caps_round_trip() {
        use libhsync::{ObjectKind, Rights};
        let caps = [
            Cap {
                kind: ObjectKind::Endpoint,
                rights: Rights::SEND | Rights::TRANSFER,
                badge: 3,
            },
            Cap {
                kind: ObjectKind::IoPortRange,
                rights: Rights::MANAGE,
                badge: 0,
            },
        ];
        let b = encode_caps(&caps, 5);
        let (got, total) = decode_caps(b.as_slice()).unwrap();
        assert!(got.eq(caps.iter().copied()));
        assert_eq!(total, 5);
        assert!(decode_caps(&[1, 2, 3]).is_none());
        let many = [caps[0]; 40];
        let enc = encode_caps(&many, 40);
        let (got, total) = decode_caps(enc.as_slice()).unwrap();
        assert_eq!((got.count(), total), (MAX_CAPS, 40));
    }

    #[test]
    fn labels_are_stable() {
        assert_eq!(Root::NAME, "Root");
        assert_eq!(
            Root::OPS,
            &[
                ("ready", 1),
                ("connect", 2),
                ("status", 3),
                ("kill", 4),
                ("restart", 5),
                ("power", 6),
                ("caps", 7)
            ]
        );
    }

    #[test]
    fn status_round_trips_and_rejects_garbage() {
        let s = ServerStatus::new(3, "serial", State::Running, 24, 2, 1);
        let b = s.encode();
        assert_eq!(ServerStatus::decode(b.as_slice()), Some(s));
        assert_eq!(ServerStatus::decode(&[]), None);
        assert_eq!(ServerStatus::decode(&[0, 0, 9, 0, 0, 0, 0, 0]), None); // bad state
        assert_eq!(ServerStatus::decode(&[0, 0, 2, 0, 0, 0, 0, 0, 0xff]), None); // bad UTF-8
        let long = [b'a'; 100];
        let mut enc = [0u8; 108];
        enc[2] = 2;
        enc[8..].copy_from_slice(&long);
        assert_eq!(ServerStatus::decode(&enc), None);
        assert_eq!(
            ServerStatus::new(
                0,
                core::str::from_utf8(&long).unwrap(),
                State::Stopped,
                0,
                0,
                0
            )
            .name()
            .len(),
            MAX_NAME
        );
    }

    #[test]
    fn start_layout_round_trips_every_field() {
        let geometry = FbGeometry {
            width: 800,
            height: 600,
            pitch: 3200,
            bpp: 32,
            rgb: [(8, 16), (8, 8), (8, 0)],
        };
        let mut l = StartLayout::new(4);
        l.export()
            .export()
            .import("serial")
            .import("vga")
            .resource(ResourceKind::IoPorts, 0x3F8, 8)
            .resource(ResourceKind::Irq, 4, 0)
            .resource(ResourceKind::Mmio, 0xB8000, 0x8000)
            .framebuffer(0xFD00_0000, 0x1D_5000, geometry);
        let words = l.words().unwrap();
        assert_eq!(words.as_slice().len(), l.word_count());
        assert_eq!(words.as_slice().len(), 3 + 2 + 2 * 4 + FB_GEOMETRY_WORDS);
        assert_eq!(words.as_slice()[0], START_MAGIC);
        let d = StartLayout::decode(words.as_slice()).unwrap();
        assert_eq!(d, l);
        assert_eq!(d.index(), 4);
        assert_eq!(d.exports(), 2);
        assert_eq!(
            d.imports(),
            &[protocol_hash("serial"), protocol_hash("vga")]
        );
        assert_eq!(d.resources(), 4);
        let info = |kind, a, b| Some(ResourceInfo { kind, a, b });
        assert_eq!(d.resource_info(0), info(ResourceKind::IoPorts, 0x3F8, 8));
        assert_eq!(d.resource_info(1), info(ResourceKind::Irq, 4, 0));
        assert_eq!(
            d.resource_info(2),
            info(ResourceKind::Mmio, 0xB8000, 0x8000)
        );
        assert_eq!(
            d.resource_info(3),
            info(ResourceKind::Framebuffer, 0xFD00_0000, 0x1D_5000)
        );
        assert_eq!(d.resource_info(4), None);
        assert_eq!(d.framebuffer_geometry(), Some(geometry));
        assert_eq!(d.handle_count(), 2 + 2 + 4 + 1);
        // The minimal layout (a server with nothing granted) round-trips too.
        let empty = StartLayout::new(0);
        assert_eq!(
            StartLayout::decode(empty.words().unwrap().as_slice()),
            Some(empty)
        );
    }

    #[test]
    fn start_layout_rejects_what_is_not_one() {
        let mut l = StartLayout::new(1);
        l.import("serial").resource(ResourceKind::Irq, 1, 0);
        let w = l.words().unwrap();
        let w = w.as_slice();
        assert_eq!(StartLayout::decode(&w[..w.len() - 1]), None); // truncated
        let mut bad = [0u64; 8];
        bad[..w.len()].copy_from_slice(w);
        bad[0] ^= 1;
        assert_eq!(StartLayout::decode(&bad[..w.len()]), None); // no magic
        bad[0] ^= 1;
        bad[4] = 9 << 56;
        assert_eq!(StartLayout::decode(&bad[..w.len()]), None); // unknown kind
        // A framebuffer without its geometry words.
        let mut f = StartLayout::new(0);
        f.framebuffer(0, 4096, FbGeometry::default());
        let fw = f.words().unwrap();
        assert_eq!(StartLayout::decode(&fw.as_slice()[..5]), None);
        // More than a process receives.
        let mut big = StartLayout::new(0);
        for _ in 0..MAX_START_HANDLES {
            big.export();
        }
        assert!(big.words().is_none(), "{} handles", big.handle_count());
    }

    #[test]
    fn hashes_and_resource_words() {
        assert_ne!(protocol_hash("serial"), protocol_hash("vga"));
        assert_eq!(protocol_hash(""), 0xcbf2_9ce4_8422_2325);
        let w = resource_word(ResourceKind::Mmio, 0xB8000);
        assert_eq!(w >> 56, 3);
        assert_eq!(w & ((1 << 56) - 1), 0xB8000);
    }
}
