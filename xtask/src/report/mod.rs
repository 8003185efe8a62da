//! Results and where people read them: the terminal table, the GitHub step summary (markdown),
//! `::error::` annotations, and the JSON result file.

use std::fmt::Write as _;

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

use crate::tools::trivy::Counts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Config,
    Build,
    Scan,
    Patch,
    Rescan,
    Gate,
    Smoke,
    Publish,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Built,
    Pushed,
    Scanned,
    /// No fixable OS vulnerability: nothing for Copa to do.
    NothingToPatch,
    /// Copa ran and found nothing to update (no image made).
    UpToDate,
    Patched,
    Published,
    Failed,
    Planned,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlatformResult {
    pub platform: String,
    /// Fixable OS vulnerabilities in the original.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Counts>,
    /// Fixable OS vulnerabilities in the patched image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Counts>,
    /// Findings of the gate policy (`scan --gate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<Counts>,
    /// Digest of the original image for this platform (cache key input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Utf8PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescan_report: Option<Utf8PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sarif: Option<Utf8PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vex: Option<Utf8PathBuf>,
    /// The local (or registry) reference of this platform's patched image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patched_image: Option<String>,
    /// Served from the cache: no tool ran for it.
    #[serde(default)]
    pub cached: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageResult {
    pub image: String,
    pub reference: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patched_reference: Option<String>,
    pub platforms: Vec<PlatformResult>,
    pub seconds: f64,
}

impl ImageResult {
    pub fn new(image: &crate::catalog::Image) -> ImageResult {
        ImageResult {
            image: image.name.clone(),
            reference: image.reference.clone(),
            action: Action::Planned,
            failure: None,
            patched_reference: None,
            platforms: image
                .platforms
                .iter()
                .map(|p| PlatformResult {
                    platform: p.clone(),
                    ..Default::default()
                })
                .collect(),
            seconds: 0.0,
        }
    }

    pub fn fail(&mut self, stage: Stage, message: impl Into<String>) {
        self.action = Action::Failed;
        self.failure = Some(Failure {
            stage,
            message: message.into(),
        });
    }

    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    pub fn platform_mut(&mut self, p: &str) -> &mut PlatformResult {
        let i = self
            .platforms
            .iter()
            .position(|x| x.platform == p)
            .expect("platform of this image");
        &mut self.platforms[i]
    }

    fn action_text(&self) -> String {
        match (&self.action, &self.failure) {
            (_, Some(f)) => format!("failed at {}", f.stage),
            (a, None) => serde_json::to_value(a)
                .ok()
                .and_then(|v| v.as_str().map(|s| s.replace('-', " ")))
                .unwrap_or_default(),
        }
    }
}

/// The whole run, as written by `--json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub command: String,
    pub catalog: Utf8PathBuf,
    pub registry: String,
    pub mode: String,
    pub exit_code: i32,
    pub seconds: f64,
    pub images: Vec<ImageResult>,
}

fn counts_cell(c: &Option<Counts>) -> String {
    c.as_ref().map_or("-".into(), Counts::summary)
}

fn rows(run: &RunReport) -> Vec<[String; 6]> {
    let mut rows = Vec::new();
    for r in &run.images {
        for (i, p) in r.platforms.iter().enumerate() {
            let first = i == 0;
            let cached = if p.cached { " (cached)" } else { "" };
            rows.push([
                if first {
                    r.image.clone()
                } else {
                    String::new()
                },
                p.platform.clone(),
                format!("{} → {}", counts_cell(&p.before), counts_cell(&p.after)),
                if first {
                    format!("{}{cached}", r.action_text())
                } else {
                    cached.trim().to_string()
                },
                if first {
                    r.patched_reference.clone().unwrap_or_else(|| "-".into())
                } else {
                    String::new()
                },
                if first {
                    format!("{:.1}s", r.seconds)
                } else {
                    String::new()
                },
            ]);
        }
    }
    rows
}

const HEAD: [&str; 6] = [
    "image",
    "platform",
    "fixable before → after",
    "action",
    "patched reference",
    "time",
];

/// A plain table for the terminal, then one line per failure.
pub fn terminal(run: &RunReport) -> String {
    let rows = rows(run);
    let mut width = HEAD.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (c, w) in cells.iter().zip(width) {
            let pad = w - c.chars().count();
            let _ = write!(s, "{c}{}  ", " ".repeat(pad));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(HEAD);
    for r in &rows {
        out += &line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
    }
    let failed: Vec<&ImageResult> = run.images.iter().filter(|r| r.failed()).collect();
    if failed.is_empty() {
        let _ = writeln!(
            out,
            "{}: {} image(s) fine in {:.1}s",
            run.command,
            run.images.len(),
            run.seconds
        );
    } else {
        let _ = writeln!(
            out,
            "{}: {} of {} image(s) failed:",
            run.command,
            failed.len(),
            run.images.len()
        );
        for r in failed {
            let f = r.failure.as_ref().expect("failed");
            let _ = writeln!(out, "  {} failed at {}: {}", r.image, f.stage, f.message);
        }
    }
    out
}

const SUMMARY_LIMIT: usize = 1024 * 1024 - 1024;

/// GitHub-flavoured markdown for `$GITHUB_STEP_SUMMARY`, kept under GitHub's 1 MiB limit.
pub fn markdown(run: &RunReport) -> String {
    let failed = run.images.iter().filter(|r| r.failed()).count();
    let mut md = format!(
        "### cargo xtask {}: {}\n\n",
        run.command,
        if failed == 0 {
            "all images fine".to_string()
        } else {
            format!("{failed} image(s) failed")
        }
    );
    md += &format!("| {} |\n|{}\n", HEAD.join(" | "), "---|".repeat(HEAD.len()));
    for r in rows(run) {
        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        md += &format!("| {} |\n", cells.join(" | "));
    }
    for r in run.images.iter().filter(|r| r.failed()) {
        let f = r.failure.as_ref().expect("failed");
        md += &format!(
            "\n<details><summary>{} failed at {}</summary>\n\n```\n{}\n```\n</details>\n",
            r.image,
            f.stage,
            f.message.replace("```", "'''")
        );
    }
    let mut details = String::new();
    for r in &run.images {
        for p in &r.platforms {
            for (what, c) in [("before", &p.before), ("after", &p.after)] {
                if let Some(c) = c.as_ref().filter(|c| c.total > 0) {
                    let ids: Vec<&str> = c.ids.iter().map(String::as_str).collect();
                    details +=
                        &format!("- {} {} {what}: {}\n", r.image, p.platform, ids.join(", "));
                }
            }
        }
    }
    if !details.is_empty() {
        md += &format!("\n<details><summary>vulnerability IDs</summary>\n\n{details}</details>\n");
    }
    if md.len() > SUMMARY_LIMIT {
        let mut cut = SUMMARY_LIMIT;
        while !md.is_char_boundary(cut) {
            cut -= 1;
        }
        md.truncate(cut);
        md += "\n\n… (truncated at GitHub's 1 MiB step-summary limit; see the JSON results)\n";
    }
    md
}

/// `::error::` annotations: at most 10 per step (GitHub's limit), the summary first.
pub fn annotations(run: &RunReport) -> Vec<String> {
    let failed: Vec<&ImageResult> = run.images.iter().filter(|r| r.failed()).collect();
    if failed.is_empty() {
        return Vec::new();
    }
    let names: Vec<&str> = failed.iter().map(|r| r.image.as_str()).collect();
    let mut out = vec![format!(
        "::error title=cargo xtask {}::{} image(s) failed: {}",
        run.command,
        failed.len(),
        escape(&names.join(", "))
    )];
    for r in failed.iter().take(9) {
        let f = r.failure.as_ref().expect("failed");
        out.push(format!(
            "::error title={} failed at {}::{}",
            r.image,
            f.stage,
            escape(&f.message)
        ));
    }
    out
}

/// Workflow-command escaping of a message.
pub fn escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests;
