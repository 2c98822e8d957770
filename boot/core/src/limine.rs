//! The Limine boot protocol from the loader's side: finding requests in the loaded kernel, the
//! base-revision handshake, and the response layouts (base revision 3, as read by `limine` 0.5).
//!
//! All values are little-endian `u64`s at 8-byte-aligned offsets of the *loaded* image (requests
//! usually live in `.data`, so the file offsets would not do). Pointers inside responses are
//! HHDM virtual addresses, which is why the layouts below hold them as plain `u64`.

use crate::FixedVec;

/// The base revision this loader implements. Kernels asking for less are refused (revisions
/// 0–2 promise identity and 4 GiB maps we do not build); kernels asking for more get this one.
pub const BASE_REVISION: u64 = 3;

const COMMON_MAGIC: [u64; 2] = [0xc7b1dd30df4c8b88, 0x0a82e883a194f07b];
const START_MARKER: [u64; 4] = [
    0xf6b8f4b39de7d1ae,
    0xfab91a6940fcb9cf,
    0x785c6ed015d3e316,
    0x181e920a7852b9d9,
];
const END_MARKER: [u64; 2] = [0xadc0e0531bb10d03, 0x9572709f31764c62];
const BASE_REVISION_MAGIC: [u64; 2] = [0xf9562b2d5c95a6c8, 0x6a7b384944536bdc];

/// The requests this loader knows by id. Anything else is [`Feature::Unknown`] and unanswered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Feature {
    /// Bootloader name and version.
    BootloaderInfo,
    /// Kernel command line.
    ExecutableCmdline,
    /// BIOS / UEFI.
    FirmwareType,
    /// Minimum stack size.
    StackSize,
    /// Higher-half direct map offset.
    Hhdm,
    /// Linear framebuffers.
    Framebuffer,
    /// Memory map.
    MemoryMap,
    /// Alternative entry point.
    EntryPoint,
    /// The kernel file itself.
    ExecutableFile,
    /// Modules.
    Module,
    /// ACPI RSDP.
    Rsdp,
    /// Physical and virtual base of the kernel.
    ExecutableAddress,
    /// A valid request id this loader does not implement.
    #[default]
    Unknown,
}

const IDS: &[([u64; 2], Feature)] = &[
    (
        [0xf55038d8e2a1202f, 0x279426fcf5f59740],
        Feature::BootloaderInfo,
    ),
    (
        [0x4b161536e598651e, 0xb390ad4a2f1f303a],
        Feature::ExecutableCmdline,
    ),
    (
        [0x8c2f75d90bef28a8, 0x7045a4688eac00c3],
        Feature::FirmwareType,
    ),
    ([0x224ef0460a8e8926, 0xe1cb0fc25f46ea3d], Feature::StackSize),
    ([0x48dcf1cb8ad2b852, 0x63984e959a98244b], Feature::Hhdm),
    (
        [0x9d5827dcd881dd75, 0xa3148604f6fab11b],
        Feature::Framebuffer,
    ),
    ([0x67cf3d9d378a806f, 0xe304acdfc50c3c62], Feature::MemoryMap),
    (
        [0x13d86c035a1cd3e1, 0x2b0caa89d8f3026a],
        Feature::EntryPoint,
    ),
    (
        [0xad97e90e83f1ed67, 0x31eb5d1c5ff23b69],
        Feature::ExecutableFile,
    ),
    ([0x3e7e279702be32af, 0xca1c4f3bd1280cee], Feature::Module),
    ([0xc5e77b6b397e7b43, 0x27637845accdcf3c], Feature::Rsdp),
    (
        [0x71ba76863cc55f63, 0xb2644a48c516a487],
        Feature::ExecutableAddress,
    ),
];

/// Offset of `response` inside every request.
pub const RESPONSE_OFFSET: usize = 40;
/// Offset of the first request-specific field (stack size, entry point, ...).
pub const ARG_OFFSET: usize = 48;

/// Why the kernel's requests cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The kernel asks for a base revision below [`BASE_REVISION`] (no tag means 0).
    UnsupportedBaseRevision(u64),
    /// Two requests with the same id: the protocol says refuse to boot.
    DuplicateRequest([u64; 2]),
    /// More requests than this loader tracks.
    TooManyRequests,
    /// A read or write outside the image.
    OutOfBounds,
}

/// One request found in the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// What it asks for.
    pub feature: Feature,
    /// `id[2..4]`.
    pub id: [u64; 2],
    /// Byte offset in the loaded image.
    pub offset: usize,
    /// The request's revision.
    pub revision: u64,
}

/// Reads the little-endian `u64` at `off`.
pub fn read_u64(image: &[u8], off: usize) -> Result<u64, Error> {
    let s = image
        .get(off..off.checked_add(8).ok_or(Error::OutOfBounds)?)
        .ok_or(Error::OutOfBounds)?;
    let mut b = [0; 8];
    b.copy_from_slice(s);
    Ok(u64::from_le_bytes(b))
}

/// Writes `value` as a little-endian `u64` at `off`.
pub fn write_u64(image: &mut [u8], off: usize, value: u64) -> Result<(), Error> {
    let end = off.checked_add(8).ok_or(Error::OutOfBounds)?;
    image
        .get_mut(off..end)
        .ok_or(Error::OutOfBounds)?
        .copy_from_slice(&value.to_le_bytes());
    Ok(())
}

fn words_at<const N: usize>(image: &[u8], off: usize) -> Option<[u64; N]> {
    let mut w = [0u64; N];
    for (i, slot) in w.iter_mut().enumerate() {
        *slot = read_u64(image, off + 8 * i).ok()?;
    }
    Some(w)
}

fn offsets(image: &[u8]) -> impl Iterator<Item = usize> {
    (0..image.len().saturating_sub(7)).step_by(8)
}

/// Performs the base-revision handshake on the loaded image and returns the revision used.
///
/// Supported (`N == 3`): word 2 := 0. Newer (`N > 3`): served as revision 3, word 2 unchanged.
/// Either way word 1 := 3, the revision actually used. Older or absent: refused.
pub fn negotiate_base_revision(image: &mut [u8]) -> Result<u64, Error> {
    let tag = offsets(image).find(|&o| words_at::<2>(image, o) == Some(BASE_REVISION_MAGIC));
    let Some(off) = tag else {
        return Err(Error::UnsupportedBaseRevision(0));
    };
    let asked = read_u64(image, off + 16)?;
    if asked < BASE_REVISION {
        return Err(Error::UnsupportedBaseRevision(asked));
    }
    if asked == BASE_REVISION {
        write_u64(image, off + 16, 0)?;
    }
    write_u64(image, off + 8, BASE_REVISION)?;
    Ok(BASE_REVISION)
}

/// Finds every request between the last start marker and the first end marker after it (the
/// whole image when there are no markers) and rejects duplicate ids.
pub fn find_requests(image: &[u8]) -> Result<FixedVec<Request, 32>, Error> {
    let start = offsets(image)
        .filter(|&o| words_at::<4>(image, o) == Some(START_MARKER))
        .last()
        .map_or(0, |o| o + 32);
    let end = offsets(image)
        .filter(|&o| o >= start)
        .find(|&o| words_at::<2>(image, o) == Some(END_MARKER))
        .unwrap_or(image.len());
    let window = image.get(..end).ok_or(Error::OutOfBounds)?;

    let mut found: FixedVec<Request, 32> = FixedVec::default();
    for off in offsets(window).filter(|&o| o >= start) {
        let Some([m0, m1, a, b]) = words_at::<4>(window, off) else {
            continue;
        };
        if [m0, m1] != COMMON_MAGIC {
            continue;
        }
        let id = [a, b];
        if found.as_slice().iter().any(|r| r.id == id) {
            return Err(Error::DuplicateRequest(id));
        }
        let feature = IDS
            .iter()
            .find(|(i, _)| *i == id)
            .map_or(Feature::Unknown, |&(_, f)| f);
        let revision = read_u64(window, off + 32)?;
        found
            .push(Request {
                feature,
                id,
                offset: off,
                revision,
            })
            .map_err(|()| Error::TooManyRequests)?;
    }
    Ok(found)
}

// ---- Response layouts (base revision 3). Sizes are checked against `limine` 0.5 in the tests.

/// HHDM response.
#[repr(C)]
pub struct HhdmResponse {
    /// Response revision (0).
    pub revision: u64,
    /// Virtual address of physical 0.
    pub offset: u64,
}

/// A response whose only payload is one `u64` (executable file/cmdline, RSDP, firmware type).
#[repr(C)]
pub struct ValueResponse {
    /// Response revision (0).
    pub revision: u64,
    /// Pointer or value.
    pub value: u64,
}

/// A response without payload (stack size, entry point).
#[repr(C)]
pub struct EmptyResponse {
    /// Response revision (0).
    pub revision: u64,
}

/// Bootloader info response.
#[repr(C)]
pub struct BootloaderInfoResponse {
    /// Response revision (0).
    pub revision: u64,
    /// NUL-terminated name.
    pub name: u64,
    /// NUL-terminated version.
    pub version: u64,
}

/// Executable address response.
#[repr(C)]
pub struct ExecutableAddressResponse {
    /// Response revision (0).
    pub revision: u64,
    /// Physical address of the image's first page.
    pub physical_base: u64,
    /// Its link address.
    pub virtual_base: u64,
}

/// Memory map, module and framebuffer responses: a count and a pointer to an array of pointers.
#[repr(C)]
pub struct ListResponse {
    /// Response revision (0).
    pub revision: u64,
    /// Number of pointers.
    pub count: u64,
    /// Pointer to `count` pointers.
    pub list: u64,
}

/// Memory map entry.
#[repr(C)]
pub struct MemmapEntry {
    /// Physical base.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// Limine type.
    pub kind: u64,
}

/// A file (module or the kernel itself).
#[repr(C)]
#[derive(Default)]
pub struct File {
    /// Structure revision (0).
    pub revision: u64,
    /// HHDM address of the (page-aligned) contents.
    pub address: u64,
    /// Size in bytes.
    pub size: u64,
    /// NUL-terminated path, leading slash.
    pub path: u64,
    /// NUL-terminated string (cmdline).
    pub string: u64,
    /// 0 = generic.
    pub media_type: u32,
    /// Unused.
    pub unused: u32,
    /// TFTP server (0 = none).
    pub tftp_ip: u32,
    /// TFTP port (0 = none).
    pub tftp_port: u32,
    /// 1-based partition index (0 = none).
    pub partition_index: u32,
    /// MBR disk id (0 = none).
    pub mbr_disk_id: u32,
    /// GPT disk, GPT partition and partition UUIDs (zero = none).
    pub uuids: [[u8; 16]; 3],
}

/// A framebuffer (structure revision 0; the response's revision 0 means no video-mode list).
#[repr(C)]
#[derive(Default)]
pub struct Framebuffer {
    /// HHDM address of pixel (0, 0).
    pub address: u64,
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
    /// Bytes per line.
    pub pitch: u64,
    /// Bits per pixel.
    pub bpp: u16,
    /// 1 = RGB.
    pub memory_model: u8,
    /// Red, green, blue `(size, shift)` pairs as `[r_size, r_shift, g_size, g_shift, b_size, b_shift]`.
    pub masks: [u8; 6],
    /// Unused.
    pub unused: [u8; 7],
    /// EDID bytes (0 = none).
    pub edid_size: u64,
    /// EDID pointer (0 = none).
    pub edid: u64,
}

const _: () = {
    assert!(size_of::<File>() == 112);
    assert!(size_of::<Framebuffer>() == 64);
    assert!(size_of::<ListResponse>() == 24);
    assert!(size_of::<MemmapEntry>() == 24);
};

#[cfg(test)]
mod tests {
    use super::*;
    use ::limine as l;
    use core::mem::offset_of;

    #[test]
    fn layouts_match_the_limine_crate() {
        assert_eq!(size_of::<File>(), size_of::<l::file::File>());
        assert_eq!(size_of::<MemmapEntry>(), size_of::<l::memory_map::Entry>());
        assert_eq!(
            size_of::<HhdmResponse>(),
            size_of::<l::response::HhdmResponse>()
        );
        assert_eq!(
            size_of::<ListResponse>(),
            size_of::<l::response::ModuleResponse>()
        );
        assert_eq!(
            size_of::<ListResponse>(),
            size_of::<l::response::MemoryMapResponse>()
        );
        assert_eq!(
            size_of::<ListResponse>(),
            size_of::<l::response::FramebufferResponse>()
        );
        assert_eq!(
            size_of::<ValueResponse>(),
            size_of::<l::response::RsdpResponse>()
        );
        assert_eq!(
            size_of::<ExecutableAddressResponse>(),
            size_of::<l::response::ExecutableAddressResponse>()
        );
        assert_eq!(offset_of!(Framebuffer, edid_size), 48);
        assert_eq!(offset_of!(File, media_type), 40);
        assert_eq!(offset_of!(File, uuids), 64);
    }

    /// A kernel's request section, built from the real `limine` types.
    #[repr(C, align(8))]
    struct Image {
        before: l::request::HhdmRequest, // outside the markers: must be ignored
        base: l::BaseRevision,
        start: l::request::RequestsStartMarker,
        hhdm: l::request::HhdmRequest,
        file: l::request::ExecutableFileRequest,
        modules: l::request::ModuleRequest,
        stack: l::request::StackSizeRequest,
        end: l::request::RequestsEndMarker,
    }

    fn image() -> Image {
        Image {
            before: l::request::HhdmRequest::new(),
            base: l::BaseRevision::new(),
            start: l::request::RequestsStartMarker::new(),
            hhdm: l::request::HhdmRequest::new(),
            file: l::request::ExecutableFileRequest::new(),
            modules: l::request::ModuleRequest::new(),
            stack: l::request::StackSizeRequest::new().with_size(0x20000),
            end: l::request::RequestsEndMarker::new(),
        }
    }

    fn bytes(img: &mut Image) -> &mut [u8] {
        // SAFETY: `Image` is plain old data for these purposes (integers, pointers, cells); the
        // slice covers exactly it and borrows it mutably, so nothing else observes the writes.
        unsafe {
            core::slice::from_raw_parts_mut((img as *mut Image).cast::<u8>(), size_of::<Image>())
        }
    }

    #[test]
    fn finds_requests_inside_markers_and_answers_are_readable_by_the_crate() {
        let mut img = image();
        let buf = bytes(&mut img);
        assert_eq!(negotiate_base_revision(buf), Ok(3));
        let reqs = find_requests(buf).unwrap();
        let features: std::vec::Vec<_> = reqs.as_slice().iter().map(|r| r.feature).collect();
        assert_eq!(
            features,
            [
                Feature::Hhdm,
                Feature::ExecutableFile,
                Feature::Module,
                Feature::StackSize
            ]
        );
        let stack = reqs.as_slice()[3];
        assert_eq!(read_u64(buf, stack.offset + ARG_OFFSET), Ok(0x20000));
        assert_eq!(reqs.as_slice()[2].revision, 1);

        // Answer HHDM with a response the crate must read back exactly.
        let resp = HhdmResponse {
            revision: 0,
            offset: 0xffff_8000_0000_0000,
        };
        let hhdm = reqs.as_slice()[0];
        write_u64(buf, hhdm.offset + RESPONSE_OFFSET, &resp as *const _ as u64).unwrap();
        assert!(img.base.is_supported());
        assert_eq!(img.base.loaded_revision(), Some(3));
        assert_eq!(
            img.hhdm.get_response().map(|r| r.offset()),
            Some(0xffff_8000_0000_0000)
        );
        assert!(
            img.before.get_response().is_none(),
            "request outside the markers was answered"
        );
        assert!(img.file.get_response().is_none());
    }

    #[test]
    fn module_file_and_memmap_layouts_round_trip() {
        let mut img = image();
        let path = b"/boot/initfs\0";
        let string = b"initfs\0";
        let data = [7u8; 64];
        let file = File {
            address: data.as_ptr() as u64,
            size: 64,
            path: path.as_ptr() as u64,
            string: string.as_ptr() as u64,
            ..File::default()
        };
        let ptrs = [&file as *const File as u64];
        let resp = ListResponse {
            revision: 0,
            count: 1,
            list: ptrs.as_ptr() as u64,
        };
        let buf = bytes(&mut img);
        let reqs = find_requests(buf).unwrap();
        let m = reqs
            .as_slice()
            .iter()
            .find(|r| r.feature == Feature::Module)
            .unwrap();
        write_u64(buf, m.offset + RESPONSE_OFFSET, &resp as *const _ as u64).unwrap();
        let got = img.modules.get_response().unwrap().modules();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].size(), 64);
        assert_eq!(got[0].addr() as u64, data.as_ptr() as u64);
        assert_eq!(got[0].path().to_bytes(), b"/boot/initfs");
        assert_eq!(got[0].string().to_bytes(), b"initfs");
    }

    #[test]
    fn base_revision_rules() {
        let mut img = image();
        img.base = l::BaseRevision::with_revision(2);
        assert_eq!(
            negotiate_base_revision(bytes(&mut img)),
            Err(Error::UnsupportedBaseRevision(2))
        );
        assert!(!img.base.is_supported());

        img.base = l::BaseRevision::with_revision(5);
        assert_eq!(negotiate_base_revision(bytes(&mut img)), Ok(3));
        assert!(
            !img.base.is_supported(),
            "rev 5 is not supported, word 2 must stay"
        );
        assert_eq!(img.base.loaded_revision(), Some(3));

        assert_eq!(
            negotiate_base_revision(&mut [0u8; 64]),
            Err(Error::UnsupportedBaseRevision(0))
        );
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let mut img = image();
        img.file = l::request::ExecutableFileRequest::new();
        let buf = bytes(&mut img);
        // Overwrite the module request's id with the HHDM id.
        let hhdm = find_requests(buf).unwrap().as_slice()[0];
        let module_off = find_requests(buf).unwrap().as_slice()[2].offset;
        write_u64(buf, module_off + 16, hhdm.id[0]).unwrap();
        write_u64(buf, module_off + 24, hhdm.id[1]).unwrap();
        assert_eq!(
            find_requests(buf).unwrap_err(),
            Error::DuplicateRequest(hhdm.id)
        );
    }

    extern crate std;
}
