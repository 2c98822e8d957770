//! Booting images in QEMU: the command line, the serial stream, timeouts and exit statuses.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::symbolize::Symbolizer;
use crate::tools::{require, step};
use crate::{Accel, Result, RunArgs, artifacts};

/// I/O port of QEMU's isa-debug-exit device; the kernel writes 0x10 (success) or 0x11 (failure).
pub const DEBUG_EXIT_PORT: &str = "0xf4";
/// QEMU's exit status after the guest wrote 0x10 to the debug-exit port: `(0x10 << 1) | 1`.
pub const STATUS_SUCCESS: i32 = 33;
/// QEMU's exit status after the guest wrote 0x11 (failure, panic).
pub const STATUS_FAILURE: i32 = 35;
/// Our exit status when a timeout stopped QEMU (as coreutils' `timeout`).
pub const STATUS_TIMEOUT: u8 = 124;

/// What machine to emulate.
#[derive(Clone, Debug)]
pub struct Machine {
    /// TCG or KVM.
    pub accel: Accel,
    /// `-cpu` model; `None` picks `max` for TCG and `host` for KVM.
    pub cpu: Option<String>,
    /// CPUs.
    pub smp: u32,
    /// RAM in MiB.
    pub memory_mib: u32,
    /// No window.
    pub headless: bool,
    /// Wait for gdb on :1234.
    pub gdb: bool,
    /// A guest reset restarts the machine (the firmware boots again) instead of ending QEMU
    /// (`-no-reboot`, the default: a test that triple-faults stops at once).
    pub reboot: bool,
    /// Passed verbatim.
    pub extra: Vec<String>,
}

/// CPUs of a default [`Machine`] (`cargo xtask test --smp N` sets it for every suite).
static DEFAULT_SMP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Sets the CPU count of [`Machine::default`].
pub fn set_default_smp(cpus: u32) {
    DEFAULT_SMP.store(cpus, std::sync::atomic::Ordering::Relaxed);
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            accel: Accel::Tcg,
            cpu: None,
            smp: DEFAULT_SMP.load(std::sync::atomic::Ordering::Relaxed),
            memory_mib: 256,
            headless: true,
            gdb: false,
            reboot: false,
            extra: Vec::new(),
        }
    }
}

/// One boot module for QEMU's Multiboot1 direct boot: a file and the words after its path.
#[derive(Clone, Debug)]
pub struct Module {
    /// Host path; QEMU passes it as the first word of the module string.
    pub path: PathBuf,
    /// The module's command line.
    pub args: String,
}

/// How the guest is booted.
#[derive(Clone, Debug)]
pub enum Boot {
    /// `-kernel <elf> -initrd "<module>,<module>..."` (QEMU picks Multiboot1 when the ELF has it,
    /// else PVH).
    Direct {
        /// The ELF QEMU loads (the shim).
        loader: PathBuf,
        /// Its modules; for the shim, module 0 is the kernel.
        modules: Vec<Module>,
        /// `-append`, if any.
        append: Option<String>,
    },
    /// Boot an ISO from the CD drive: SeaBIOS on `pc`, or OVMF (UEFI) on `q35`.
    Cdrom {
        /// The image.
        iso: PathBuf,
        /// Boot through UEFI firmware instead of the BIOS.
        uefi: bool,
    },
}

/// How a QEMU run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest powered off (ACPI) or wrote 0x10 to the debug-exit port.
    Success,
    /// The guest wrote 0x11 to the debug-exit port (test failure, kernel panic).
    Failure,
    /// QEMU exited with another status (its own error, a signal).
    QemuError(Option<i32>),
    /// Stopped by us after the timeout.
    Timeout,
}

impl Outcome {
    /// Maps QEMU's exit status.
    pub fn from_status(code: Option<i32>) -> Self {
        match code {
            Some(0) | Some(STATUS_SUCCESS) => Outcome::Success,
            Some(STATUS_FAILURE) => Outcome::Failure,
            other => Outcome::QemuError(other),
        }
    }

    /// The exit status `cargo xtask run` reports.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Failure => ExitCode::from(1),
            Outcome::QemuError(Some(c)) => ExitCode::from(u8::try_from(c).unwrap_or(1).max(1)),
            Outcome::QemuError(None) => ExitCode::from(2),
            Outcome::Timeout => ExitCode::from(STATUS_TIMEOUT),
        }
    }
}

/// The QEMU command line for `machine` booted by `boot`.
pub fn command(machine: &Machine, boot: &Boot) -> Result<Command> {
    let qemu = require("qemu-system-x86_64", "qemu-system-x86")?;
    let mut cmd = Command::new(qemu);
    let machine_type = match boot {
        Boot::Cdrom { uefi: true, .. } => "q35",
        _ => "pc",
    };
    cmd.args(["-M", machine_type, "-serial", "stdio"]);
    if !machine.reboot {
        cmd.arg("-no-reboot");
    }
    cmd.args([
        "-device",
        &format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT},iosize=0x04"),
    ]);
    cmd.args([
        "-m",
        &format!("{}M", machine.memory_mib),
        "-smp",
        &machine.smp.to_string(),
    ]);
    let (accel, default_cpu) = match machine.accel {
        Accel::Tcg => ("tcg", "max"),
        Accel::Kvm => ("kvm", "host"),
    };
    cmd.args([
        "-accel",
        accel,
        "-cpu",
        machine.cpu.as_deref().unwrap_or(default_cpu),
    ]);
    if machine.headless || !has_display() {
        cmd.args(["-display", "none"]);
    }
    if machine.gdb {
        cmd.args(["-s", "-S"]);
    }
    match boot {
        Boot::Direct {
            loader,
            modules,
            append,
        } => {
            cmd.arg("-kernel").arg(loader);
            if !modules.is_empty() {
                cmd.arg("-initrd").arg(initrd_arg(modules)?);
            }
            if let Some(append) = append {
                cmd.args(["-append", append]);
            }
        }
        Boot::Cdrom { iso, uefi } => {
            if *uefi {
                let (code, vars) = crate::images::ovmf()?;
                cmd.arg("-drive");
                cmd.arg(format!(
                    "if=pflash,format=raw,readonly=on,file={}",
                    code.display()
                ));
                cmd.arg("-drive")
                    .arg(format!("if=pflash,format=raw,file={}", vars.display()));
            }
            cmd.arg("-cdrom").arg(iso);
        }
    }
    cmd.args(&machine.extra);
    Ok(cmd)
}

/// QEMU's `-initrd` syntax: modules separated by commas, each "path args".
fn initrd_arg(modules: &[Module]) -> Result<String> {
    let mut parts = Vec::new();
    for m in modules {
        let path = m.path.to_str().ok_or("module path is not UTF-8")?;
        if path.contains([',', ' ']) || m.args.contains(',') {
            return Err(format!(
                "QEMU cannot pass `{path} {}`: no commas or spaces in paths",
                m.args
            ));
        }
        parts.push(if m.args.is_empty() {
            path.to_owned()
        } else {
            format!("{path} {}", m.args)
        });
    }
    Ok(parts.join(","))
}

fn has_display() -> bool {
    std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// Reads `stdout` (QEMU's serial console) line by line on a thread: lines arrive on the
/// receiver without their `\r\n`, invalid UTF-8 replaced; the channel closes at EOF.
pub fn line_reader(
    stdout: impl Read + Send + 'static,
) -> (mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut buf = Vec::new();
        while lines.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            if tx.send(line).is_err() {
                break;
            }
            buf.clear();
        }
    });
    (rx, reader)
}

/// The default machine plus a QEMU monitor on the unix socket `sock` (for `sendkey`,
/// `pmemsave`, `screendump` in tests).
pub fn with_monitor(sock: &Path) -> Machine {
    Machine {
        extra: vec![
            "-monitor".into(),
            format!("unix:{},server=on,wait=off", sock.display()),
        ],
        ..Machine::default()
    }
}

/// The result of a captured run.
#[derive(Debug)]
pub struct Captured {
    /// How QEMU ended.
    pub outcome: Outcome,
    /// Serial output (symbolized) followed by QEMU's stderr.
    pub output: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `cmd`, streaming serial lines through `symbolizer` (and echoing them when `echo`), and
/// kills QEMU after `timeout`.
pub fn run_captured(
    cmd: Command,
    symbolizer: &Symbolizer,
    timeout: Option<Duration>,
    echo: bool,
    interactive: bool,
) -> Result<Captured> {
    capture(cmd, symbolizer, timeout, echo, interactive, None).map(|(c, _)| c)
}

/// How long a run stopped by [`run_until`] goes on after the line appeared (to catch a fault
/// right after it).
const UNTIL_GRACE: Duration = Duration::from_secs(2);

/// As [`run_captured`] (no echo, no stdin), but stops QEMU [`UNTIL_GRACE`] after a serial line
/// containing `needle` appeared (outcome [`Outcome::Timeout`]); also returns when it appeared.
pub fn run_until(
    cmd: Command,
    symbolizer: &Symbolizer,
    timeout: Duration,
    needle: &str,
) -> Result<(Captured, Option<Duration>)> {
    capture(cmd, symbolizer, Some(timeout), false, false, Some(needle))
}

fn capture(
    mut cmd: Command,
    symbolizer: &Symbolizer,
    timeout: Option<Duration>,
    echo: bool,
    interactive: bool,
    until: Option<&str>,
) -> Result<(Captured, Option<Duration>)> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if interactive {
        Stdio::inherit()
    } else {
        Stdio::null()
    });
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start QEMU: {e}"))?;

    let stdout = child.stdout.take().ok_or("no QEMU stdout")?;
    let (rx, reader) = line_reader(stdout);
    let mut stderr = child.stderr.take().ok_or("no QEMU stderr")?;
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let mut output = String::new();
    let mut timed_out = false;
    let mut seen_at: Option<Duration> = None;
    loop {
        if seen_at.is_some_and(|at| start.elapsed() >= at + UNTIL_GRACE) {
            timed_out = true;
            break;
        }
        let wait = match timeout {
            Some(t) => match t.checked_sub(start.elapsed()) {
                Some(left) => left.min(Duration::from_millis(200)),
                None => {
                    timed_out = true;
                    break;
                }
            },
            None => Duration::from_millis(200),
        };
        match rx.recv_timeout(wait) {
            Ok(line) => {
                let line = symbolizer.annotate(&line);
                if echo {
                    println!("{line}");
                }
                if seen_at.is_none() && until.is_some_and(|n| line.contains(n)) {
                    seen_at = Some(start.elapsed());
                }
                output.push_str(&line);
                output.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if timed_out {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
    let _ = reader.join();
    // Lines that arrived between the last poll and the kill.
    for line in rx.try_iter() {
        let line = symbolizer.annotate(&line);
        if echo {
            println!("{line}");
        }
        output.push_str(&line);
        output.push('\n');
    }
    let stderr = err_reader.join().unwrap_or_default();
    if !stderr.trim().is_empty() {
        if echo {
            eprint!("{stderr}");
        }
        output.push_str(&stderr);
    }
    let outcome = if timed_out {
        Outcome::Timeout
    } else {
        Outcome::from_status(status.code())
    };
    Ok((
        Captured {
            outcome,
            output,
            elapsed: start.elapsed(),
        },
        seen_at,
    ))
}

/// The standard direct boot of the system: shim, kernel (+ command line), initfs.
pub fn system_boot(a: &artifacts::Artifacts, cmdline: &str) -> Boot {
    boot_with_initfs(a, &a.initfs, cmdline)
}

/// A direct boot of shim and kernel (+ command line) with the initfs image `initfs`.
pub fn boot_with_initfs(a: &artifacts::Artifacts, initfs: &Path, cmdline: &str) -> Boot {
    Boot::Direct {
        loader: a.shim.clone(),
        modules: vec![
            Module {
                path: a.kernel.clone(),
                args: cmdline.trim().to_owned(),
            },
            Module {
                path: initfs.to_owned(),
                args: "initfs".to_owned(),
            },
        ],
        append: None,
    }
}

/// `cargo xtask run`.
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    // The Limine folder is checked (and its tool built) before the system build.
    let limine = match args.iso {
        true => crate::images::limine_dir(args.limine.clone())
            .as_deref()
            .map(crate::images::Limine::prepare)
            .transpose()?,
        false => None,
    };
    let a = artifacts::build(args.release)?;
    let machine = Machine {
        accel: args.accel,
        cpu: None,
        smp: args.smp,
        memory_mib: args.memory,
        headless: args.headless,
        gdb: args.gdb,
        reboot: !args.no_reboot,
        extra: args.qemu_args.clone(),
    };
    if args.accel == Accel::Kvm && !Path::new("/dev/kvm").exists() {
        return Err("--accel kvm: /dev/kvm does not exist on this machine".into());
    }
    if args.uefi && !args.iso {
        return Err("--uefi needs --iso (direct boot has no firmware choice)".into());
    }
    let boot = if args.iso {
        Boot::Cdrom {
            iso: crate::images::any_iso(&a, limine.as_ref(), &args.cmdline)?,
            uefi: args.uefi,
        }
    } else {
        system_boot(&a, &args.cmdline)
    };
    let cmd = command(&machine, &boot)?;
    if args.gdb {
        println!("QEMU waits for gdb. In another terminal run:");
        println!(
            "  gdb -q {} -ex 'target remote localhost:1234' -ex 'hbreak hsync_kernel::kmain' -ex continue",
            a.kernel.display()
        );
    }
    step(&format!(
        "starting QEMU ({}, {} MiB, {} CPU{}){}",
        if args.accel == Accel::Kvm {
            "KVM"
        } else {
            "TCG"
        },
        args.memory,
        args.smp,
        if args.smp == 1 { "" } else { "s" },
        args.timeout
            .map(|t| format!(", timeout {t} s"))
            .unwrap_or_default()
    ));
    let symbolizer = Symbolizer::new(&a.kernel);
    let timeout = args.timeout.map(Duration::from_secs);
    let captured = run_captured(cmd, &symbolizer, timeout, true, true)?;
    match captured.outcome {
        Outcome::Timeout => step(&format!(
            "timeout after {} s: QEMU stopped",
            captured.elapsed.as_secs()
        )),
        Outcome::Success => step("guest powered off"),
        Outcome::Failure => step("guest reported failure (kernel panic or failed tests)"),
        Outcome::QemuError(code) => step(&format!("QEMU exited with status {code:?}")),
    }
    Ok(captured.outcome.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_map_as_documented() {
        assert_eq!(Outcome::from_status(Some(0)), Outcome::Success);
        assert_eq!(Outcome::from_status(Some(33)), Outcome::Success);
        assert_eq!(Outcome::from_status(Some(35)), Outcome::Failure);
        assert_eq!(Outcome::from_status(Some(1)), Outcome::QemuError(Some(1)));
        assert_eq!(Outcome::from_status(None), Outcome::QemuError(None));
        assert_eq!(Outcome::Timeout.exit_code(), ExitCode::from(124));
        assert_eq!(Outcome::Failure.exit_code(), ExitCode::from(1));
        assert_eq!(Outcome::Success.exit_code(), ExitCode::SUCCESS);
    }

    #[test]
    fn initrd_joins_modules_and_rejects_unsafe_paths() {
        let ok = [
            Module {
                path: "/a/kernel".into(),
                args: "test log=debug".into(),
            },
            Module {
                path: "/a/initfs.img".into(),
                args: "initfs".into(),
            },
        ];
        assert_eq!(
            initrd_arg(&ok).unwrap(),
            "/a/kernel test log=debug,/a/initfs.img initfs"
        );
        let bad = [Module {
            path: "/a b/kernel".into(),
            args: String::new(),
        }];
        assert!(initrd_arg(&bad).is_err());
        let bad = [Module {
            path: "/a/kernel".into(),
            args: "x,y".into(),
        }];
        assert!(initrd_arg(&bad).is_err());
    }
}
