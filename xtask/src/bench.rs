//! `cargo xtask bench`: one run of measurements on a catalog (use the e2e fixture catalog with
//! the e2e environment up). Goals are printed beside the figures; nothing here is a test.
//!   parallel / sequential   full pipeline, --jobs default vs --jobs 1, both cold   goal ≤ 0.6
//!   warm / cold             a re-run with nothing changed vs the cold run          goal ≤ 0.05
//!   overhead                xtask's own wall time outside child processes (jobs 1) goal ≤ 2 %
//!   --help                  `cargo xtask --help` as the binary answers it

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::catalog::{Catalog, Image};
use crate::pipeline::{self, Ctx};
use crate::plan::{Command, Layout};
use crate::runner::{Runner, CHILD_NANOS};

struct Timing {
    wall: Duration,
    child: Duration,
    failed: usize,
}

fn measure(
    cat: &Catalog,
    runner: &Runner,
    layout: &Layout,
    images: &[Image],
    command: Command,
    jobs: usize,
    cache: bool,
) -> Timing {
    CHILD_NANOS.store(0, Ordering::SeqCst);
    let ctx = Ctx {
        cat,
        runner,
        layout,
        use_cache: cache,
    };
    let start = Instant::now();
    let results = pipeline::run(&ctx, images, command, jobs);
    Timing {
        wall: start.elapsed(),
        child: Duration::from_nanos(CHILD_NANOS.load(Ordering::SeqCst)),
        failed: results.iter().filter(|r| r.failed()).count(),
    }
}

pub fn bench(
    cat: &Catalog,
    runner: &Runner,
    layout: &Layout,
    images: &[Image],
    stage: &str,
    jobs: usize,
) -> Result<u8> {
    let command = match stage {
        "scan" => Command::Scan { gate: false },
        "patch" => Command::Patch,
        other => anyhow::bail!("bench --stage {other}: use scan or patch"),
    };
    let say = |s: String| println!("{s}");
    say(format!(
        "bench: {stage} of {} image(s) from {}, {jobs} job(s) by default",
        images.len(),
        cat.path
    ));
    // prime: images built and the Trivy DB opened once, so the cold runs compare like for like
    let prime = measure(cat, runner, layout, images, command, jobs, false);
    if prime.failed > 0 {
        anyhow::bail!(
            "{} image(s) failed in the priming run: fix them first (run `cargo xtask {stage}`)",
            prime.failed
        );
    }
    let seq = measure(cat, runner, layout, images, command, 1, false);
    let par = measure(cat, runner, layout, images, command, jobs, false);
    let warm = measure(cat, runner, layout, images, command, jobs, true);
    let overhead = seq.wall.saturating_sub(seq.child);
    let help = help_time()?;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let rows = [
        (
            "sequential (--jobs 1), cold".to_string(),
            format!("{:.2}s", seq.wall.as_secs_f64()),
            String::new(),
        ),
        (
            format!("parallel (--jobs {jobs}), cold"),
            format!("{:.2}s", par.wall.as_secs_f64()),
            String::new(),
        ),
        (
            "parallel / sequential".to_string(),
            format!("{:.2}", ratio(par.wall, seq.wall)),
            "goal ≤ 0.60".into(),
        ),
        (
            "warm re-run".to_string(),
            format!("{:.2}s", warm.wall.as_secs_f64()),
            String::new(),
        ),
        (
            "warm / cold".to_string(),
            format!("{:.3}", ratio(warm.wall, par.wall)),
            "goal ≤ 0.05".into(),
        ),
        (
            "overhead (wall − children, jobs 1)".to_string(),
            format!(
                "{:.3}s = {:.2}%",
                overhead.as_secs_f64(),
                100.0 * ratio(overhead, seq.wall)
            ),
            "goal ≤ 2 %".into(),
        ),
        (
            "cargo xtask --help (binary)".to_string(),
            format!("{:.1}ms", help.as_secs_f64() * 1000.0),
            String::new(),
        ),
    ];
    for (k, v, goal) in rows {
        say(format!("  {k:<36} {v:>14}  {goal}"));
    }
    let json = serde_json::json!({
        "stage": stage, "images": images.len(), "jobs": jobs,
        "sequential_s": seq.wall.as_secs_f64(), "parallel_s": par.wall.as_secs_f64(),
        "parallel_ratio": ratio(par.wall, seq.wall), "warm_s": warm.wall.as_secs_f64(),
        "warm_ratio": ratio(warm.wall, par.wall), "overhead_s": overhead.as_secs_f64(),
        "overhead_pct": 100.0 * ratio(overhead, seq.wall), "help_ms": help.as_secs_f64() * 1000.0,
    });
    let path = layout.out.join("bench.json");
    crate::runner::write_atomic(&path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    say(format!("  written to {path}"));
    Ok(0)
}

/// Mean of ten `--help` runs of this binary (what `cargo xtask --help` costs once compiled).
fn help_time() -> Result<Duration> {
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let n = 10;
    let start = Instant::now();
    for _ in 0..n {
        let o = std::process::Command::new(&exe)
            .arg("--help")
            .output()
            .context("cannot run xtask --help")?;
        anyhow::ensure!(o.status.success(), "xtask --help failed");
    }
    Ok(start.elapsed() / n)
}
