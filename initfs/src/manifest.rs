//! The compiled system manifest: the compact, validated table root reads from the initfs file
//! `manifest`.
//!
//! `initfs/system.toml` is the human-written source; `cargo xtask` validates it and compiles it
//! into this format with [`compile`] (host only, feature `std`). Root reads it with
//! [`Manifest::parse`], which is `no_std`, allocation-free and checks *everything* before handing
//! out a single record: a corrupt or hostile table yields a [`ManifestError`], never a panic or an
//! out-of-bounds read. Nothing parses TOML at run time.
//!
//! # What a valid table guarantees root
//!
//! - Servers appear in **start order**: every import names a server with a smaller index, so
//!   starting servers in table order (waiting for each one's `ready` when it asks for the
//!   handshake) starts every exporter before its importers.
//! - Server names are unique; every string is a valid name (`[a-z][a-z0-9-]*`, at most
//!   [`MAX_NAME_LEN`] bytes).
//! - No two servers claim one IRQ, an overlapping I/O port range, an overlapping MMIO range, or
//!   the framebuffer; MMIO ranges are page-aligned and non-empty; port ranges fit in 0..=0xFFFF.
//! - Every import resolves to one export of an earlier server; importers never have a higher
//!   priority than the server they import from (no priority inversion); a server's badge for a
//!   client is `client index + 1`, so badge 0 never names a manifest server.
//!
//! # Layout (all integers little-endian)
//!
//! ```text
//! offset 0   header (32 bytes)
//!            magic          [u8; 8] = b"HSYNCMAN"
//!            version        u32     = 1
//!            total_len      u32     length of the whole table in bytes
//!            server_count   u16     1..=MAX_SERVERS
//!            resource_count u16     ..=MAX_RECORDS
//!            export_count   u16     ..=MAX_RECORDS
//!            import_count   u16     ..=MAX_RECORDS
//!            strings_len    u32     size of the string pool
//!            reserved       u32     = 0
//! offset 32  servers:   server_count   records of 32 bytes (start order)
//!            name       str      (u16 offset into the pool, u16 length)
//!            binary     str      initfs file holding the server's ELF
//!            priority   u8       0 (lowest) ..= 31 (highest)
//!            restart    u8       0 never, 1 on-fault, 2 always
//!            limit      u16      most restarts (0 with `never`, 1.. otherwise)
//!            flags      u32      bit 0 READY (wait for the ready handshake), bit 1 FRAMEBUFFER
//!            resources  u16, u16 first index, count in the resource table
//!            exports    u16, u16 first index, count in the export table
//!            imports    u16, u16 first index, count in the import table
//!            reserved   u32      = 0
//! then       resources: resource_count records of 24 bytes
//!            kind       u8       1 I/O ports, 2 IRQ, 3 MMIO
//!            reserved   [u8; 7]  = 0
//!            a          u64      first port | IRQ line | physical base
//!            b          u64      port count | 0        | size in bytes
//! then       exports:   export_count records of 8 bytes
//!            protocol   str
//!            reserved   u32      = 0
//! then       imports:   import_count records of 16 bytes
//!            server     u16      index of the exporting server (smaller than the importer's)
//!            export     u16      index into the export table (one of that server's exports)
//!            badge      u32      importer index + 1
//!            reserved   u64      = 0
//! then       the string pool: strings_len bytes of UTF-8 names, referenced by (offset, length)
//! ```
//!
//! Each server's resources, exports and imports are contiguous, and the servers' ranges tile
//! their tables in order, so every record belongs to exactly one server.

/// The eight bytes every compiled manifest starts with.
pub const MAGIC: [u8; 8] = *b"HSYNCMAN";
/// The format version this module reads and writes.
pub const VERSION: u32 = 1;
/// The initfs file name of the compiled manifest.
pub const FILE_NAME: &str = "manifest";
/// Size of the fixed header.
pub const HEADER_LEN: usize = 32;
/// Size of one server record.
pub const SERVER_LEN: usize = 32;
/// Size of one resource record.
pub const RESOURCE_LEN: usize = 24;
/// Size of one export record.
pub const EXPORT_LEN: usize = 8;
/// Size of one import record.
pub const IMPORT_LEN: usize = 16;
/// Most servers in one manifest.
pub const MAX_SERVERS: usize = 64;
/// Most resource, export or import records (each table separately).
pub const MAX_RECORDS: usize = 256;
/// Longest server, binary or protocol name.
pub const MAX_NAME_LEN: usize = 64;
/// Number of priorities; 0 is the lowest (as in the kernel ABI).
pub const PRIORITY_LEVELS: u8 = 32;
/// One past the highest I/O port.
pub const PORT_LIMIT: u64 = 0x1_0000;
/// Page size: MMIO ranges are aligned to it and sized in multiples of it.
pub const PAGE_SIZE: u64 = 4096;

/// Server flag: root waits for the server's ready message before starting later servers.
pub const FLAG_READY: u32 = 1 << 0;
/// Server flag: root grants the boot framebuffer (when the loader provided one).
pub const FLAG_FRAMEBUFFER: u32 = 1 << 1;
const KNOWN_FLAGS: u32 = FLAG_READY | FLAG_FRAMEBUFFER;

const KIND_IO_PORTS: u8 = 1;
const KIND_IRQ: u8 = 2;
const KIND_MMIO: u8 = 3;

/// Which table a [`ManifestError`] refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// The server records.
    Servers,
    /// The resource records.
    Resources,
    /// The export records.
    Exports,
    /// The import records.
    Imports,
}

/// Why a compiled manifest was rejected. Indices are record indices within their table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestError {
    /// Shorter than its header, its tables, or the length its header claims.
    Truncated,
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// A version this reader does not know.
    UnsupportedVersion(u32),
    /// No servers, or more records in a table than the format allows.
    BadCount(Table),
    /// A reserved field is not zero, or an unknown flag bit is set.
    Reserved(Table, usize),
    /// A string reference points outside the pool or is not a valid name.
    BadString(Table, usize),
    /// Server `index` has a priority of [`PRIORITY_LEVELS`] or more.
    BadPriority(usize),
    /// Server `index` has an unknown restart policy or a limit that does not fit it.
    BadRestart(usize),
    /// Server `index`'s record ranges do not tile the tables in order.
    BadRange(usize),
    /// Resource `index` has an unknown kind or an impossible range.
    BadResource(usize),
    /// Server `index` repeats an earlier server's name.
    DuplicateServer(usize),
    /// Server `index` claims an IRQ, port, MMIO range or framebuffer an earlier server claims.
    Conflict(usize),
    /// Import `index` names a later server, itself, or an export of another server.
    BadImport(usize),
    /// Import `index` calls a server of lower priority than the importer.
    PriorityInversion(usize),
}

impl core::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => write!(f, "manifest is truncated"),
            Self::BadMagic => write!(f, "not a compiled manifest (bad magic)"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported manifest version {v}"),
            Self::BadCount(t) => write!(f, "manifest {t:?} count out of range"),
            Self::Reserved(t, i) => write!(f, "manifest {t:?} record {i}: reserved bits set"),
            Self::BadString(t, i) => write!(f, "manifest {t:?} record {i}: invalid name"),
            Self::BadPriority(i) => write!(f, "manifest server {i}: priority out of range"),
            Self::BadRestart(i) => write!(f, "manifest server {i}: invalid restart policy"),
            Self::BadRange(i) => write!(f, "manifest server {i}: record ranges out of order"),
            Self::BadResource(i) => write!(f, "manifest resource {i}: invalid"),
            Self::DuplicateServer(i) => write!(f, "manifest server {i}: duplicate name"),
            Self::Conflict(i) => write!(f, "manifest server {i}: resource claimed twice"),
            Self::BadImport(i) => write!(f, "manifest import {i}: unresolvable"),
            Self::PriorityInversion(i) => write!(f, "manifest import {i}: priority inversion"),
        }
    }
}

/// What root does when a server stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Leave it stopped.
    Never,
    /// Restart it after a fault (not after a clean exit), at most `limit` times.
    OnFault {
        /// Most restarts over the system's lifetime (at least 1).
        limit: u16,
    },
    /// Restart it whenever it stops, at most `limit` times.
    Always {
        /// Most restarts over the system's lifetime (at least 1).
        limit: u16,
    },
}

impl Restart {
    #[cfg(feature = "std")]
    fn encode(self) -> (u8, u16) {
        match self {
            Restart::Never => (0, 0),
            Restart::OnFault { limit } => (1, limit),
            Restart::Always { limit } => (2, limit),
        }
    }

    fn decode(kind: u8, limit: u16) -> Option<Self> {
        match (kind, limit) {
            (0, 0) => Some(Restart::Never),
            (1, 1..) => Some(Restart::OnFault { limit }),
            (2, 1..) => Some(Restart::Always { limit }),
            _ => None,
        }
    }
}

/// A hardware capability a server is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// I/O ports `base .. base + count`.
    IoPorts {
        /// First port.
        base: u16,
        /// Number of ports (1..=0x10000 - base).
        count: u32,
    },
    /// One interrupt line (ISA IRQ number; the kernel applies the MADT overrides).
    Irq(u8),
    /// Physical MMIO range `base .. base + size`, page-aligned.
    Mmio {
        /// Physical base address.
        base: u64,
        /// Size in bytes (a non-zero multiple of [`PAGE_SIZE`]).
        size: u64,
    },
}

impl Resource {
    #[cfg(feature = "std")]
    fn encode(self) -> (u8, u64, u64) {
        match self {
            Resource::IoPorts { base, count } => (KIND_IO_PORTS, base.into(), count.into()),
            Resource::Irq(line) => (KIND_IRQ, line.into(), 0),
            Resource::Mmio { base, size } => (KIND_MMIO, base, size),
        }
    }

    fn decode(kind: u8, a: u64, b: u64) -> Option<Self> {
        match kind {
            KIND_IO_PORTS => {
                let base = u16::try_from(a).ok()?;
                let count = u32::try_from(b).ok()?;
                (count > 0 && a + b <= PORT_LIMIT).then_some(Resource::IoPorts { base, count })
            }
            KIND_IRQ => Some(Resource::Irq(u8::try_from(a).ok()?)).filter(|_| b == 0),
            KIND_MMIO => {
                let ok = b > 0
                    && a.is_multiple_of(PAGE_SIZE)
                    && b.is_multiple_of(PAGE_SIZE)
                    && a.checked_add(b).is_some();
                ok.then_some(Resource::Mmio { base: a, size: b })
            }
            _ => None,
        }
    }

    /// True when `self` and `other` claim a common port, line or byte.
    pub fn overlaps(&self, other: &Resource) -> bool {
        match (*self, *other) {
            (Resource::IoPorts { base: a, count: n }, Resource::IoPorts { base: b, count: m }) => {
                let (a, b) = (u64::from(a), u64::from(b));
                a < b + u64::from(m) && b < a + u64::from(n)
            }
            (Resource::Irq(a), Resource::Irq(b)) => a == b,
            (Resource::Mmio { base: a, size: n }, Resource::Mmio { base: b, size: m }) => {
                // Sums cannot overflow: `decode` and the writer reject ranges that wrap.
                a < b.saturating_add(m) && b < a.saturating_add(n)
            }
            _ => false,
        }
    }
}

/// A validated compiled manifest, borrowed from its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Manifest<'a> {
    bytes: &'a [u8],
    servers: usize,
    resources: usize,
    exports: usize,
    imports: usize,
}

/// One server of a [`Manifest`].
#[derive(Clone, Copy, Debug)]
pub struct Server<'a> {
    manifest: Manifest<'a>,
    /// Position in start order (and the table index imports refer to).
    pub index: usize,
    /// Unique server name.
    pub name: &'a str,
    /// The initfs file holding its ELF image.
    pub binary: &'a str,
    /// Scheduling priority, 0 (lowest) ..= 31.
    pub priority: u8,
    /// What root does when it stops.
    pub restart: Restart,
    /// Root waits for its ready message before starting the next server.
    pub ready: bool,
    /// Root grants it the boot framebuffer, when there is one.
    pub framebuffer: bool,
    resources: (usize, usize),
    exports: (usize, usize),
    imports: (usize, usize),
}

/// A protocol a server serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Export<'a> {
    /// Index in the export table (imports refer to it).
    pub index: usize,
    /// Index of the server that serves it.
    pub server: usize,
    /// Protocol name.
    pub protocol: &'a str,
}

/// A connection from an importing server to an earlier server's export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Import<'a> {
    /// Index of the importing server.
    pub client: usize,
    /// Index of the exporting server (always smaller than `client`).
    pub server: usize,
    /// The export it connects to.
    pub export: Export<'a>,
    /// The badge root gives the client's endpoint (`client + 1`).
    pub badge: u32,
}

impl<'a> Manifest<'a> {
    /// Validates `bytes` completely and returns a view of it. Bytes after `total_len` are ignored.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ManifestError> {
        let header = bytes.get(..HEADER_LEN).ok_or(ManifestError::Truncated)?;
        if header[..8] != MAGIC {
            return Err(ManifestError::BadMagic);
        }
        let version = le32(header, 8);
        if version != VERSION {
            return Err(ManifestError::UnsupportedVersion(version));
        }
        let total = le32(header, 12) as usize;
        let bytes = bytes.get(..total).ok_or(ManifestError::Truncated)?;
        let servers = usize::from(le16(header, 16));
        let resources = usize::from(le16(header, 18));
        let exports = usize::from(le16(header, 20));
        let imports = usize::from(le16(header, 22));
        let strings = le32(header, 24) as usize;
        if le32(header, 28) != 0 {
            return Err(ManifestError::Reserved(Table::Servers, 0));
        }
        for (count, max, table) in [
            (servers, MAX_SERVERS, Table::Servers),
            (resources, MAX_RECORDS, Table::Resources),
            (exports, MAX_RECORDS, Table::Exports),
            (imports, MAX_RECORDS, Table::Imports),
        ] {
            if count > max || (table == Table::Servers && count == 0) {
                return Err(ManifestError::BadCount(table));
            }
        }
        let m = Manifest {
            bytes,
            servers,
            resources,
            exports,
            imports,
        };
        // Counts are bounded above, so these sums cannot overflow.
        if m.strings_off() + strings != total {
            return Err(ManifestError::Truncated);
        }
        m.validate()?;
        Ok(m)
    }

    /// Number of servers (at least one).
    pub fn len(&self) -> usize {
        self.servers
    }

    /// Always false: a valid manifest has at least one server.
    pub fn is_empty(&self) -> bool {
        self.servers == 0
    }

    /// The servers in start order.
    pub fn servers(&self) -> impl Iterator<Item = Server<'a>> + use<'a> {
        let m = *self;
        // `parse` validated every record, so `server_at` cannot fail here.
        (0..self.servers).filter_map(move |i| m.server_at(i).ok())
    }

    /// Server number `index` (start order).
    pub fn server(&self, index: usize) -> Option<Server<'a>> {
        self.server_at(index).ok()
    }

    /// The server called `name`.
    pub fn find(&self, name: &str) -> Option<Server<'a>> {
        self.servers().find(|s| s.name == name)
    }

    /// Every import in the manifest, grouped by importer in start order.
    pub fn imports(&self) -> impl Iterator<Item = Import<'a>> + use<'a> {
        self.servers().flat_map(|s| s.imports())
    }

    fn servers_off(&self) -> usize {
        HEADER_LEN
    }
    fn resources_off(&self) -> usize {
        self.servers_off() + self.servers * SERVER_LEN
    }
    fn exports_off(&self) -> usize {
        self.resources_off() + self.resources * RESOURCE_LEN
    }
    fn imports_off(&self) -> usize {
        self.exports_off() + self.exports * EXPORT_LEN
    }
    fn strings_off(&self) -> usize {
        self.imports_off() + self.imports * IMPORT_LEN
    }

    fn record(&self, table: Table, index: usize) -> Result<&'a [u8], ManifestError> {
        let (off, len, count) = match table {
            Table::Servers => (self.servers_off(), SERVER_LEN, self.servers),
            Table::Resources => (self.resources_off(), RESOURCE_LEN, self.resources),
            Table::Exports => (self.exports_off(), EXPORT_LEN, self.exports),
            Table::Imports => (self.imports_off(), IMPORT_LEN, self.imports),
        };
        if index >= count {
            return Err(ManifestError::Truncated);
        }
        let at = off + index * len;
        self.bytes.get(at..at + len).ok_or(ManifestError::Truncated)
    }

    fn string(
        &self,
        raw: &[u8],
        at: usize,
        table: Table,
        i: usize,
    ) -> Result<&'a str, ManifestError> {
        let bad = ManifestError::BadString(table, i);
        let off = self.strings_off() + usize::from(le16(raw, at));
        let len = usize::from(le16(raw, at + 2));
        let bytes = self.bytes.get(off..off + len).ok_or(bad)?;
        let s = core::str::from_utf8(bytes).map_err(|_| bad)?;
        if is_valid_name(s) { Ok(s) } else { Err(bad) }
    }

    fn server_at(&self, index: usize) -> Result<Server<'a>, ManifestError> {
        let raw = self.record(Table::Servers, index)?;
        let name = self.string(raw, 0, Table::Servers, index)?;
        let binary = self.string(raw, 4, Table::Servers, index)?;
        let priority = raw[8];
        if priority >= PRIORITY_LEVELS {
            return Err(ManifestError::BadPriority(index));
        }
        let restart =
            Restart::decode(raw[9], le16(raw, 10)).ok_or(ManifestError::BadRestart(index))?;
        let flags = le32(raw, 12);
        if flags & !KNOWN_FLAGS != 0 || le32(raw, 28) != 0 {
            return Err(ManifestError::Reserved(Table::Servers, index));
        }
        let range = |at| (usize::from(le16(raw, at)), usize::from(le16(raw, at + 2)));
        Ok(Server {
            manifest: *self,
            index,
            name,
            binary,
            priority,
            restart,
            ready: flags & FLAG_READY != 0,
            framebuffer: flags & FLAG_FRAMEBUFFER != 0,
            resources: range(16),
            exports: range(20),
            imports: range(24),
        })
    }

    fn resource_at(&self, index: usize) -> Result<Resource, ManifestError> {
        let raw = self.record(Table::Resources, index)?;
        if raw[1..8].iter().any(|&b| b != 0) {
            return Err(ManifestError::Reserved(Table::Resources, index));
        }
        Resource::decode(raw[0], le64(raw, 8), le64(raw, 16))
            .ok_or(ManifestError::BadResource(index))
    }

    fn export_at(&self, index: usize, server: usize) -> Result<Export<'a>, ManifestError> {
        let raw = self.record(Table::Exports, index)?;
        if le32(raw, 4) != 0 {
            return Err(ManifestError::Reserved(Table::Exports, index));
        }
        let protocol = self.string(raw, 0, Table::Exports, index)?;
        Ok(Export {
            index,
            server,
            protocol,
        })
    }

    fn import_at(&self, index: usize, client: usize) -> Result<Import<'a>, ManifestError> {
        let raw = self.record(Table::Imports, index)?;
        if le64(raw, 8) != 0 {
            return Err(ManifestError::Reserved(Table::Imports, index));
        }
        let bad = ManifestError::BadImport(index);
        let server_index = usize::from(le16(raw, 0));
        let export = usize::from(le16(raw, 2));
        let badge = le32(raw, 4);
        if server_index >= client || badge as usize != client + 1 {
            return Err(bad);
        }
        let server = self.server_at(server_index).map_err(|_| bad)?;
        if !(server.exports.0..server.exports.0 + server.exports.1).contains(&export) {
            return Err(bad);
        }
        Ok(Import {
            client,
            server: server_index,
            export: self.export_at(export, server_index)?,
            badge,
        })
    }

    /// Checks every record and every cross-record invariant the module header promises.
    fn validate(&self) -> Result<(), ManifestError> {
        let (mut next_res, mut next_exp, mut next_imp) = (0, 0, 0);
        for i in 0..self.servers {
            let s = self.server_at(i)?;
            // Ranges tile each table in server order.
            for (range, next) in [
                (s.resources, &mut next_res),
                (s.exports, &mut next_exp),
                (s.imports, &mut next_imp),
            ] {
                if range.0 != *next {
                    return Err(ManifestError::BadRange(i));
                }
                *next += range.1;
            }
            if next_res > self.resources || next_exp > self.exports || next_imp > self.imports {
                return Err(ManifestError::BadRange(i));
            }
            for earlier in 0..i {
                let e = self.server_at(earlier)?;
                if e.name == s.name {
                    return Err(ManifestError::DuplicateServer(i));
                }
                if e.framebuffer && s.framebuffer {
                    return Err(ManifestError::Conflict(i));
                }
            }
            for r in s.resources.0..s.resources.0 + s.resources.1 {
                let res = self.resource_at(r)?;
                // Conflicts with earlier servers' claims (and within the server itself).
                for other in 0..r {
                    if self.resource_at(other)?.overlaps(&res) {
                        return Err(ManifestError::Conflict(i));
                    }
                }
            }
            for e in s.exports.0..s.exports.0 + s.exports.1 {
                let export = self.export_at(e, i)?;
                for other in s.exports.0..e {
                    if self.export_at(other, i)?.protocol == export.protocol {
                        return Err(ManifestError::BadString(Table::Exports, e));
                    }
                }
            }
            for m in s.imports.0..s.imports.0 + s.imports.1 {
                let import = self.import_at(m, i)?;
                let exporter = self.server_at(import.server)?;
                if s.priority > exporter.priority {
                    return Err(ManifestError::PriorityInversion(m));
                }
                for other in s.imports.0..m {
                    if self.import_at(other, i)?.export.index == import.export.index {
                        return Err(ManifestError::BadImport(m));
                    }
                }
            }
        }
        if next_res != self.resources || next_exp != self.exports || next_imp != self.imports {
            return Err(ManifestError::BadRange(self.servers - 1));
        }
        Ok(())
    }
}

impl<'a> Server<'a> {
    /// The hardware capabilities root grants it, in manifest order.
    pub fn resources(&self) -> impl Iterator<Item = Resource> + use<'a> {
        let m = self.manifest;
        let (first, count) = self.resources;
        (first..first + count).filter_map(move |i| m.resource_at(i).ok())
    }

    /// The protocols it serves, in manifest order.
    pub fn exports(&self) -> impl Iterator<Item = Export<'a>> + use<'a> {
        let (m, server) = (self.manifest, self.index);
        let (first, count) = self.exports;
        (first..first + count).filter_map(move |i| m.export_at(i, server).ok())
    }

    /// The protocols it uses, each resolved to an earlier server, in manifest order.
    pub fn imports(&self) -> impl Iterator<Item = Import<'a>> + use<'a> {
        let (m, client) = (self.manifest, self.index);
        let (first, count) = self.imports;
        (first..first + count).filter_map(move |i| m.import_at(i, client).ok())
    }

    /// The imports of later servers that connect to this server's exports.
    pub fn clients(&self) -> impl Iterator<Item = Import<'a>> + use<'a> {
        let server = self.index;
        self.manifest.imports().filter(move |i| i.server == server)
    }
}

/// True for names the manifest accepts: `[a-z][a-z0-9-]*`, at most [`MAX_NAME_LEN`] bytes, not
/// ending in `-`.
pub fn is_valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    matches!(b.first(), Some(b'a'..=b'z'))
        && b.len() <= MAX_NAME_LEN
        && !s.ends_with('-')
        && b.iter()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

// Callers pass offsets inside records they obtained with `get`, so these slices are in range.
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[cfg(feature = "std")]
pub use writer::{CompileError, ImportSpec, ServerSpec, compile};

#[cfg(feature = "std")]
mod writer {
    use super::*;

    /// One server as the compiler's input (xtask builds these from `system.toml`).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ServerSpec {
        /// Unique name.
        pub name: String,
        /// The initfs file holding its ELF image.
        pub binary: String,
        /// 0 (lowest) ..= 31.
        pub priority: u8,
        /// Restart policy.
        pub restart: Restart,
        /// Root waits for its ready message.
        pub ready: bool,
        /// It gets the boot framebuffer.
        pub framebuffer: bool,
        /// Hardware grants, in order.
        pub resources: Vec<Resource>,
        /// Protocols served, in order.
        pub exports: Vec<String>,
        /// Protocols used, in order.
        pub imports: Vec<ImportSpec>,
    }

    /// One import: `protocol` as served by `server`.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ImportSpec {
        /// Protocol name.
        pub protocol: String,
        /// Name of the exporting server (which must come earlier in the list).
        pub server: String,
    }

    /// Why [`compile`] refused its input.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum CompileError {
        /// A table or the string pool would exceed the format's limits.
        TooLarge(&'static str),
        /// Server `client` imports from `server`, which is not an earlier server.
        UnresolvedImport {
            /// Importer.
            client: String,
            /// The missing or later exporter.
            server: String,
            /// The protocol.
            protocol: String,
        },
        /// The table did not pass [`Manifest::parse`]: the input broke an invariant (xtask's
        /// validation reports these with file and line before compiling).
        Invalid(ManifestError),
    }

    impl std::fmt::Display for CompileError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Self::TooLarge(what) => write!(f, "manifest too large: {what}"),
                Self::UnresolvedImport {
                    client,
                    server,
                    protocol,
                } => write!(
                    f,
                    "server `{client}` imports `{protocol}` from `{server}`, which does not \
                     export it earlier in start order"
                ),
                Self::Invalid(e) => write!(f, "{e}"),
            }
        }
    }

    impl std::error::Error for CompileError {}

    /// Compiles `servers` (already in start order) into the table [`Manifest::parse`] reads.
    ///
    /// The output is parsed back before it is returned, so whatever `compile` accepts, root
    /// accepts.
    pub fn compile(servers: &[ServerSpec]) -> Result<Vec<u8>, CompileError> {
        let too_large = |what| CompileError::TooLarge(what);
        let mut pool = Vec::<u8>::new();
        let mut intern = |s: &str| -> Result<[u8; 4], CompileError> {
            let off = match pool.windows(s.len().max(1)).position(|w| w == s.as_bytes()) {
                Some(off) if !s.is_empty() => off,
                _ => {
                    pool.extend_from_slice(s.as_bytes());
                    pool.len() - s.len()
                }
            };
            let off = u16::try_from(off).map_err(|_| too_large("string pool"))?;
            let len = u16::try_from(s.len()).map_err(|_| too_large("name"))?;
            let mut r = [0u8; 4];
            r[..2].copy_from_slice(&off.to_le_bytes());
            r[2..].copy_from_slice(&len.to_le_bytes());
            Ok(r)
        };
        let count = |n: usize, max: usize, what| {
            u16::try_from(n)
                .ok()
                .filter(|&n| usize::from(n) <= max)
                .ok_or(too_large(what))
        };

        let (mut srv, mut res, mut exp, mut imp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut export_index = Vec::<(usize, usize, &str)>::new(); // (server, export, protocol)
        for (i, s) in servers.iter().enumerate() {
            let first = [
                res.len() / RESOURCE_LEN,
                exp.len() / EXPORT_LEN,
                imp.len() / IMPORT_LEN,
            ];
            for r in &s.resources {
                let (kind, a, b) = r.encode();
                res.push(kind);
                res.extend_from_slice(&[0; 7]);
                res.extend_from_slice(&a.to_le_bytes());
                res.extend_from_slice(&b.to_le_bytes());
            }
            for e in &s.exports {
                export_index.push((i, exp.len() / EXPORT_LEN, e));
                exp.extend_from_slice(&intern(e)?);
                exp.extend_from_slice(&[0; 4]);
            }
            for m in &s.imports {
                let unresolved = || CompileError::UnresolvedImport {
                    client: s.name.clone(),
                    server: m.server.clone(),
                    protocol: m.protocol.clone(),
                };
                let server = servers[..i]
                    .iter()
                    .position(|e| e.name == m.server)
                    .ok_or_else(unresolved)?;
                let export = export_index
                    .iter()
                    .find(|&&(sv, _, p)| sv == server && p == m.protocol)
                    .map(|&(_, e, _)| e)
                    .ok_or_else(unresolved)?;
                imp.extend_from_slice(&count(server, MAX_SERVERS, "servers")?.to_le_bytes());
                imp.extend_from_slice(&count(export, MAX_RECORDS, "exports")?.to_le_bytes());
                imp.extend_from_slice(&(i as u32 + 1).to_le_bytes());
                imp.extend_from_slice(&[0; 8]);
            }
            let (kind, limit) = s.restart.encode();
            let flags = if s.ready { FLAG_READY } else { 0 }
                | if s.framebuffer { FLAG_FRAMEBUFFER } else { 0 };
            srv.extend_from_slice(&intern(&s.name)?);
            srv.extend_from_slice(&intern(&s.binary)?);
            srv.extend_from_slice(&[s.priority, kind]);
            srv.extend_from_slice(&limit.to_le_bytes());
            srv.extend_from_slice(&flags.to_le_bytes());
            for (first, n, what) in [
                (first[0], s.resources.len(), "resources"),
                (first[1], s.exports.len(), "exports"),
                (first[2], s.imports.len(), "imports"),
            ] {
                srv.extend_from_slice(&count(first, MAX_RECORDS, what)?.to_le_bytes());
                srv.extend_from_slice(&count(n, MAX_RECORDS, what)?.to_le_bytes());
            }
            srv.extend_from_slice(&[0; 4]);
        }

        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0; 4]); // total_len, patched below
        out.extend_from_slice(&count(servers.len(), MAX_SERVERS, "servers")?.to_le_bytes());
        out.extend_from_slice(
            &count(res.len() / RESOURCE_LEN, MAX_RECORDS, "resources")?.to_le_bytes(),
        );
        out.extend_from_slice(
            &count(exp.len() / EXPORT_LEN, MAX_RECORDS, "exports")?.to_le_bytes(),
        );
        out.extend_from_slice(
            &count(imp.len() / IMPORT_LEN, MAX_RECORDS, "imports")?.to_le_bytes(),
        );
        out.extend_from_slice(&(pool.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        for part in [&srv, &res, &exp, &imp, &pool] {
            out.extend_from_slice(part);
        }
        let total = u32::try_from(out.len()).map_err(|_| too_large("table"))?;
        out[12..16].copy_from_slice(&total.to_le_bytes());
        Manifest::parse(&out).map_err(CompileError::Invalid)?;
        Ok(out)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    fn spec(name: &str, priority: u8) -> ServerSpec {
        ServerSpec {
            name: name.into(),
            binary: format!("hsync-{name}"),
            priority,
            restart: Restart::OnFault { limit: 3 },
            ready: true,
            framebuffer: false,
            resources: vec![],
            exports: vec![name.into()],
            imports: vec![],
        }
    }

    fn import(protocol: &str, server: &str) -> ImportSpec {
        ImportSpec {
            protocol: protocol.into(),
            server: server.into(),
        }
    }

    /// The shape of the real system: serial, vga, ps2, phase, shell.
    fn system() -> Vec<ServerSpec> {
        let mut serial = spec("serial", 20);
        serial.resources = vec![
            Resource::IoPorts {
                base: 0x3f8,
                count: 8,
            },
            Resource::Irq(4),
        ];
        let mut vga = spec("vga", 16);
        vga.resources = vec![Resource::Mmio {
            base: 0xb8000,
            size: 0x8000,
        }];
        vga.framebuffer = true;
        vga.imports = vec![import("serial", "serial")];
        let mut ps2 = spec("ps2", 18);
        ps2.resources = vec![
            Resource::IoPorts {
                base: 0x60,
                count: 1,
            },
            Resource::IoPorts {
                base: 0x64,
                count: 1,
            },
            Resource::Irq(1),
        ];
        ps2.restart = Restart::Always { limit: 10 };
        let mut phase = spec("phase", 12);
        phase.exports = vec!["phase".into(), "wave".into()];
        phase.imports = vec![import("vga", "vga"), import("serial", "serial")];
        let mut shell = spec("shell", 8);
        shell.exports = vec![];
        shell.restart = Restart::Never;
        shell.ready = false;
        shell.imports = vec![
            import("serial", "serial"),
            import("vga", "vga"),
            import("ps2", "ps2"),
            import("phase", "phase"),
            import("wave", "phase"),
        ];
        vec![serial, vga, ps2, phase, shell]
    }

    fn read_back(m: &Manifest<'_>) -> Vec<ServerSpec> {
        m.servers()
            .map(|s| ServerSpec {
                name: s.name.into(),
                binary: s.binary.into(),
                priority: s.priority,
                restart: s.restart,
                ready: s.ready,
                framebuffer: s.framebuffer,
                resources: s.resources().collect(),
                exports: s.exports().map(|e| e.protocol.into()).collect(),
                imports: s
                    .imports()
                    .map(|i| import(i.export.protocol, m.server(i.server).unwrap().name))
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn round_trip_preserves_every_field() {
        let input = system();
        let bytes = compile(&input).unwrap();
        let m = Manifest::parse(&bytes).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(read_back(&m), input);
    }

    #[test]
    fn imports_carry_server_export_and_badge() {
        let bytes = compile(&system()).unwrap();
        let m = Manifest::parse(&bytes).unwrap();
        let shell = m.find("shell").unwrap();
        assert_eq!(shell.index, 4);
        let wave = shell
            .imports()
            .find(|i| i.export.protocol == "wave")
            .unwrap();
        assert_eq!((wave.client, wave.server, wave.badge), (4, 3, 5));
        assert_eq!(m.server(wave.server).unwrap().name, "phase");
        let serial = m.find("serial").unwrap();
        let clients: Vec<_> = serial.clients().map(|i| (i.client, i.badge)).collect();
        assert_eq!(clients, [(1, 2), (3, 4), (4, 5)]);
        assert!(m.find("nope").is_none());
        assert!(m.server(5).is_none());
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        let mut bytes = compile(&system()).unwrap();
        let len = bytes.len();
        bytes.resize(len + 100, 0xaa);
        assert_eq!(Manifest::parse(&bytes).unwrap().len(), 5);
    }

    #[test]
    fn compile_rejects_what_root_would_reject() {
        let mut s = system();
        s[2].resources.push(Resource::Irq(4)); // ps2 takes serial's IRQ
        assert_eq!(
            compile(&s),
            Err(CompileError::Invalid(ManifestError::Conflict(2)))
        );
        let mut s = system();
        s[1].priority = 25; // vga (25) imports serial (20)
        assert_eq!(
            compile(&s),
            Err(CompileError::Invalid(ManifestError::PriorityInversion(0)))
        );
        let mut s = system();
        s.swap(0, 1); // vga before serial: its import is unresolved
        assert!(matches!(
            compile(&s),
            Err(CompileError::UnresolvedImport { .. })
        ));
        let mut s = system();
        s[4].name = "serial".into();
        assert_eq!(
            compile(&s),
            Err(CompileError::Invalid(ManifestError::DuplicateServer(4)))
        );
        let mut s = system();
        s[4].framebuffer = true;
        assert_eq!(
            compile(&s),
            Err(CompileError::Invalid(ManifestError::Conflict(4)))
        );
        let mut s = system();
        s[4].name = "Shell".into();
        assert!(matches!(
            compile(&s),
            Err(CompileError::Invalid(ManifestError::BadString(
                Table::Servers,
                4
            )))
        ));
        assert_eq!(
            compile(&[]),
            Err(CompileError::Invalid(ManifestError::BadCount(
                Table::Servers
            )))
        );
    }

    #[test]
    fn header_corruptions_give_specific_errors() {
        let good = compile(&system()).unwrap();
        let patch = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            Manifest::parse(&b).unwrap_err()
        };
        assert_eq!(patch(0, b"X"), ManifestError::BadMagic);
        assert_eq!(patch(8, &[2]), ManifestError::UnsupportedVersion(2));
        assert_eq!(patch(12, &u32::MAX.to_le_bytes()), ManifestError::Truncated);
        assert_eq!(patch(16, &[0, 0]), ManifestError::BadCount(Table::Servers));
        assert_eq!(
            patch(18, &[0xff, 0xff]),
            ManifestError::BadCount(Table::Resources)
        );
        assert_eq!(patch(24, &[0xff]), ManifestError::Truncated);
        assert_eq!(patch(28, &[1]), ManifestError::Reserved(Table::Servers, 0));
    }

    #[test]
    fn record_corruptions_give_specific_errors() {
        let good = compile(&system()).unwrap();
        let m = Manifest::parse(&good).unwrap();
        let (srv, res, imp) = (m.servers_off(), m.resources_off(), m.imports_off());
        let patch = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            Manifest::parse(&b).unwrap_err()
        };
        let s1 = srv + SERVER_LEN; // vga
        assert_eq!(patch(s1 + 8, &[32]), ManifestError::BadPriority(1));
        assert_eq!(patch(s1 + 9, &[7]), ManifestError::BadRestart(1));
        assert_eq!(patch(s1 + 10, &[0, 0]), ManifestError::BadRestart(1)); // on-fault, limit 0
        assert_eq!(
            patch(s1 + 12, &[4]),
            ManifestError::Reserved(Table::Servers, 1)
        );
        assert_eq!(patch(s1 + 16, &[0]), ManifestError::BadRange(1));
        assert_eq!(
            patch(s1, &[0xff, 0xff]),
            ManifestError::BadString(Table::Servers, 1)
        );
        assert_eq!(
            patch(s1 + 2, &[0, 0]),
            ManifestError::BadString(Table::Servers, 1)
        );
        // Resource 0 (serial's ports): unknown kind, reserved byte, range past 0xFFFF.
        assert_eq!(patch(res, &[9]), ManifestError::BadResource(0));
        assert_eq!(
            patch(res + 3, &[1]),
            ManifestError::Reserved(Table::Resources, 0)
        );
        assert_eq!(patch(res + 16, &[0, 0, 1]), ManifestError::BadResource(0));
        // Resource 2 (vga's MMIO): misaligned base.
        let r2 = res + 2 * RESOURCE_LEN;
        assert_eq!(patch(r2 + 8, &[1]), ManifestError::BadResource(2));
        // Resource 3 (ps2's port 0x60) moved onto serial's ports.
        let r3 = res + 3 * RESOURCE_LEN;
        assert_eq!(patch(r3 + 8, &[0xfa, 0x03]), ManifestError::Conflict(2));
        // Import 0 (vga → serial): exporter not earlier, wrong export, wrong badge.
        assert_eq!(patch(imp, &[1]), ManifestError::BadImport(0));
        assert_eq!(patch(imp + 2, &[1]), ManifestError::BadImport(0));
        assert_eq!(patch(imp + 4, &[9]), ManifestError::BadImport(0));
        assert_eq!(
            patch(imp + 8, &[1]),
            ManifestError::Reserved(Table::Imports, 0)
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let good = compile(&system()).unwrap();
        for cut in 0..good.len() {
            assert!(
                Manifest::parse(&good[..cut]).is_err(),
                "prefix {cut} accepted"
            );
        }
    }

    #[test]
    fn random_corruption_never_panics_and_keeps_invariants() {
        let good = compile(&system()).unwrap();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut accepted = 0;
        for _ in 0..50_000 {
            let mut bad = good.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % bad.len();
                bad[at] = next() as u8;
            }
            if let Ok(m) = Manifest::parse(&bad) {
                accepted += 1;
                // Whatever is accepted still keeps the promises root relies on.
                for s in m.servers() {
                    assert!(s.priority < PRIORITY_LEVELS);
                    for i in s.imports() {
                        assert!(i.server < s.index);
                        assert!(m.server(i.server).unwrap().priority >= s.priority);
                    }
                    let res: Vec<_> = s.resources().collect();
                    assert_eq!(res.len(), s.resources.1);
                    for o in m.servers().filter(|o| o.index != s.index) {
                        for r in o.resources() {
                            assert!(res.iter().all(|x| !x.overlaps(&r)));
                        }
                    }
                }
            }
        }
        // Some corruptions (e.g. a priority byte) are still valid tables; most are not.
        assert!(accepted < 50_000 / 2, "{accepted} corrupt tables accepted");
    }

    #[test]
    fn names_are_checked() {
        for ok in ["a", "serial", "ps2", "hsync-serial", "x1-y2"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "-a",
            "a-",
            "A",
            "a_b",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn overlap_is_exact_at_the_edges() {
        let p = |base, count| Resource::IoPorts { base, count };
        assert!(!p(0x3f8, 8).overlaps(&p(0x400, 1)));
        assert!(p(0x3f8, 8).overlaps(&p(0x3ff, 1)));
        assert!(p(0, 0x10000).overlaps(&p(0xffff, 1)));
        let m = |base, size| Resource::Mmio { base, size };
        assert!(!m(0xb8000, 0x8000).overlaps(&m(0xc0000, 0x1000)));
        assert!(m(0xb8000, 0x8000).overlaps(&m(0xbf000, 0x1000)));
        assert!(!Resource::Irq(1).overlaps(&Resource::Irq(4)));
        assert!(!Resource::Irq(4).overlaps(&p(4, 1)));
    }
}
