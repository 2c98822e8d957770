//! Packs files into a PVH boot bundle (an initfs archive with a `kernel` entry), the one module a
//! PVH loader can pass: `cargo run -p hsync-bootcore --example mkbundle -- OUT NAME=PATH...`.
//! `cargo xtask` does the same with `hsync_initfs::Builder`; this is for manual runs.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or("usage: mkbundle OUT NAME=PATH...")?;
    let mut builder = hsync_initfs::Builder::new();
    for spec in args {
        let (name, path) = spec.split_once('=').ok_or("entries are NAME=PATH")?;
        builder.add(name, std::fs::read(path)?)?;
    }
    std::fs::write(out, builder.finish())?;
    Ok(())
}
