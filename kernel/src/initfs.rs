//! The initfs boot module: validated once at boot. Root will unpack servers and the compiled
//! system manifest from it (kernel-core milestone); until then the kernel only checks and lists it.

use alloc::format;
use hsync_initfs::Archive;

use crate::boot::BootInfo;
use crate::ensure;
use crate::ktest::{KTest, TestResult};

/// The initfs image, if the loader passed one and it parses.
pub fn open(info: &BootInfo) -> Option<Archive<'static>> {
    let module = info.initfs()?;
    let len = usize::try_from(module.len).ok()?;
    let virt = crate::mm::phys_to_virt(module.phys);
    // SAFETY: boot modules lie in EXECUTABLE_AND_MODULES memory, which the kernel direct-maps,
    // never hands to the PMM and never writes, so the bytes stay valid and unchanged for 'static.
    let bytes = unsafe { core::slice::from_raw_parts(virt as *const u8, len) };
    match Archive::parse(bytes) {
        Ok(archive) => Some(archive),
        Err(e) => {
            log::warn!("initfs: module {} is not a valid initfs: {e}", module.path);
            None
        }
    }
}

/// Logs the initfs's files, one line.
pub fn log_contents(info: &BootInfo) {
    let Some(archive) = open(info) else {
        log::info!("initfs: none");
        return;
    };
    let mut names = alloc::string::String::new();
    for entry in archive.entries() {
        names.push_str(&format!(" {} ({} B)", entry.name, entry.data.len()));
    }
    log::info!("initfs: {} file(s):{names}", archive.len());
}

/// In-kernel tests of the initfs module.
pub const TESTS: &[KTest] = &[KTest {
    name: "initfs::module_parses",
    run: module_parses,
}];

/// The initfs that xtask packs reaches the kernel intact: it parses and holds its version file.
fn module_parses() -> TestResult {
    let info = crate::boot::info().ok_or("boot info not collected")?;
    let archive = open(info).ok_or("no valid initfs module")?;
    let version = archive
        .get("version")
        .ok_or("initfs has no `version` file")?;
    let expected = format!("HSYNC-OS {}\n", env!("CARGO_PKG_VERSION"));
    ensure!(
        version == expected.as_bytes(),
        "version file is {:?}",
        core::str::from_utf8(version)
    );
    Ok(())
}
