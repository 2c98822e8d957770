//! Links the program with libhsync's user linker script (image at `USER_IMAGE_BASE`, one
//! segment per permission).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rustc-link-arg-bins=-T{dir}/../../../libhsync/user.ld");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    println!("cargo:rerun-if-changed=../../../libhsync/user.ld");
}
