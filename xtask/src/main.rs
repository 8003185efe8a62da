//! `cargo xtask`: catalog → plan → runner → tools → report. This file only dispatches.

mod bench;
mod catalog;
mod doctor;
mod flags;
#[cfg(test)]
mod fuzz;
mod pipeline;
mod plan;
mod report;
mod runner;
mod tools;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use clap::Parser;

use catalog::{Catalog, Facts, Overrides};
use flags::{Cli, Command};
use plan::Layout;
use report::RunReport;
use runner::{Log, Runner};

/// A configuration or usage problem: exit code 2, nothing was run.
#[derive(Debug)]
struct ConfigError;
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("configuration error")
    }
}
impl std::error::Error for ConfigError {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    runner::signals::install();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let config = e.downcast_ref::<ConfigError>().is_some();
            // One chain, printed once: what failed, for which image or file, what to do.
            let parts: Vec<String> = e
                .chain()
                .map(|c| c.to_string())
                .filter(|c| c != "configuration error")
                .collect();
            eprintln!("error: {}", parts.join(": "));
            ExitCode::from(if config { 2 } else { 1 })
        }
    }
}

pub fn project_root() -> Utf8PathBuf {
    Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn host_arch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
    .to_string()
}

fn tools_dir() -> Utf8PathBuf {
    std::env::var("XTASK_TOOLS_DIR")
        .map(Utf8PathBuf::from)
        .unwrap_or_else(|_| project_root().join(".tools/bin"))
}

/// Facts from the environment and git (read through the runner, quietly).
fn facts() -> Facts {
    let quiet = Runner::new(Arc::new(Log::quiet()), None, Vec::new());
    let git = |args: &[&str]| {
        let cmd = plan::cmd::Cmd::new("git", std::time::Duration::from_secs(10))
            .args(args.iter().copied());
        quiet
            .run(".", &cmd)
            .ok()
            .map(|o| o.stdout.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    Facts {
        env: std::env::vars().collect(),
        git_sha: git(&["rev-parse", "--short=7", "HEAD"]),
        git_time: git(&["log", "-1", "--format=%cI"]),
        host_arch: host_arch(),
    }
}

fn load(cli: &Cli, overrides: &Overrides) -> Result<Catalog> {
    catalog::load(&cli.global.catalog, &facts(), overrides).context(ConfigError)
}

fn github(cli: &Cli) -> bool {
    cli.global
        .github
        .unwrap_or_else(|| std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"))
}

fn run(cli: Cli) -> Result<u8> {
    // Relative paths (catalog, out) are taken from the workspace root, wherever cargo ran.
    std::env::set_current_dir(project_root()).context("cannot enter the workspace root")?;
    let secret = std::env::var(tools::registry::PASSWORD_VAR)
        .ok()
        .filter(|s| !s.is_empty());
    let log = Arc::new(Log::new(github(&cli), secret.into_iter().collect()));

    let (command, select, overrides) = match &cli.command {
        Command::Build(b) => (
            plan::Command::Build,
            b.select.images.clone(),
            Overrides {
                push: b.push,
                platforms: b.platform.clone(),
            },
        ),
        Command::Scan(s) => (
            plan::Command::Scan { gate: s.gate },
            s.select.images.clone(),
            Overrides::default(),
        ),
        Command::Patch(s) => (plan::Command::Patch, s.images.clone(), Overrides::default()),
        Command::Publish(s) => (
            plan::Command::Publish,
            s.images.clone(),
            Overrides::default(),
        ),
        Command::Matrix(s) => {
            let cat = load(&cli, &Overrides::default())?;
            let images = cat.select(&s.images).context(ConfigError)?;
            let include: Vec<_> = images
                .iter()
                .map(|i| serde_json::json!({"image": i.name, "platforms": i.platforms.join(","), "reference": i.reference}))
                .collect();
            println!("{}", serde_json::json!({ "include": include }));
            return Ok(0);
        }
        Command::Doctor => {
            let cat = load(&cli, &Overrides::default())?;
            let runner = Runner::new(Arc::new(Log::quiet()), Some(tools_dir()), pins(&cat));
            return doctor::doctor(&cat, &runner);
        }
        Command::Login => {
            let cat = load(&cli, &Overrides::default())?;
            return login(&cli, &cat, log);
        }
        Command::Builder => {
            let cat = load(&cli, &Overrides::default())?;
            return builder(&cli, &cat, log);
        }
        Command::Tools(flags::ToolsCommand::Install { mirror, dir }) => {
            let cat = load(&cli, &Overrides::default())?;
            let runner = Runner::new(log, None, pins(&cat));
            doctor::install(&cat, &runner, mirror.as_deref(), dir)?;
            return Ok(0);
        }
        Command::Bench(b) => {
            let cat = load(&cli, &Overrides::default())?;
            let images = cat.select(&[]).context(ConfigError)?;
            let layout = Layout {
                out: cli.global.out.join("bench"),
            };
            let _lock = lock(&cli.global.out)?;
            let runner = Runner::new(Arc::new(Log::quiet()), Some(tools_dir()), pins(&cat));
            return bench::bench(&cat, &runner, &layout, &images, &b.stage, jobs(&cli));
        }
    };

    let cat = load(&cli, &overrides)?;
    let images = cat.select(&select).context(ConfigError)?;
    let layout = Layout {
        out: cli.global.out.clone(),
    };
    if cli.global.dry_run {
        print!("{}", plan::render(&cat, &images, command, &layout));
        return Ok(0);
    }
    let _lock = lock(&layout.out)?;
    let jobs = jobs(&cli);
    let runner = Runner::new(log.clone(), Some(tools_dir()), pins(&cat));
    let ctx = pipeline::Ctx {
        cat: &cat,
        runner: &runner,
        layout: &layout,
        use_cache: !cli.global.no_cache,
    };
    let start = Instant::now();
    let results = pipeline::run(&ctx, &images, command, jobs);
    let failed = results.iter().any(|r| r.failed());
    let interrupted = runner::signals::interrupted();
    let code = if failed || interrupted { 1 } else { 0 };
    let run = RunReport {
        command: command_name(command),
        catalog: cat.path.clone(),
        registry: cat.registry.clone(),
        mode: format!("{:?}", cat.mode).to_lowercase(),
        exit_code: code,
        seconds: start.elapsed().as_secs_f64(),
        images: results,
    };
    finish(&cli, &log, &run)?;
    if interrupted {
        eprintln!(
            "interrupted: child processes were stopped; re-run to resume (finished work is cached)"
        );
        return Ok(130);
    }
    Ok(code as u8)
}

fn jobs(cli: &Cli) -> usize {
    cli.global
        .jobs
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

fn command_name(c: plan::Command) -> String {
    match c {
        plan::Command::Build => "build",
        plan::Command::Scan { .. } => "scan",
        plan::Command::Patch => "patch",
        plan::Command::Publish => "publish",
    }
    .to_string()
}

fn pins(cat: &Catalog) -> Vec<(String, String)> {
    vec![
        ("trivy".into(), cat.tools.trivy.clone()),
        ("copa".into(), cat.tools.copa.clone()),
    ]
}

/// Print the table; write the JSON, the step summary and annotations where asked.
fn finish(cli: &Cli, log: &Log, run: &RunReport) -> Result<()> {
    print!("{}", log.mask(&report::terminal(run)));
    if let Some(path) = &cli.global.json {
        let text = serde_json::to_string_pretty(run)?;
        runner::write_atomic(path, log.mask(&text).as_bytes())
            .with_context(|| format!("cannot write {path}"))?;
    }
    if log.github() {
        for a in report::annotations(run) {
            println!("{}", log.mask(&a));
        }
        if let Ok(path) = std::env::var("GITHUB_STEP_SUMMARY") {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .with_context(|| format!("cannot open {path}"))?;
            f.write_all(log.mask(&report::markdown(run)).as_bytes())?;
        }
    }
    Ok(())
}

/// One run at a time per out dir: a second run waits (the cache and reports stay whole).
fn lock(out: &Utf8Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {out}"))?;
    let path = out.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {path}"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        eprintln!("another cargo xtask run uses {out}; waiting for it to finish");
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("cannot lock {path}");
        }
    }
    Ok(f)
}

fn login(cli: &Cli, cat: &Catalog, log: Arc<Log>) -> Result<u8> {
    let user = std::env::var(tools::registry::USERNAME_VAR).unwrap_or_default();
    let cmd = tools::registry::login(cat, &user);
    if cmd.stdin_from_env.is_some() {
        if user.is_empty() {
            return Err(anyhow::anyhow!(
                "set REGISTRY_USERNAME (and the token in REGISTRY_PASSWORD) to log in to {}",
                cat.registry
            ))
            .context(ConfigError);
        }
        let token = std::env::var(tools::registry::PASSWORD_VAR).unwrap_or_default();
        if token.is_empty() {
            return Err(anyhow::anyhow!("set REGISTRY_PASSWORD to the registry token (it is read from the environment, never from the command line)")).context(ConfigError);
        }
        if log.github() && std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
            // GitHub hides the value from every later log line; this line itself is not shown.
            println!("::add-mask::{token}");
        }
    }
    if cli.global.dry_run {
        println!("{cmd}");
        return Ok(0);
    }
    let runner = Runner::new(log, Some(tools_dir()), pins(cat));
    runner
        .run("login", &cmd)
        .with_context(|| format!("login to {} failed", cat.registry))?;
    Ok(0)
}

fn builder(cli: &Cli, cat: &Catalog, log: Arc<Log>) -> Result<u8> {
    let Some(name) = cat.builder.clone() else {
        return Err(anyhow::anyhow!(
            "set BUILDX_BUILDER_NAME (or [defaults] builder) to name the builder"
        ))
        .context(ConfigError);
    };
    let inspect = tools::buildx::inspect_builder(cat, &name);
    let create = tools::buildx::create_builder(cat, &name);
    if cli.global.dry_run {
        println!("{inspect}\n# if it does not exist:\n{create}");
        return Ok(0);
    }
    let runner = Runner::new(log, Some(tools_dir()), pins(cat));
    if !runner.run_unchecked("builder", &inspect)?.success() {
        runner.run("builder", &create)?;
    }
    Ok(0)
}
