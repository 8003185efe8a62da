//! The runner: the only place processes start. Each call runs in its own process group with a
//! timeout; SIGINT/SIGTERM stop every child group; output is streamed with an image prefix (or
//! grouped per image under GitHub Actions); declared output files only appear on success.

pub mod log;
pub mod signals;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};

pub use log::Log;

use crate::plan::cmd::{partial, Cmd};

const HEARTBEAT: Duration = Duration::from_secs(30);
const KILL_GRACE: Duration = Duration::from_secs(5);
const KEEP_OUTPUT: usize = 256 * 1024;

#[derive(Debug, Clone, Default)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    /// stdout and stderr together (for messages that tools print on either).
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    /// The last lines of stderr (or stdout), for an error message.
    pub fn tail(&self, n: usize) -> String {
        let src = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = src.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Time spent inside child processes, for `bench` (overhead = wall − children).
pub static CHILD_NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Clone)]
pub struct Runner {
    pub log: Arc<Log>,
    path: String,
    pins: Vec<(String, String)>,
}

impl Runner {
    /// `tools_dir` (the repo-local `.tools/bin`) comes before PATH for tools and their children.
    pub fn new(
        log: Arc<Log>,
        tools_dir: Option<Utf8PathBuf>,
        pins: Vec<(String, String)>,
    ) -> Runner {
        let sys = std::env::var("PATH").unwrap_or_default();
        let path = match tools_dir {
            Some(d) if d.is_dir() => format!("{d}:{sys}"),
            _ => sys,
        };
        Runner { log, path, pins }
    }

    /// Where a tool resolves, or what to do about it.
    pub fn resolve(&self, program: &str) -> Result<std::path::PathBuf> {
        which::which_in(program, Some(&self.path), ".").map_err(|_| {
            let pin = self.pins.iter().find(|(p, _)| p == program).map(|(_, v)| v.as_str());
            let how = match program {
                "trivy" | "copa" => "run `cargo xtask tools install` (or `sudo .ci/provision`)",
                "docker" => "install docker.io and docker-buildx (`sudo .ci/provision` does)",
                "az" => "install the Azure CLI (only needed for *.azurecr.io)",
                _ => "install it",
            };
            match pin {
                Some(v) => anyhow!("{program} is not installed (not on PATH nor in .tools/bin); pinned version {v}: {how}"),
                None => anyhow!("{program} is not installed (not on PATH nor in .tools/bin): {how}"),
            }
        })
    }

    /// Run and require exit 0. The error names the tool, the label and the tail of its output.
    pub fn run(&self, label: &str, cmd: &Cmd) -> Result<Output> {
        let out = self.run_unchecked(label, cmd)?;
        if !out.success() {
            let code = out
                .code
                .map_or("a signal".to_string(), |c| format!("exit code {c}"));
            bail!(
                "`{}` failed with {code}:\n{}",
                short(cmd),
                indent(&out.tail(8))
            );
        }
        Ok(out)
    }

    /// Run; any exit code is returned. Errors only for: tool missing, timeout, interruption.
    pub fn run_unchecked(&self, label: &str, cmd: &Cmd) -> Result<Output> {
        if signals::INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted before `{}`", short(cmd));
        }
        let program = self.resolve(&cmd.program)?;
        for o in &cmd.outputs {
            if let Some(parent) = o.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {parent}"))?;
            }
            let _ = std::fs::remove_file(partial(o));
        }
        self.log.line(label, &format!("$ {cmd}"));
        let start = Instant::now();
        let result = self.spawn_and_wait(label, cmd, &program);
        let elapsed = start.elapsed();
        CHILD_NANOS.fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        let mut out = match result {
            Ok(o) => o,
            Err(e) => {
                discard(&cmd.outputs);
                return Err(e);
            }
        };
        out.elapsed = elapsed;
        if out.success() {
            for o in &cmd.outputs {
                let p = partial(o);
                if p.exists() {
                    std::fs::rename(&p, o).with_context(|| format!("cannot move {p} to {o}"))?;
                }
            }
            if elapsed > Duration::from_secs(2) {
                self.log.line(
                    label,
                    &format!("✓ {} ({:.1}s)", cmd.program, elapsed.as_secs_f64()),
                );
            }
        } else {
            discard(&cmd.outputs);
        }
        Ok(out)
    }

    fn spawn_and_wait(&self, label: &str, cmd: &Cmd, program: &std::path::Path) -> Result<Output> {
        let mut c = Command::new(program);
        c.args(&cmd.args)
            .env("PATH", &self.path)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if cmd.stdin_from_env.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .process_group(0);
        let mut child = c
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let pgid = child.id() as i32;
        signals::register(pgid);
        let guard = Unregister(pgid);

        if let Some(var) = &cmd.stdin_from_env {
            let value = std::env::var(var).map_err(|_| anyhow!("{var} is not set"));
            let mut stdin = child.stdin.take().expect("piped stdin");
            match value {
                Ok(v) => {
                    let _ = stdin.write_all(v.as_bytes());
                }
                Err(e) => {
                    kill_group(pgid, libc::SIGKILL);
                    let _ = child.wait();
                    return Err(e);
                }
            }
        }
        let out_reader = self.reader(label, child.stdout.take().expect("piped stdout"));
        let err_reader = self.reader(label, child.stderr.take().expect("piped stderr"));
        let status = self.wait(label, cmd, &mut child, pgid);
        // A killed group closes its pipes; readers then end.
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        drop(guard);
        let code = status?;
        Ok(Output {
            code,
            stdout,
            stderr,
            elapsed: Duration::ZERO,
        })
    }

    fn reader<R: Read + Send + 'static>(&self, label: &str, r: R) -> thread::JoinHandle<String> {
        let log = self.log.clone();
        let label = label.to_string();
        thread::spawn(move || {
            let mut kept = String::new();
            for line in BufReader::new(r).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches('\r');
                log.line(&label, line);
                if kept.len() < KEEP_OUTPUT {
                    kept.push_str(line);
                    kept.push('\n');
                } else {
                    // keep the tail: drop the older half
                    let cut = kept.len() / 2;
                    let cut = kept
                        .char_indices()
                        .map(|(i, _)| i)
                        .find(|&i| i >= cut)
                        .unwrap_or(0);
                    kept.drain(..cut);
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
            kept
        })
    }

    fn wait(&self, label: &str, cmd: &Cmd, child: &mut Child, pgid: i32) -> Result<Option<i32>> {
        let start = Instant::now();
        let mut next_beat = HEARTBEAT;
        loop {
            if let Some(status) = child.try_wait()? {
                // The leader is gone; make sure nothing of its group stays behind.
                kill_group(pgid, libc::SIGKILL);
                return Ok(status.code());
            }
            let elapsed = start.elapsed();
            if signals::INTERRUPTED.load(Ordering::SeqCst) {
                stop(child, pgid);
                bail!("interrupted: stopped `{}`", short(cmd));
            }
            if elapsed > cmd.timeout {
                stop(child, pgid);
                bail!(
                    "{} timed out after {}s: raise its timeout in the catalog ({})",
                    cmd.program,
                    cmd.timeout.as_secs(),
                    timeout_key(&cmd.program, &cmd.args)
                );
            }
            if elapsed > next_beat {
                self.log.heartbeat(
                    label,
                    &format!("… {} still running ({}s)", cmd.program, elapsed.as_secs()),
                );
                next_beat += HEARTBEAT;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

struct Unregister(i32);
impl Drop for Unregister {
    fn drop(&mut self) {
        signals::unregister(self.0);
    }
}

fn timeout_key(program: &str, args: &[String]) -> &'static str {
    match (program, args.first().map(String::as_str)) {
        ("trivy", _) => "[scan] timeout",
        ("copa", _) => "[patch] timeout",
        ("docker", Some("run")) => "[patch] smoke_timeout",
        ("docker", Some("buildx")) if args.get(1).map(String::as_str) == Some("build") => {
            "[build] timeout"
        }
        _ => "[publish] timeout",
    }
}

/// SIGTERM to the group, SIGKILL after a grace period, then reap.
fn stop(child: &mut Child, pgid: i32) {
    kill_group(pgid, libc::SIGTERM);
    let until = Instant::now() + KILL_GRACE;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    kill_group(pgid, libc::SIGKILL);
    let _ = child.wait();
}

pub fn kill_group(pgid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

fn discard(outputs: &[Utf8PathBuf]) {
    for o in outputs {
        let _ = std::fs::remove_file(partial(o));
    }
}

/// `program subcommand…` without the long tail, for messages.
fn short(cmd: &Cmd) -> String {
    let words: Vec<&str> = cmd
        .args
        .iter()
        .take_while(|a| !a.starts_with('-'))
        .take(3)
        .map(String::as_str)
        .collect();
    format!("{} {}", cmd.program, words.join(" "))
        .trim_end()
        .to_string()
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Run `f` over `items` with at most `jobs` at once; results keep the items' order.
pub fn parallel<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let jobs = jobs.clamp(1, items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                *results[i].lock().unwrap() = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap().expect("every item ran"))
        .collect()
}

/// Write a file atomically (temp + rename) so a reader never sees half of it.
pub fn write_atomic(path: &Utf8Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {parent}"))?;
    }
    let tmp = Utf8PathBuf::from(format!("{path}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {tmp}"))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {tmp} to {path}"))?;
    Ok(())
}

#[cfg(test)]
mod tests;
