//! `cargo xtask`: the only entry point for building, running and testing HSYNC-OS.
//!
//! Every subcommand is what CI runs too; `cargo xtask <cmd> --help` explains each. xtask refuses
//! to hide what it does: each step prints one progress line, and every external command it
//! needs is checked up front with the command that installs it.

mod artifacts;
mod bench;
mod bench_doc;
mod check;
mod fuzz;
mod images;
mod manifest;
mod new_server;
mod qemu;
mod screenshot;
mod size;
mod symbolize;
mod test;
mod toolchain;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Build, run and test HSYNC-OS.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the boot shim, the kernel and the initfs image.
    Build {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Build everything and boot it in QEMU (direct boot of the shim; TCG unless --accel kvm).
    ///
    /// Exit status: 0 when the guest powers off, 124 after --timeout, non-zero on a kernel panic.
    Run(RunArgs),
    /// Run every host unit test and every in-QEMU suite; ends with
    /// `N passed, N failed, N skipped`.
    Test {
        /// Only run suites/host crates whose name contains this string.
        #[arg(long)]
        filter: Option<String>,
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
        /// A Limine binary release directory (default: $LIMINE_DIR) for the `limine-*` suites;
        /// without one they are skipped.
        #[arg(long, value_name = "DIR")]
        limine: Option<std::path::PathBuf>,
        /// CPUs of every QEMU suite's machine (1..=64; the `smp` suite always uses 4).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
        smp: u32,
    },
    /// Write `target/hsync-os.iso`, a hybrid BIOS/UEFI image for CD or USB stick (see
    /// docs/hardware.md): GRUB + the shim (Multiboot2) by default, Limine with --limine DIR or
    /// LIMINE_DIR (a Limine binary release).
    Iso {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
        /// A Limine binary release directory (default: $LIMINE_DIR); boots the kernel without
        /// the shim.
        #[arg(long, value_name = "DIR")]
        limine: Option<std::path::PathBuf>,
        /// Kernel command line baked into the image (e.g. `log=debug`).
        #[arg(long, default_value = "")]
        cmdline: String,
    },
    /// Check formatting (rustfmt) and lints (clippy -D warnings) for host and target crates.
    Check,
    /// Boot the bench image and measure IPC, null syscall and yield (median, p99, min in ns and
    /// TSC cycles; IPC instructions under -icount), the boot time to `system ready` (5 boots)
    /// and the release sizes; writes target/bench/latest.json (--markdown: docs/performance.md).
    Bench {
        /// Build with the debug profile instead of release.
        #[arg(long)]
        debug: bool,
        /// Number of CPUs (1..=64; the instruction-count rows need 1).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        smp: u32,
        /// Boot nothing: print docs/performance.md (HSYNC's claims beside the figures) from
        /// the last target/bench/latest.json (`cargo xtask bench --markdown > docs/performance.md`).
        #[arg(long)]
        markdown: bool,
    },
    /// Boot the system, type `help` (and `wave on` with --wave) and write a PNG of the screen:
    /// VGA text mode (direct boot), or with --uefi the framebuffer (GRUB ISO under OVMF).
    /// Writes target/screenshots/{console,uefi-framebuffer}[-wave].png, or into --out DIR
    /// (docs/img for the README's pictures).
    Screenshot {
        /// The framebuffer console: boot the ISO under UEFI firmware (OVMF).
        #[arg(long)]
        uefi: bool,
        /// Switch the HSYNC-Wave visualizer on before the picture.
        #[arg(long)]
        wave: bool,
        /// Directory to write the PNG into.
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Run the in-guest system-call fuzzer: rounds of random and mutated system calls in
    /// several processes and threads, each round checked against the kernel's counters; prints
    /// calls per second, failures and the seed that reproduces a run.
    Fuzz(fuzz::FuzzArgs),
    /// Where the kernel's bytes go, from its symbol table: loaded sections, code per crate, the
    /// in-kernel tests' share, the largest functions (release build unless --debug).
    Size {
        /// Build with the debug profile instead of release.
        #[arg(long)]
        debug: bool,
        /// How many of the largest functions to list.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
    /// Validate the system manifest (initfs/system.toml, or --check FILE) and print the start
    /// order and every server's grants; errors name the file, line and column.
    Manifest {
        /// Validate this file instead of initfs/system.toml.
        #[arg(long, value_name = "FILE")]
        check: Option<std::path::PathBuf>,
    },
    /// Create a server: servers/NAME (from servers/template) and servers/NAME-api (from
    /// servers/template-api) with names substituted, both added to the workspace members, and a
    /// `[server.NAME]` entry in initfs/system.toml. See docs/servers.md.
    NewServer {
        /// The server's name: lowercase letters, digits and `-`, starting with a letter.
        name: String,
        /// An interrupt-driven driver: its main.rs from servers/template/src/irq.rs (a serve
        /// loop with an IRQ handler), its manifest entry granting an IRQ line and I/O ports.
        #[arg(long)]
        irq: bool,
        /// The workspace to create it in (default: this one).
        #[arg(long, value_name = "DIR")]
        root: Option<std::path::PathBuf>,
    },
}

/// Options of `cargo xtask run`.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Build with the release profile.
    #[arg(long)]
    pub release: bool,
    /// No window: serial console on stdout only.
    #[arg(long)]
    pub headless: bool,
    /// CPU accelerator. KVM on nested-virtualization hosts can be far slower than TCG.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,
    /// Number of CPUs (1..=64).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub smp: u32,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory: u32,
    /// Wait for gdb on localhost:1234 before the first instruction.
    #[arg(long)]
    pub gdb: bool,
    /// Stop QEMU after this many seconds (exit status 124).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Extra words for the kernel command line (e.g. `log=debug`).
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Boot `target/hsync-os.iso` (built as by `cargo xtask iso`) from the CD drive instead of
    /// the direct boot: SeaBIOS on `pc`, or OVMF on `q35` with --uefi. GRUB + the shim, or
    /// Limine with --limine DIR / LIMINE_DIR.
    #[arg(long)]
    pub iso: bool,
    /// With --iso: a Limine binary release directory (default: $LIMINE_DIR); the ISO boots the
    /// kernel through Limine instead of GRUB + the shim.
    #[arg(long, value_name = "DIR", requires = "iso")]
    pub limine: Option<std::path::PathBuf>,
    /// With --iso: boot through UEFI firmware (OVMF, `sudo apt-get install ovmf`).
    #[arg(long, requires = "iso")]
    pub uefi: bool,
    /// Stop QEMU when the guest resets (the shell's `reboot`, a triple fault) instead of
    /// booting it again like a real machine.
    #[arg(long)]
    pub no_reboot: bool,
    /// Arguments passed to QEMU verbatim.
    #[arg(last = true)]
    pub qemu_args: Vec<String>,
}

/// Which QEMU accelerator to use.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation (default; deterministic and always available).
    Tcg,
    /// Hardware virtualization through /dev/kvm.
    Kvm,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build { release } => artifacts::build(release).map(|_| ExitCode::SUCCESS),
        Command::Run(args) => qemu::run(&args),
        Command::Test {
            filter,
            release,
            limine,
            smp,
        } => {
            qemu::set_default_smp(smp);
            test::run(filter.as_deref(), release, limine)
        }
        Command::Iso {
            release,
            limine,
            cmdline,
        } => images::iso_command(release, limine, &cmdline).map(|_| ExitCode::SUCCESS),
        Command::Check => check::run().map(|_| ExitCode::SUCCESS),
        Command::Bench {
            debug,
            smp,
            markdown,
        } => bench::run(debug, smp, markdown),
        Command::NewServer { name, irq, root } => {
            let root = root.unwrap_or_else(artifacts::root);
            new_server::run(&name, &root, irq).map(|_| ExitCode::SUCCESS)
        }
        Command::Screenshot {
            uefi,
            wave,
            out,
            release,
        } => screenshot::run(uefi, wave, out.as_deref(), release).map(|_| ExitCode::SUCCESS),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::Size { debug, top } => size::run(debug, top),
        Command::Manifest { check } => manifest::run(check.as_deref()).map(|_| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// xtask's error: a message for the user.
pub type Result<T, E = String> = std::result::Result<T, E>;
