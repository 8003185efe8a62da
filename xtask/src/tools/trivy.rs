//! Trivy: the argv of a scan and of a SARIF conversion, and the typed JSON report (schema v2).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use camino::Utf8Path;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::plan::cmd::{partial, Cmd};

pub const SEVERITIES: &[&str] = &["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"];

/// Where Trivy reads the image from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The local engine (`docker save` through the API).
    Docker,
    /// The registry, one platform of an index at a time.
    Remote,
}

pub struct ScanSpec<'a> {
    pub target: &'a str,
    pub source: Source,
    pub platform: Option<&'a str>,
    pub pkg_types: &'a [String],
    pub output: &'a Utf8Path,
}

/// `trivy image … --format json`: OS packages (plus whatever the gate asks for), fixable only
/// by default, every severity unless the catalog narrows it.
pub fn scan(cat: &Catalog, spec: &ScanSpec) -> Cmd {
    let s = &cat.scan;
    let mut c = Cmd::new("trivy", cat.timeouts.scan)
        .arg("image")
        .opt("--cache-dir", &s.cache_dir)
        .opt("--db-repository", &s.db_repository);
    if s.skip_db_update {
        c = c.arg("--skip-db-update");
    }
    c = c
        .args([
            "--skip-version-check",
            "--disable-telemetry",
            "--scanners",
            "vuln",
        ])
        .arg("--pkg-types")
        .arg(spec.pkg_types.join(","));
    if s.ignore_unfixed {
        c = c.arg("--ignore-unfixed");
    }
    if !s.severities.is_empty() {
        c = c.arg("--severity").arg(s.severities.join(","));
    }
    c = c
        .arg("--image-src")
        .arg(match spec.source {
            Source::Docker => "docker",
            Source::Remote => "remote",
        })
        .opt("--platform", spec.platform.unwrap_or(""))
        .arg("--timeout")
        .arg(format!("{}s", cat.timeouts.scan.as_secs()))
        .args(["--format", "json", "--output"])
        .arg(partial(spec.output).as_str())
        .arg(spec.target);
    c.output(spec.output.to_path_buf())
}

/// `trivy convert --format sarif`: SARIF derived from the same JSON report.
pub fn to_sarif(cat: &Catalog, report: &Utf8Path, sarif: &Utf8Path) -> Cmd {
    Cmd::new("trivy", cat.timeouts.scan)
        .args(["convert", "--format", "sarif", "--output"])
        .arg(partial(sarif).as_str())
        .arg(report.as_str())
        .output(sarif.to_path_buf())
}

/// Stamp a code-scanning category into every run of a SARIF file (`automationDetails.id`), so
/// one upload of many files keeps one category per image and platform.
pub fn categorize_sarif(text: &str, category: &str) -> Result<String> {
    let mut v: serde_json::Value = serde_json::from_str(text).context("not a SARIF file")?;
    let runs = v
        .get_mut("runs")
        .and_then(|r| r.as_array_mut())
        .context("SARIF without runs")?;
    for run in runs {
        if let Some(run) = run.as_object_mut() {
            run.insert(
                "automationDetails".into(),
                serde_json::json!({ "id": format!("{category}/") }),
            );
        }
    }
    Ok(serde_json::to_string(&v)?)
}

// ---- the report ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawReport {
    schema_version: Option<i64>,
    #[serde(default)]
    artifact_name: Option<String>,
    #[serde(default)]
    metadata: Option<RawMetadata>,
    #[serde(default)]
    results: Option<Vec<RawResult>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawMetadata {
    #[serde(rename = "OS", default)]
    os: Option<RawOs>,
    #[serde(rename = "ImageID", default)]
    image_id: Option<String>,
    #[serde(default)]
    image_config: Option<RawImageConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawOs {
    #[serde(default)]
    family: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawImageConfig {
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawResult {
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(default)]
    vulnerabilities: Option<Vec<RawVuln>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawVuln {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    pkg_name: String,
    #[serde(default)]
    installed_version: Option<String>,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    severity: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    OsPkgs,
    LangPkgs,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: String,
    pub package: String,
    pub installed: String,
    pub fixed: Option<String>,
    pub severity: String,
    pub class: Class,
    pub target: String,
}

impl Finding {
    pub fn fixable(&self) -> bool {
        self.fixed.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub artifact: String,
    pub os: Option<String>,
    /// `os/arch` from the image config, when Trivy recorded it.
    pub platform: Option<String>,
    pub image_id: Option<String>,
    pub findings: Vec<Finding>,
}

/// Fixable findings by severity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u32,
    pub by_severity: BTreeMap<String, u32>,
    pub ids: BTreeSet<String>,
}

impl Counts {
    pub fn get(&self, sev: &str) -> u32 {
        self.by_severity.get(sev).copied().unwrap_or(0)
    }

    /// `2 (1 CRITICAL, 1 HIGH)` or `0`.
    pub fn summary(&self) -> String {
        if self.total == 0 {
            return "0".into();
        }
        let parts: Vec<String> = SEVERITIES
            .iter()
            .filter(|s| self.get(s) > 0)
            .map(|s| format!("{} {}", self.get(s), &s[..1]))
            .collect();
        format!("{} ({})", self.total, parts.join(" "))
    }
}

impl Report {
    /// Fixable OS-package findings: what Copa can patch.
    pub fn fixable_os(&self) -> Counts {
        self.count(|f| f.fixable() && f.class == Class::OsPkgs)
    }

    /// Findings matching a gate policy (severity list, package classes).
    pub fn gate(&self, severities: &[String], pkg_types: &[String]) -> Counts {
        self.count(|f| {
            let class_ok = match f.class {
                Class::OsPkgs => pkg_types.iter().any(|t| t == "os"),
                Class::LangPkgs => pkg_types.iter().any(|t| t == "library"),
                Class::Other => false,
            };
            class_ok && (severities.is_empty() || severities.contains(&f.severity))
        })
    }

    fn count(&self, keep: impl Fn(&Finding) -> bool) -> Counts {
        let mut c = Counts::default();
        // One vulnerability in one package counts once even if Trivy lists it per target.
        let mut seen = BTreeSet::new();
        for f in self.findings.iter().filter(|f| keep(f)) {
            if !seen.insert((f.id.as_str(), f.package.as_str())) {
                continue;
            }
            c.total += 1;
            *c.by_severity.entry(f.severity.clone()).or_default() += 1;
            c.ids.insert(f.id.clone());
        }
        c
    }
}

pub fn parse_report(text: &str) -> Result<Report> {
    if text.trim().is_empty() {
        bail!("the file is empty");
    }
    let raw: RawReport = serde_json::from_str(text).map_err(|e| {
        if e.is_eof() {
            anyhow::anyhow!("truncated JSON ({e})")
        } else {
            anyhow::anyhow!("not a Trivy JSON report ({e})")
        }
    })?;
    match raw.schema_version {
        Some(2) => {}
        Some(v) => bail!("Trivy report schema version {v}; this tool reads schema version 2"),
        None => bail!("no SchemaVersion: not a Trivy JSON report (use --format json)"),
    }
    let meta = raw.metadata.unwrap_or_default();
    let os = meta.os.map(|o| {
        format!(
            "{} {}",
            o.family.unwrap_or_default(),
            o.name.unwrap_or_default()
        )
        .trim()
        .to_string()
    });
    let platform = meta
        .image_config
        .and_then(|c| match (c.os, c.architecture) {
            (Some(o), Some(a)) if !o.is_empty() && !a.is_empty() => Some(format!("{o}/{a}")),
            _ => None,
        });
    let mut findings = Vec::new();
    for r in raw.results.unwrap_or_default() {
        let class = match r.class.as_deref() {
            Some("os-pkgs") => Class::OsPkgs,
            Some("lang-pkgs") => Class::LangPkgs,
            _ => Class::Other,
        };
        let target = r.target.or(r.kind).unwrap_or_default();
        for v in r.vulnerabilities.unwrap_or_default() {
            let severity = v
                .severity
                .unwrap_or_else(|| "UNKNOWN".into())
                .to_ascii_uppercase();
            let severity = if SEVERITIES.contains(&severity.as_str()) {
                severity
            } else {
                "UNKNOWN".into()
            };
            findings.push(Finding {
                id: v.id,
                package: v.pkg_name,
                installed: v.installed_version.unwrap_or_default(),
                fixed: v.fixed_version.filter(|f| !f.trim().is_empty()),
                severity,
                class,
                target: target.clone(),
            });
        }
    }
    Ok(Report {
        artifact: raw.artifact_name.unwrap_or_default(),
        os,
        platform,
        image_id: meta.image_id,
        findings,
    })
}

/// `linux/arm64` and `linux/arm64/v8` are the same platform.
pub fn same_platform(a: &str, b: &str) -> bool {
    let norm = |p: &str| p.trim_end_matches("/v8").to_string();
    norm(a) == norm(b)
}

pub fn read_report(path: &Utf8Path) -> Result<Report> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read Trivy report {path}"))?;
    parse_report(&text).with_context(|| format!("Trivy report {path} is unusable"))
}

/// The vulnerability DB's identity, for cache keys: `UpdatedAt` from metadata.json.
pub fn db_version(cache_dir: &Utf8Path) -> Option<String> {
    let text = std::fs::read_to_string(cache_dir.join("db/metadata.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(format!(
        "v{}-{}",
        v.get("Version")?,
        v.get("UpdatedAt")?.as_str()?
    ))
}

#[cfg(test)]
mod tests;
