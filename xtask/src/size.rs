//! `cargo xtask size`: where the kernel's bytes go, from its symbol table (a `cargo bloat`-style
//! view): the loaded sections, code bytes per crate (a symbol's first path segment, impls counted
//! where their type lives), the share of in-kernel test code (`ktest`, `*_tests`), and the
//! largest functions. Read with the `elf` crate, as the loaders read images.

use std::collections::BTreeMap;
use std::process::ExitCode;

use elf::ElfBytes;
use elf::abi::{SHF_ALLOC, STT_FUNC};
use elf::endian::LittleEndian;

use crate::Result;

/// What [`breakdown`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// Loaded sections (`SHF_ALLOC`), name and bytes, in file order.
    pub sections: Vec<(String, u64)>,
    /// Function bytes per crate, largest first.
    pub crates: Vec<(String, u64)>,
    /// Function bytes of in-kernel tests.
    pub tests: u64,
    /// All function bytes.
    pub code: u64,
    /// The largest functions, largest first.
    pub largest: Vec<(String, u64)>,
}

/// The crate a demangled symbol belongs to: its first path segment, after `<`, `&`, `mut `,
/// `dyn ` (so `<hsync_kernel::X as core::fmt::Debug>::fmt` is `hsync_kernel`'s); an impl for a
/// primitive or generic type (`<u64 as core::fmt::Display>::fmt`) is the trait's crate's;
/// a name without a path (assembly, compiler builtins) is `(no path)`.
fn crate_of(name: &str) -> &str {
    if !name.contains("::") {
        return "(no path)";
    }
    if let Some((self_ty, rest)) = name.strip_prefix('<').and_then(|n| n.split_once(" as "))
        && !self_ty.contains("::")
    {
        return crate_of(rest);
    }
    let mut n = name;
    loop {
        let t = n
            .trim_start_matches(['<', '&', '*', '('])
            .trim_start_matches("mut ")
            .trim_start_matches("const ")
            .trim_start_matches("dyn ");
        if t.len() == n.len() {
            break;
        }
        n = t;
    }
    let end = n.find([':', ' ', '<', '>', '(']).unwrap_or(n.len());
    match &n[..end] {
        "" => "?",
        // Inherent methods of primitive types live in core.
        p if PRIMITIVES.contains(&p) => "core",
        c => c,
    }
}

const PRIMITIVES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32",
    "f64", "char", "str", "bool",
];

fn is_test(name: &str) -> bool {
    name.contains("ktest") || name.contains("_tests::") || name.contains("::tests::")
}

/// Reads `file`'s section headers and function symbols.
pub fn breakdown(file: &[u8], top: usize) -> Result<Breakdown> {
    let elf = ElfBytes::<LittleEndian>::minimal_parse(file)
        .map_err(|e| format!("not an ELF file: {e:?}"))?;
    let mut b = Breakdown::default();
    if let (Some(headers), Some(names)) = elf
        .section_headers_with_strtab()
        .map_err(|e| format!("section headers: {e:?}"))?
    {
        for sh in headers
            .iter()
            .filter(|s| s.sh_flags & u64::from(SHF_ALLOC) != 0)
        {
            let name = names.get(sh.sh_name as usize).unwrap_or("?");
            b.sections.push((name.to_owned(), sh.sh_size));
        }
    }
    let (symbols, strings) = elf
        .symbol_table()
        .map_err(|e| format!("symbol table: {e:?}"))?
        .ok_or("no symbol table (a stripped file?)")?;
    let mut crates: BTreeMap<String, u64> = BTreeMap::new();
    let mut functions = Vec::new();
    for sym in symbols
        .iter()
        .filter(|s| s.st_symtype() == STT_FUNC && s.st_size > 0)
    {
        let raw = strings.get(sym.st_name as usize).unwrap_or("?");
        let name = crate::symbolize::demangle(raw);
        b.code += sym.st_size;
        if is_test(&name) {
            b.tests += sym.st_size;
        }
        *crates.entry(crate_of(&name).to_owned()).or_default() += sym.st_size;
        functions.push((name, sym.st_size));
    }
    b.crates = crates.into_iter().collect();
    b.crates
        .sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    functions.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    functions.truncate(top);
    b.largest = functions;
    Ok(b)
}

/// The report `cargo xtask size` prints.
pub fn report(b: &Breakdown) -> String {
    let pct = |n: u64| {
        if b.code == 0 {
            0.0
        } else {
            n as f64 * 100.0 / b.code as f64
        }
    };
    let mut s = String::from("loaded sections:\n");
    for (name, bytes) in &b.sections {
        s.push_str(&format!("  {name:<24} {bytes:>10}\n"));
    }
    s.push_str(&format!(
        "function bytes: {} in all; in-kernel tests (ktest, *_tests): {} ({:.1}%)\nby crate:\n",
        b.code,
        b.tests,
        pct(b.tests)
    ));
    for (name, bytes) in &b.crates {
        s.push_str(&format!("  {name:<24} {bytes:>10} {:>5.1}%\n", pct(*bytes)));
    }
    s.push_str("largest functions:\n");
    for (name, bytes) in &b.largest {
        s.push_str(&format!("  {bytes:>8} {name}\n"));
    }
    s
}

/// `cargo xtask size`: builds (release unless `debug`) and reports on the kernel.
pub fn run(debug: bool, top: usize) -> Result<ExitCode> {
    let a = crate::artifacts::build(!debug)?;
    let file =
        std::fs::read(&a.kernel).map_err(|e| format!("cannot read {}: {e}", a.kernel.display()))?;
    let stripped = crate::artifacts::stripped(&a.kernel)?.len();
    println!("{} ({stripped} bytes stripped)", a.kernel.display());
    print!("{}", report(&breakdown(&file, top)?));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_charged_to_their_crate() {
        assert_eq!(crate_of("hsync_kernel::syscall::call"), "hsync_kernel");
        assert_eq!(
            crate_of("<hsync_kernel::mm::Frame as core::fmt::Debug>::fmt"),
            "hsync_kernel"
        );
        assert_eq!(crate_of("<&T as core::fmt::Display>::fmt"), "core");
        assert_eq!(crate_of("<u64 as core::fmt::Debug>::fmt"), "core");
        assert_eq!(crate_of("<&mut talc::Talc<O>>::malloc"), "talc");
        assert_eq!(crate_of("memcpy"), "(no path)");
        assert_eq!(crate_of("u128::fmt_u128"), "core");
        assert!(is_test("hsync_kernel::mm::user_tests::elf_load_tiny"));
        assert!(is_test("hsync_kernel::ktest::run_all"));
        assert!(!is_test("hsync_kernel::mm::vmm::init"));
    }

    #[test]
    fn this_binary_breaks_down() {
        // The test binary itself: it has a symbol table, sections and functions of this crate.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let b = breakdown(&me, 5).unwrap();
        assert!(b.sections.iter().any(|(n, _)| n == ".text"));
        assert!(b.crates.iter().any(|(n, _)| n == "xtask"));
        assert_eq!(b.largest.len(), 5);
        assert!(b.largest.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!(b.tests > 0 && b.tests < b.code);
        assert_eq!(b.crates.iter().map(|c| c.1).sum::<u64>(), b.code);
        let text = report(&b);
        assert!(text.contains("by crate:\n") && text.contains("largest functions:\n"));
        assert!(breakdown(b"not an elf", 5).is_err());
    }
}
