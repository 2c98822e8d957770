//! `cargo xtask bench`: boots the bench image (root = selftest with an initfs `bench` file),
//! reads its `[bench] name=... unit=... median=... p99=... min=... iterations=... cycles_*=...`
//! lines, prints a table and writes `target/bench/latest.json`. A second boot under QEMU
//! `-icount shift=0` (where the TSC counts guest instructions) measures the IPC round trip in
//! instructions (`ipc.call_reply_recv.instructions`). Then the phase engine's host bench
//! (`hsync-phase-core`'s `phase_bench` example, release) adds single-value figures
//! (`phase.dudect_t`, `phase.transform_gbps`, ...). Then the normal image is booted five times,
//! host-timed from QEMU's start to root's `system ready:` line (`boot.qemu_to_ready`: median,
//! max as p99, min), and the release images are weighed: `size.kernel` (the kernel stripped),
//! `size.initfs` (the normal initfs, servers stripped), `size.server.<name>` (each stripped
//! program; `root` too). `cargo xtask bench --markdown` prints docs/performance.md from the last
//! `latest.json` without booting anything. A boot of the system ISO under OVMF (a 1024x768
//! framebuffer) switches the visualizer on, uses the shell for a while and reads the wave frame
//! times vga measured (`display.frame`: render + present of one frame, median/p99;
//! `display.fps`). Benchmarks are never assertions.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use crate::Result;
use crate::artifacts::{self, target_dir, write_file};
use crate::qemu::{self, Machine};
use crate::symbolize::Symbolizer;
use crate::test::shell::{Event, HELP_END, Input, Step, drive};
use crate::tools::step;

/// One measured figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// Benchmark name, e.g. `ipc.call_reply_recv`.
    pub name: String,
    /// `ns` or `instructions`.
    pub unit: String,
    /// Median, in `unit`.
    pub median: u64,
    /// 99th percentile, in `unit`.
    pub p99: u64,
    /// Minimum, in `unit`.
    pub min: u64,
    /// Measured iterations (after warm-up).
    pub iterations: u64,
    /// TSC cycles: (median, p99, min), when reported.
    pub cycles: Option<(u64, u64, u64)>,
}

/// Parses every `[bench] name=...` line of `output`.
pub fn parse(output: &str) -> Vec<Figure> {
    let mut figures = Vec::new();
    for line in output.lines() {
        let Some(rest) = line.find("[bench] ").map(|i| &line[i + 8..]) else {
            continue;
        };
        let kv: BTreeMap<&str, &str> = rest
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let num = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok());
        let (Some(name), Some(unit)) = (kv.get("name"), kv.get("unit")) else {
            continue;
        };
        let (Some(median), Some(p99), Some(min), Some(iterations)) =
            (num("median"), num("p99"), num("min"), num("iterations"))
        else {
            continue;
        };
        let cycles = match (num("cycles_median"), num("cycles_p99"), num("cycles_min")) {
            (Some(a), Some(b), Some(c)) => Some((a, b, c)),
            _ => None,
        };
        figures.push(Figure {
            name: (*name).to_owned(),
            unit: (*unit).to_owned(),
            median,
            p99,
            min,
            iterations,
            cycles,
        });
    }
    figures
}

/// The JSON file: a list of `{"name","unit","median","p99","min","iterations"}` (plus
/// `cycles_median`, `cycles_p99`, `cycles_min` when measured).
pub fn to_json(figures: &[Figure]) -> String {
    let mut out = String::from("[\n");
    for (i, f) in figures.iter().enumerate() {
        out.push_str(&format!(
            "  {{\"name\": \"{}\", \"unit\": \"{}\", \"median\": {}, \"p99\": {}, \"min\": {}, \"iterations\": {}",
            f.name, f.unit, f.median, f.p99, f.min, f.iterations
        ));
        if let Some((m, p, n)) = f.cycles {
            out.push_str(&format!(
                ", \"cycles_median\": {m}, \"cycles_p99\": {p}, \"cycles_min\": {n}"
            ));
        }
        out.push('}');
        if i + 1 < figures.len() {
            out.push(',');
        }
        out.push('\n');
    }
    out.push_str("]\n");
    out
}

fn table(figures: &[Figure]) -> String {
    let mut s = format!(
        "{:<36} {:>12} {:>12} {:>12} {:>10} {:>12} {:>12} {:>12}\n",
        "name", "median", "p99", "min", "iters", "cyc median", "cyc p99", "cyc min"
    );
    for f in figures {
        let unit = if f.unit == "ns" { " ns" } else { " in" };
        let (cm, cp, cn) = f
            .cycles
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .unwrap_or_default();
        s.push_str(&format!(
            "{:<36} {:>12} {:>12} {:>12} {:>10} {:>12} {:>12} {:>12}\n",
            f.name,
            format!("{}{unit}", f.median),
            format!("{}{unit}", f.p99),
            format!("{}{unit}", f.min),
            f.iterations,
            cm,
            cp,
            cn
        ));
    }
    s
}

/// Where `cargo xtask bench` writes its figures.
fn latest_path() -> std::path::PathBuf {
    target_dir().join("bench").join("latest.json")
}

/// `cargo xtask bench [--markdown]`.
pub fn run(debug: bool, smp: u32, markdown: bool) -> Result<ExitCode> {
    if markdown {
        let path = latest_path();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read {} ({e}); run `cargo xtask bench` first",
                path.display()
            )
        })?;
        print!(
            "{}",
            crate::bench_doc::markdown(&crate::bench_doc::parse_json(&text)?)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let release = !debug;
    let a = artifacts::build(release)?;
    let symbolizer = Symbolizer::new(&a.kernel);
    let mut figures = Vec::new();
    let mut display_fps = None;
    let mut ok = true;
    for (what, initfs, extra) in [
        ("TSC timing", &a.initfs_bench, vec![]),
        (
            "-icount shift=0",
            &a.initfs_icount,
            vec!["-icount".to_owned(), "shift=0".to_owned()],
        ),
    ] {
        step(&format!("bench boot ({what})"));
        let machine = Machine {
            smp,
            extra,
            ..Machine::default()
        };
        let cmd = qemu::command(
            &machine,
            &qemu::boot_with_initfs(&a, initfs, "test no-ktest"),
        )?;
        let run = qemu::run_captured(
            cmd,
            &symbolizer,
            Some(Duration::from_secs(900)),
            false,
            false,
        )?;
        let got = parse(&run.output);
        if got.is_empty() || !run.output.contains("[bench] done") {
            ok = false;
            eprintln!("---- bench output ({what}) ----\n{}----", run.output);
        }
        figures.extend(got);
    }
    step("display: wave frames on the framebuffer (GRUB ISO under OVMF)");
    match display(&a, &symbolizer) {
        Ok((frame, fps)) => {
            figures.push(frame);
            display_fps = Some(fps);
        }
        Err(e) => {
            ok = false;
            eprintln!("display bench: {e}");
        }
    }
    step("phase engine (host, release)");
    let scalars = match phase_core_bench() {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => {
            ok = false;
            eprintln!("phase engine bench printed no figures");
            Vec::new()
        }
        Err(e) => {
            ok = false;
            eprintln!("phase engine bench: {e}");
            Vec::new()
        }
    };
    let mut scalars = scalars;
    step("boot time: QEMU start to `system ready`, 5 boots");
    match boot_to_ready(&a, &symbolizer, smp) {
        Ok(f) => figures.push(f),
        Err(e) => {
            ok = false;
            eprintln!("boot.qemu_to_ready: {e}");
        }
    }
    if release {
        scalars.extend(sizes(&a)?);
    }
    scalars.push(environment(smp));
    scalars.extend(display_fps);
    print!("{}", table(&figures));
    print!("{}", scalar_table(&scalars));
    let path = latest_path();
    write_file(&path, to_json_with(&figures, &scalars).as_bytes())?;
    step(&format!("wrote {}", path.display()));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Boots the normal image [`BOOTS`] times and times QEMU's start to root's `system ready:` line
/// on the host (each boot is stopped shortly after the line).
fn boot_to_ready(a: &artifacts::Artifacts, symbolizer: &Symbolizer, smp: u32) -> Result<Figure> {
    let mut ns = Vec::new();
    for i in 0..BOOTS {
        let machine = Machine {
            smp,
            ..Machine::default()
        };
        let cmd = qemu::command(&machine, &qemu::system_boot(a, ""))?;
        let (run, ready) =
            qemu::run_until(cmd, symbolizer, Duration::from_secs(60), "system ready:")?;
        let Some(t) = ready else {
            return Err(format!(
                "boot {} never printed `system ready:`:\n{}",
                i + 1,
                run.output
            ));
        };
        ns.push(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX));
    }
    Ok(distribution("boot.qemu_to_ready", ns))
}

/// Boots timed for `boot.qemu_to_ready`.
const BOOTS: usize = 5;

/// A [`Figure`] (unit ns) from a handful of samples: median, max (as p99), min.
fn distribution(name: &str, mut ns: Vec<u64>) -> Figure {
    ns.sort_unstable();
    Figure {
        name: name.to_owned(),
        unit: "ns".to_owned(),
        median: ns.get(ns.len() / 2).copied().unwrap_or(0),
        p99: ns.last().copied().unwrap_or(0),
        min: ns.first().copied().unwrap_or(0),
        iterations: ns.len() as u64,
        cycles: None,
    }
}

/// `size.kernel`, `size.initfs`, `size.server.<name>` of the release build, in bytes.
fn sizes(a: &artifacts::Artifacts) -> Result<Vec<Scalar>> {
    let bytes = |name: &str, n: u64, what: &str| Scalar {
        name: name.to_owned(),
        unit: "bytes".to_owned(),
        value: n as f64,
        extra: vec![("what".to_owned(), what.to_owned())],
    };
    let len = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| format!("cannot stat {}: {e}", p.display()))
    };
    let kernel = artifacts::stripped(&a.kernel)?.len() as u64;
    let mut out = vec![
        bytes("size.kernel", kernel, "stripped"),
        bytes("size.initfs", len(&a.initfs)?, "initfs.img"),
    ];
    let mut programs = vec![("root".to_owned(), "hsync-root".to_owned())];
    for s in crate::manifest::system()?.servers {
        if !programs.iter().any(|(_, c)| *c == s.binary) {
            programs.push((s.name, s.binary));
        }
    }
    for (name, krate) in programs {
        // The copies the release initfs packed (artifacts::build strips them).
        let p = artifacts::out_dir().join("stripped").join(&krate);
        if p.is_file() {
            out.push(bytes(&format!("size.server.{name}"), len(&p)?, "stripped"));
        }
    }
    Ok(out)
}

/// Where the figures were measured: host CPU, CPUs given to the guest, QEMU's version.
fn environment(smp: u32) -> Scalar {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let host_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let qemu = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    Scalar {
        name: "environment".to_owned(),
        unit: "info".to_owned(),
        value: f64::from(smp),
        extra: vec![
            ("host_cpu".to_owned(), cpu),
            ("host_cpus".to_owned(), host_cpus.to_string()),
            ("qemu".to_owned(), qemu),
            ("accel".to_owned(), "tcg".to_owned()),
        ],
    }
}

// ---- The display: wave frames on a framebuffer ------------------------------------------------

/// The shell session of the display bench: `wave on`, then the shell in use (commands typed
/// while the wave runs, about 1.5 s apart), then `display`, which reports the frame times vga
/// measured (render + present of each wave frame, the last 256 frames) and the frame rate.
const DISPLAY_SESSION: &[Step] = &[
    Step {
        after: "HSYNC-OS shell: type `help`",
        input: Input::Serial(b"wave on\r"),
    },
    Step {
        after: "wave: visualizer on",
        input: Input::Serial(b"help\r"),
    },
    Step {
        after: HELP_END,
        input: Input::Serial(b"ps\r"),
    },
    Step {
        after: "  #  name          state",
        input: Input::Serial(b"mem\r"),
    },
    Step {
        after: " objects",
        input: Input::Serial(b"help\r"),
    },
    Step {
        after: HELP_END,
        input: Input::Serial(b"ps\r"),
    },
    Step {
        after: "  #  name          state",
        input: Input::Serial(b"mem\r"),
    },
    Step {
        after: " objects",
        input: Input::Serial(b"help\r"),
    },
    Step {
        after: HELP_END,
        input: Input::Serial(b"display\r"),
    },
    Step {
        after: "display: frames=",
        input: Input::Serial(b"poweroff\r"),
    },
];

/// Boots the system ISO under OVMF and measures the wave frames: `display.frame` (ns per
/// frame, render + present, median/p99/min over the kept frames) and `display.fps`.
fn display(a: &artifacts::Artifacts, symbolizer: &Symbolizer) -> Result<(Figure, Scalar)> {
    let iso = crate::images::system_iso(a, "")?;
    let sock = artifacts::out_dir().join("bench-display.sock");
    let _ = std::fs::remove_file(&sock);
    let machine = qemu::with_monitor(&sock);
    let boot = qemu::Boot::Cdrom { iso, uefi: true };
    let session = drive(
        &machine,
        &boot,
        &sock,
        DISPLAY_SESSION,
        Duration::from_secs(300),
        symbolizer,
        |event, _| {
            // Between commands: the shell is used, not hammered.
            if let Event::Step(i) = event
                && i >= 1
                && i + 1 < DISPLAY_SESSION.len()
            {
                std::thread::sleep(Duration::from_millis(1500));
            }
        },
    )?;
    let _ = std::fs::remove_file(&sock);
    let geometry = crate::test::display::logged_geometry(&session.output);
    parse_display(&session.output, geometry).ok_or_else(|| {
        format!(
            "no `display: frames=` line with frames (geometry {geometry:?}); output:\n{}",
            session.output
        )
    })
}

/// The `display: frames=...` line of the shell's `display` command as a figure and a scalar.
pub fn parse_display(output: &str, geometry: Option<(u32, u32, u32)>) -> Option<(Figure, Scalar)> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.starts_with("display: frames="))?;
    let kv: BTreeMap<&str, u64> = line["display: ".len()..]
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect();
    let get = |k: &str| kv.get(k).copied();
    let kept = get("kept")?;
    if kept == 0 {
        return None;
    }
    let (w, h, bpp) = geometry.unwrap_or_default();
    let frame = Figure {
        name: "display.frame".into(),
        unit: "ns".into(),
        median: get("median_ns")?,
        p99: get("p99_ns")?,
        min: get("min_ns")?,
        iterations: kept,
        cycles: None,
    };
    let fps = Scalar {
        name: "display.fps".into(),
        unit: "fps".into(),
        value: get("fps_milli")? as f64 / 1000.0,
        extra: vec![
            ("width".into(), w.to_string()),
            ("height".into(), h.to_string()),
            ("bpp".into(), bpp.to_string()),
            ("frame_bytes".into(), get("frame_bytes")?.to_string()),
            ("frames".into(), get("frames")?.to_string()),
        ],
    };
    Some((frame, fps))
}

// ---- The phase engine: host-measured scalars ------------------------------------------------

/// One host-measured figure that is a single value, not a distribution (the phase engine's
/// dudect t statistic and throughput): `[bench] name=... unit=... value=... [key=value ...]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    /// Benchmark name, e.g. `phase.dudect_t`.
    pub name: String,
    /// Unit, e.g. `t` or `GB/s`.
    pub unit: String,
    /// The measured value.
    pub value: f64,
    /// Further `key=value` pairs from the line (sample counts, buffer sizes, ...), in order.
    pub extra: Vec<(String, String)>,
}

/// Parses every `[bench] name=... unit=... value=...` line of `output`.
pub fn parse_scalars(output: &str) -> Vec<Scalar> {
    let mut out = Vec::new();
    for line in output.lines() {
        let Some(rest) = line.find("[bench] ").map(|i| &line[i + 8..]) else {
            continue;
        };
        let (mut name, mut unit, mut value, mut extra) = (None, None, None, Vec::new());
        for (k, v) in rest.split_whitespace().filter_map(|w| w.split_once('=')) {
            match k {
                "name" => name = Some(v.to_owned()),
                "unit" => unit = Some(v.to_owned()),
                "value" => value = v.parse::<f64>().ok().filter(|x| x.is_finite()),
                _ => extra.push((k.to_owned(), v.to_owned())),
            }
        }
        if let (Some(name), Some(unit), Some(value)) = (name, unit, value) {
            out.push(Scalar {
                name,
                unit,
                value,
                extra,
            });
        }
    }
    out
}

/// Runs the phase engine's host bench (`servers/phase-core/examples/phase_bench.rs`, release).
fn phase_core_bench() -> Result<Vec<Scalar>> {
    let out = crate::tools::cargo()
        .current_dir(artifacts::root())
        .args(["run", "--release", "--quiet", "-p", "hsync-phase-core"])
        .args(["--example", "phase_bench"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "phase_bench failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(parse_scalars(&String::from_utf8_lossy(&out.stdout)))
}

fn scalar_table(scalars: &[Scalar]) -> String {
    let mut s = String::new();
    for x in scalars {
        let extra: Vec<String> = x.extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!(
            "{:<36} {:>12} {}\n",
            x.name,
            format!("{} {}", x.value, x.unit),
            extra.join(" ")
        ));
    }
    s
}

/// [`to_json`] followed by one `{"name","unit","value", extra...}` object per scalar (extra
/// values that parse as numbers are written as numbers, the rest as strings).
pub fn to_json_with(figures: &[Figure], scalars: &[Scalar]) -> String {
    let base = to_json(figures);
    if scalars.is_empty() {
        return base;
    }
    let mut out = base.trim_end().trim_end_matches(']').trim_end().to_owned();
    for x in scalars {
        if !out.ends_with('[') {
            out.push(',');
        }
        out.push_str(&format!(
            "\n  {{\"name\": \"{}\", \"unit\": \"{}\", \"value\": {}",
            x.name, x.unit, x.value
        ));
        for (k, v) in &x.extra {
            if v.parse::<f64>().is_ok_and(f64::is_finite) {
                out.push_str(&format!(", \"{k}\": {v}"));
            } else {
                let v = v.replace('\\', "\\\\").replace('"', "\\\"");
                out.push_str(&format!(", \"{k}\": \"{v}\""));
            }
        }
        out.push('}');
    }
    out.push_str("\n]\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines_and_writes_the_documented_json() {
        let out = "noise\n[selftest] [bench] name=syscall.null unit=ns median=120 p99=300 min=90 \
                   iterations=100000 cycles_median=360 cycles_p99=900 cycles_min=270\n\
                   [bench] name=ipc.call_reply_recv.instructions unit=instructions median=500 \
                   p99=520 min=480 iterations=100000\n[bench] name=broken unit=ns\n";
        let f = parse(out);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, "syscall.null");
        assert_eq!((f[0].median, f[0].p99, f[0].min), (120, 300, 90));
        assert_eq!(f[0].cycles, Some((360, 900, 270)));
        assert_eq!(f[1].cycles, None);
        let json = to_json(&f);
        assert!(
            json.starts_with("[\n  {\"name\": \"syscall.null\", \"unit\": \"ns\", \"median\": 120")
        );
        assert!(json.contains("\"iterations\": 100000, \"cycles_median\": 360"));
        assert!(json.trim_end().ends_with("}\n]") || json.trim_end().ends_with(']'));
    }

    #[test]
    fn parses_the_display_line() {
        let out = "display: framebuffer 1024x768 pixels\n\
                   display: frames=300 median_ns=2000000 p99_ns=3000000 min_ns=1500000 \
                   fps_milli=19980 frame_bytes=991232 kept=256\n";
        let (f, s) = parse_display(out, Some((1024, 768, 32))).unwrap();
        assert_eq!(
            (f.name.as_str(), f.median, f.p99, f.min),
            ("display.frame", 2_000_000, 3_000_000, 1_500_000)
        );
        assert_eq!(f.iterations, 256);
        assert_eq!((s.name.as_str(), s.value), ("display.fps", 19.98));
        assert!(
            s.extra
                .contains(&("frame_bytes".to_owned(), "991232".to_owned()))
        );
        assert!(s.extra.contains(&("width".to_owned(), "1024".to_owned())));
        assert!(
            parse_display(
                "display: frames=0 median_ns=0 p99_ns=0 min_ns=0 fps_milli=0 frame_bytes=0 kept=0",
                None
            )
            .is_none()
        );
        assert!(parse_display("nothing", None).is_none());
    }

    #[test]
    fn parses_phase_scalars_and_appends_them_to_the_json() {
        let out = "[bench] name=phase.dudect_t unit=t value=1.63 samples=900000 mode=raw\n\
                   [bench] name=phase.transform_gbps unit=GB/s value=3.052\n\
                   [bench] name=phase.broken unit=t value=nan\n";
        let s = parse_scalars(out);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "phase.dudect_t");
        assert_eq!(s[0].value, 1.63);
        assert_eq!(s[0].extra[0], ("samples".to_owned(), "900000".to_owned()));
        let f = parse("[bench] name=syscall.null unit=ns median=1 p99=2 min=1 iterations=3\n");
        let json = to_json_with(&f, &s);
        assert!(json.contains("\"iterations\": 3},\n  {\"name\": \"phase.dudect_t\""));
        assert!(json.contains("\"value\": 1.63, \"samples\": 900000, \"mode\": \"raw\"}"));
        assert!(json.ends_with("\"value\": 3.052}\n]\n"));
        assert_eq!(
            to_json_with(&[], &s[1..]),
            "[\n  {\"name\": \"phase.transform_gbps\", \"unit\": \"GB/s\", \"value\": 3.052}\n]\n"
        );
        assert_eq!(to_json_with(&f, &[]), to_json(&f));
    }
}
