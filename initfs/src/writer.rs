//! Building initfs images on the host (used by xtask).

use crate::{DATA_ALIGN, ENTRY_LEN, HEADER_LEN, MAGIC, MAX_ENTRIES, MAX_NAME_LEN, VERSION};

/// Why a file could not be added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// Empty, longer than [`MAX_NAME_LEN`] bytes, or containing control characters.
    BadName(String),
    /// A file of that name was already added.
    DuplicateName(String),
    /// More than [`MAX_ENTRIES`] files.
    TooManyEntries,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::BadName(n) => write!(f, "invalid initfs file name {n:?}"),
            BuildError::DuplicateName(n) => write!(f, "initfs file {n:?} added twice"),
            BuildError::TooManyEntries => write!(f, "more than {MAX_ENTRIES} initfs files"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Collects files and writes an image that [`crate::Archive::parse`] accepts.
///
/// ```
/// let mut b = hsync_initfs::Builder::new();
/// b.add("hello.txt", b"hi".to_vec()).unwrap();
/// let image = b.finish();
/// let archive = hsync_initfs::Archive::parse(&image).unwrap();
/// assert_eq!(archive.get("hello.txt"), Some(&b"hi"[..]));
/// ```
#[derive(Default, Debug)]
pub struct Builder {
    files: Vec<(String, Vec<u8>)>,
}

impl Builder {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file; names must be unique, 1..=255 bytes, without control characters.
    pub fn add(&mut self, name: &str, data: Vec<u8>) -> Result<&mut Self, BuildError> {
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(BuildError::BadName(name.to_owned()));
        }
        if self.files.iter().any(|(n, _)| n == name) {
            return Err(BuildError::DuplicateName(name.to_owned()));
        }
        if self.files.len() == MAX_ENTRIES {
            return Err(BuildError::TooManyEntries);
        }
        self.files.push((name.to_owned(), data));
        Ok(self)
    }

    /// Writes the image.
    pub fn finish(&self) -> Vec<u8> {
        let count = self.files.len();
        let names_start = HEADER_LEN + count * ENTRY_LEN;
        let names_len: usize = self.files.iter().map(|(n, _)| n.len()).sum();
        let mut out = vec![0u8; names_start + names_len];

        out[..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(count as u32).to_le_bytes());

        let mut name_off = names_start;
        for (i, (name, data)) in self.files.iter().enumerate() {
            out[name_off..name_off + name.len()].copy_from_slice(name.as_bytes());
            let data_off = out.len().next_multiple_of(DATA_ALIGN as usize);
            out.resize(data_off, 0);
            out.extend_from_slice(data);

            let e = HEADER_LEN + i * ENTRY_LEN;
            out[e..e + 4].copy_from_slice(&(name_off as u32).to_le_bytes());
            out[e + 4..e + 8].copy_from_slice(&(name.len() as u32).to_le_bytes());
            out[e + 8..e + 16].copy_from_slice(&(data_off as u64).to_le_bytes());
            out[e + 16..e + 24].copy_from_slice(&(data.len() as u64).to_le_bytes());
            name_off += name.len();
        }
        let total = out.len() as u64;
        out[16..24].copy_from_slice(&total.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Archive, Error};

    fn sample() -> Vec<u8> {
        let mut b = Builder::new();
        b.add("kernel", vec![0x7f, b'E', b'L', b'F']).unwrap();
        b.add("servers/serial", (0..10_000u32).map(|i| i as u8).collect())
            .unwrap();
        b.add("empty", Vec::new()).unwrap();
        b.finish()
    }

    /// Deterministic xorshift so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn round_trip_preserves_names_order_and_contents() {
        let image = sample();
        let a = Archive::parse(&image).unwrap();
        let names: Vec<_> = a.entries().map(|e| e.name).collect();
        assert_eq!(names, ["kernel", "servers/serial", "empty"]);
        assert_eq!(a.get("kernel"), Some(&[0x7f, b'E', b'L', b'F'][..]));
        let serial = a.get("servers/serial").unwrap();
        assert_eq!(serial.len(), 10_000);
        assert!(serial.iter().enumerate().all(|(i, &b)| b == i as u8));
        assert_eq!(a.get("empty"), Some(&[][..]));
        assert_eq!(a.get("missing"), None);
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn empty_archive_round_trips() {
        let image = Builder::new().finish();
        assert_eq!(image.len(), HEADER_LEN);
        let a = Archive::parse(&image).unwrap();
        assert!(a.is_empty());
        assert_eq!(a.entries().count(), 0);
    }

    #[test]
    fn data_is_page_aligned_for_zero_copy_mapping() {
        let image = sample();
        for e in Archive::parse(&image).unwrap().entries() {
            assert_eq!(e.offset % DATA_ALIGN, 0, "{}", e.name);
        }
    }

    #[test]
    fn trailing_padding_is_ignored() {
        let mut image = sample();
        let len = image.len();
        image.resize(len.next_multiple_of(4096) + 4096, 0xaa);
        let a = Archive::parse(&image).unwrap();
        assert_eq!(a.image().len(), len);
        assert_eq!(a.get("kernel").unwrap().len(), 4);
    }

    #[test]
    fn builder_rejects_bad_and_duplicate_names() {
        let mut b = Builder::new();
        assert_eq!(
            b.add("", vec![]).unwrap_err(),
            BuildError::BadName(String::new())
        );
        assert!(matches!(b.add("a\nb", vec![]), Err(BuildError::BadName(_))));
        assert!(matches!(
            b.add(&"x".repeat(256), vec![]),
            Err(BuildError::BadName(_))
        ));
        b.add("x".repeat(255).as_str(), vec![]).unwrap();
        b.add("a", vec![]).unwrap();
        assert_eq!(
            b.add("a", vec![1]).unwrap_err(),
            BuildError::DuplicateName("a".into())
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let image = sample();
        let total = image.len();
        for cut in 0..total {
            assert!(
                Archive::parse(&image[..cut]).is_err(),
                "prefix {cut} of {total} accepted"
            );
        }
    }

    #[test]
    fn header_corruptions_give_specific_errors() {
        let image = sample();
        let mut bad = image.clone();
        bad[0] = b'X';
        assert_eq!(Archive::parse(&bad).unwrap_err(), Error::BadMagic);
        let mut bad = image.clone();
        bad[8] = 2;
        assert_eq!(
            Archive::parse(&bad).unwrap_err(),
            Error::UnsupportedVersion(2)
        );
        let mut bad = image.clone();
        bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Archive::parse(&bad).unwrap_err(), Error::TooManyEntries);
        let mut bad = image.clone();
        bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Archive::parse(&bad).unwrap_err(), Error::Truncated);
        let mut bad = image.clone();
        bad[24] = 1;
        assert_eq!(Archive::parse(&bad).unwrap_err(), Error::ReservedNotZero);
    }

    #[test]
    fn entry_corruptions_give_specific_errors() {
        let image = sample();
        let entry1 = HEADER_LEN + ENTRY_LEN;
        // Data offset far past the end.
        let mut bad = image.clone();
        bad[entry1 + 8..entry1 + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert_eq!(
            Archive::parse(&bad).unwrap_err(),
            Error::EntryOutOfBounds(1)
        );
        // Misaligned data offset.
        let mut bad = image.clone();
        bad[entry1 + 8] = 1;
        assert_eq!(
            Archive::parse(&bad).unwrap_err(),
            Error::EntryOutOfBounds(1)
        );
        // Length that overflows when added to the offset.
        let mut bad = image.clone();
        bad[entry1 + 16..entry1 + 24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Archive::parse(&bad).unwrap_err(),
            Error::EntryOutOfBounds(1)
        );
        // Zero-length name.
        let mut bad = image.clone();
        bad[entry1 + 4..entry1 + 8].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(Archive::parse(&bad).unwrap_err(), Error::BadName(1));
        // Name pointing at the first entry's name: a duplicate.
        let mut bad = image.clone();
        let first_name = bad[HEADER_LEN..HEADER_LEN + 8].to_vec();
        bad[entry1..entry1 + 8].copy_from_slice(&first_name);
        assert_eq!(Archive::parse(&bad).unwrap_err(), Error::DuplicateName(1));
        // Invalid UTF-8 in a name.
        let mut bad = image.clone();
        let name_off = u32::from_le_bytes(bad[entry1..entry1 + 4].try_into().unwrap()) as usize;
        bad[name_off] = 0xff;
        assert_eq!(Archive::parse(&bad).unwrap_err(), Error::BadName(1));
    }

    #[test]
    fn random_corruption_never_panics_and_never_reads_out_of_bounds() {
        let image = sample();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let mut bad = image.clone();
            // Corrupt the metadata region mostly: that is where the reader makes decisions.
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() % 256) as usize % bad.len();
                bad[at] = rng.next() as u8;
            }
            let cut = if rng.next().is_multiple_of(4) {
                (rng.next() as usize) % bad.len()
            } else {
                bad.len()
            };
            if let Ok(a) = Archive::parse(&bad[..cut]) {
                for e in a.entries() {
                    // Entries are sub-slices of the image by construction; check they really are.
                    let base = bad.as_ptr() as usize;
                    let p = e.data.as_ptr() as usize;
                    assert!(p >= base && p + e.data.len() <= base + cut);
                }
            }
        }
    }
}
