//! Turns kernel addresses in serial output into `function file:line`.
//!
//! The kernel prints addresses as `0x` + 16 hex digits. Only those the log marks as code are
//! annotated from the kernel ELF's debug info: every address of a backtrace line
//! (`#<n> 0x...`, a return address, so the call site `addr - 1` is looked up), and an address
//! right after one of [`CODE_MARKERS`] (`rip=0x...` in a register dump, `rip 0x...` in a fault
//! report). Other numbers — the kernel's base address, a pointer, a size — stay plain, even when
//! they happen to fall inside `.text`.

use std::path::Path;

/// Kernel image addresses live in the top 2 GiB.
const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

/// Text that marks the address right after it as a code address.
const CODE_MARKERS: &[&str] = &["rip=", "rip ", "breakpoint at "];

/// Symbolizes lines against one ELF file.
pub struct Symbolizer {
    loader: Option<addr2line::Loader>,
    /// Lowest address that can be the kernel's ([`KERNEL_BASE`]).
    min: u64,
    /// The `.text` range: only code addresses are annotated (not data or stack pointers).
    text: Option<(u64, u64)>,
}

impl Symbolizer {
    /// Loads debug info from `elf`; without it (missing file, stripped) lines pass unchanged.
    pub fn new(elf: &Path) -> Self {
        let loader = addr2line::Loader::new(elf).ok();
        let text = loader.as_ref().and_then(|l| l.get_section_range(b".text"));
        Self {
            loader,
            min: KERNEL_BASE,
            text: text.map(|r| (r.begin, r.end)),
        }
    }

    fn is_code(&self, addr: u64) -> bool {
        addr >= self.min
            && self
                .text
                .is_none_or(|(begin, end)| (begin..end).contains(&addr))
    }

    /// Returns `line` with ` [function file:line]` after every kernel address found in it.
    pub fn annotate(&self, line: &str) -> String {
        let Some(loader) = &self.loader else {
            return line.to_owned();
        };
        let is_backtrace = line.trim_start().starts_with('#');
        let mut out = String::with_capacity(line.len() + 64);
        let mut rest = line;
        while let Some(at) = rest.find("0x") {
            let (before, token) = rest.split_at(at);
            out.push_str(before);
            let digits = &token[2..];
            let hex_len = digits.bytes().take_while(u8::is_ascii_hexdigit).count();
            let value = (hex_len == 16)
                .then(|| u64::from_str_radix(&digits[..16], 16).ok())
                .flatten();
            out.push_str(&token[..2 + hex_len]);
            let marked = is_backtrace || CODE_MARKERS.iter().any(|m| before.ends_with(m));
            if let Some(addr) = value.filter(|&a| marked && self.is_code(a)) {
                let probe = if is_backtrace { addr - 1 } else { addr };
                if let Some(sym) = describe(loader, probe) {
                    out.push_str(" [");
                    out.push_str(&sym);
                    out.push(']');
                }
            }
            rest = &token[2 + hex_len..];
        }
        out.push_str(rest);
        out
    }
}

fn describe(loader: &addr2line::Loader, addr: u64) -> Option<String> {
    // A symbol that starts exactly here (e.g. `_start`, written in assembly without debug info)
    // is authoritative: the DWARF ranges of a neighbouring function may claim its first byte.
    let exact = loader
        .find_symbol_info(addr)
        .filter(|s| s.address() == addr)
        .map(|s| demangle(s.name()));
    let mut frames = loader.find_frames(addr).ok()?;
    // The innermost frame is the most precise; inlined callers add nothing for a one-line view.
    if let Ok(Some(frame)) = frames.next() {
        let function = frame
            .function
            .as_ref()
            .and_then(|f| f.demangle().ok().map(|s| strip_hash(&s).to_owned()));
        let location = frame.location.and_then(|l| {
            let file = l.file?;
            let file = file.rsplit_once("/src/").map_or(file, |(_, f)| f);
            Some(format!(" {file}:{}", l.line.unwrap_or(0)))
        });
        match (exact, function) {
            (Some(sym), Some(f)) if sym != f => return Some(sym),
            (_, Some(f)) => return Some(format!("{f}{}", location.unwrap_or_default())),
            (exact, None) => return exact.or_else(|| symbol(loader, addr)),
        }
    }
    exact.or_else(|| symbol(loader, addr))
}

/// A symbol name demangled, without rustc's hash suffix.
pub fn demangle(name: &str) -> String {
    strip_hash(&addr2line::demangle_auto(name.into(), None)).to_owned()
}

/// The ELF symbol covering `addr` (for code without debug info, e.g. assembly), demangled.
fn symbol(loader: &addr2line::Loader, addr: u64) -> Option<String> {
    loader.find_symbol(addr).map(demangle)
}

/// Drops rustc's `::h0123456789abcdef` suffix.
fn strip_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_real_hashes() {
        assert_eq!(strip_hash("kernel::foo::h0123456789abcdef"), "kernel::foo");
        assert_eq!(strip_hash("kernel::foo::hello"), "kernel::foo::hello");
    }

    #[test]
    fn without_debug_info_lines_pass_unchanged() {
        let s = Symbolizer::new(Path::new("/nonexistent"));
        let line = "  #0 0xffffffff80001234 in 0x12";
        assert_eq!(s.annotate(line), line);
    }

    #[test]
    fn only_addresses_marked_as_code_are_symbolized() {
        // This test binary as the "kernel", with the kernel-half floor lowered to its own code.
        let me = std::env::current_exe().unwrap();
        let mut s = Symbolizer::new(&me);
        s.min = 0;
        let (begin, _) = s.text.expect("the test binary has a .text section");
        let code = format!("0x{begin:016x}");
        // A plain number that happens to be a code address: left alone.
        let plain = format!("kernel at {code} (phys 0x0000000000200000), size={code}");
        assert_eq!(s.annotate(&plain), plain);
        // Marked as code: annotated.
        for line in [
            format!("   rip={code} rflags=0x0000000000000002"),
            format!("page fault: vector 14, error code 0x2, rip {code}, cr2 0x0000000000000000"),
            format!("  #0 0x{:016x}", begin + 1),
        ] {
            let got = s.annotate(&line);
            assert!(
                got.len() > line.len() && got.contains(" ["),
                "{line} -> {got}"
            );
            // Only the marked token: cr2 / rflags stay plain.
            assert_eq!(got.matches(" [").count(), 1, "{got}");
        }
    }

    #[test]
    fn annotates_addresses_in_our_own_binary_only_in_kernel_half() {
        // The test binary itself has debug info; its functions are not in the kernel half, so
        // nothing is annotated, but parsing must keep every byte of the line.
        let me = std::env::current_exe().unwrap();
        let s = Symbolizer::new(&me);
        let line = "rip=0x0000000000401000 x=0xzz 0x 0xffffffff8000000";
        assert_eq!(s.annotate(line), line);
    }
}
