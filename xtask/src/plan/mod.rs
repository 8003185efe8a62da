//! The plan: a pure function of catalog + options. Every tool call the pipeline makes is built
//! here (through the tool modules), so `--dry-run` prints exactly what a run would execute and
//! unit tests can assert it. Steps whose run depends on an earlier result say so (`when`).

pub mod cmd;

use camino::Utf8PathBuf;

use crate::catalog::{Catalog, Image, Mode};
use crate::report::Stage;
use crate::tools::{buildx, copa, registry, trivy};
use cmd::Cmd;

/// Where every file of a run goes, under `--out`.
#[derive(Debug, Clone)]
pub struct Layout {
    pub out: Utf8PathBuf,
}

/// `linux/arm64` → `linux-arm64` (a path and SARIF-category component).
pub fn slug(platform: &str) -> String {
    platform.replace('/', "-")
}

impl Layout {
    pub fn dir(&self, image: &str, platform: &str) -> Utf8PathBuf {
        self.out.join("reports").join(image).join(slug(platform))
    }
    pub fn report(&self, image: &str, platform: &str) -> Utf8PathBuf {
        self.dir(image, platform).join("trivy.json")
    }
    pub fn rescan(&self, image: &str, platform: &str) -> Utf8PathBuf {
        self.dir(image, platform).join("rescan.json")
    }
    pub fn sarif(&self, image: &str, platform: &str) -> Utf8PathBuf {
        self.dir(image, platform).join("trivy.sarif")
    }
    pub fn vex(&self, image: &str, platform: &str) -> Utf8PathBuf {
        self.dir(image, platform).join("vex.json")
    }
    /// Copa's report directory for a multi-platform patch: one report per platform to patch.
    pub fn copa_reports(&self, image: &str) -> Utf8PathBuf {
        self.out.join("reports").join(image).join("copa-reports")
    }
    pub fn multi_vex(&self, image: &str) -> Utf8PathBuf {
        self.out.join("reports").join(image).join("vex.json")
    }
    /// The label step's Dockerfile (its folder is the empty build context).
    pub fn label_dockerfile(&self) -> Utf8PathBuf {
        self.out.join("label").join("Dockerfile")
    }
    pub fn metadata(&self, image: &str) -> Utf8PathBuf {
        self.out.join("build").join(format!("{image}.json"))
    }
    /// The last `patch` result of an image, read by `publish`.
    pub fn state(&self, image: &str) -> Utf8PathBuf {
        self.out.join("state").join(format!("{image}.json"))
    }
    pub fn cache(&self) -> Utf8PathBuf {
        self.out.join("cache")
    }
}

/// One step of an image's plan.
#[derive(Debug, Clone)]
pub struct Step {
    pub stage: Stage,
    /// Empty: always. Otherwise the condition, in words.
    pub when: &'static str,
    pub cmd: Cmd,
}

fn step(stage: Stage, when: &'static str, cmd: Cmd) -> Step {
    Step { stage, when, cmd }
}

// ---- the argv of each stage ----------------------------------------------------------------

pub fn build(cat: &Catalog, image: &Image, l: &Layout) -> Cmd {
    buildx::build(cat, image, &l.metadata(&image.name))
}

/// Package types scanned: the catalog's, plus the gate's when `--gate` is on (one scan serves both).
pub fn pkg_types(cat: &Catalog, gate: bool) -> Vec<String> {
    let mut t = cat.scan.pkg_types.clone();
    if gate {
        for g in &cat.scan.gate.pkg_types {
            if !t.contains(g) {
                t.push(g.clone());
            }
        }
    }
    t
}

/// Scan of the original image, one platform.
pub fn scan(cat: &Catalog, image: &Image, platform: &str, gate: bool, l: &Layout) -> Cmd {
    let source = match cat.mode {
        Mode::Local => trivy::Source::Docker,
        Mode::Registry => trivy::Source::Remote,
    };
    let types = pkg_types(cat, gate);
    let out = l.report(&image.name, platform);
    trivy::scan(
        cat,
        &trivy::ScanSpec {
            target: &image.reference,
            source,
            platform: Some(platform),
            pkg_types: &types,
            output: &out,
        },
    )
}

pub fn sarif(cat: &Catalog, image: &Image, platform: &str, l: &Layout) -> Cmd {
    trivy::to_sarif(
        cat,
        &l.report(&image.name, platform),
        &l.sarif(&image.name, platform),
    )
}

/// The local reference Copa gives the patched image of one platform.
pub fn patched_local(cat: &Catalog, image: &Image, platform: &str) -> String {
    let tag = image.patched_tag(&cat.patch.suffix);
    let tag = if image.platforms.len() > 1 {
        copa::platform_tag(&tag, platform)
    } else {
        tag
    };
    format!("{}:{tag}", image.repo_ref())
}

/// `copa patch`: one report for a one-platform image; a directory of the reports of the
/// platforms to patch for a multi-platform image (the others are preserved).
pub fn patch(cat: &Catalog, image: &Image, l: &Layout) -> Cmd {
    let tag = image.patched_tag(&cat.patch.suffix);
    if let [p] = image.platforms.as_slice() {
        let (report, vex) = (l.report(&image.name, p), l.vex(&image.name, p));
        copa::patch(
            cat,
            &copa::PatchSpec {
                image: &image.reference,
                report: &report,
                tag: &tag,
                vex: &vex,
            },
        )
    } else {
        let (dir, vex) = (l.copa_reports(&image.name), l.multi_vex(&image.name));
        copa::patch(
            cat,
            &copa::PatchSpec {
                image: &image.reference,
                report: &dir,
                tag: &tag,
                vex: &vex,
            },
        )
    }
}

/// Labels of a patched image: where it came from, what patched it, from which report.
pub fn patched_labels(
    cat: &Catalog,
    image: &Image,
    original_digest: &str,
    report_sha256: &str,
) -> Vec<(String, String)> {
    vec![
        (
            "org.opencontainers.image.base.name".into(),
            image.reference.clone(),
        ),
        (
            "org.opencontainers.image.base.digest".into(),
            original_digest.into(),
        ),
        ("dev.copacetic.version".into(), cat.tools.copa.clone()),
        ("dev.xtask.trivy-report.sha256".into(), report_sha256.into()),
    ]
}

pub fn relabel(
    cat: &Catalog,
    image: &Image,
    platform: &str,
    labels: &[(String, String)],
    l: &Layout,
) -> Cmd {
    buildx::relabel(
        cat,
        &patched_local(cat, image, platform),
        platform,
        labels,
        &l.label_dockerfile(),
    )
}

/// Scan of a patched image (always in the local engine, where Copa loaded it).
pub fn rescan(cat: &Catalog, image: &Image, platform: &str, l: &Layout) -> Cmd {
    let target = patched_local(cat, image, platform);
    let out = l.rescan(&image.name, platform);
    trivy::scan(
        cat,
        &trivy::ScanSpec {
            target: &target,
            source: trivy::Source::Docker,
            platform: Some(platform),
            pkg_types: &cat.scan.pkg_types,
            output: &out,
        },
    )
}

pub fn smoke(cat: &Catalog, image: &Image, platform: &str) -> Cmd {
    registry::smoke(
        cat,
        &patched_local(cat, image, platform),
        platform,
        &image.smoke,
    )
}

/// The same smoke run on the original (`smoke_compare`); pulled if it is only in the registry.
pub fn smoke_original(cat: &Catalog, image: &Image, platform: &str) -> Cmd {
    let mut c = registry::smoke(cat, &image.reference, platform, &image.smoke);
    if let Some(i) = c.args.iter().position(|a| a == "never") {
        c.args[i] = "missing".into();
    }
    c
}

/// The sources of the patched multi-arch index: the patched per-platform images, and the
/// original (by digest) for platforms that were not patched.
pub fn index_sources(
    cat: &Catalog,
    image: &Image,
    patched: &[String],
    original_digests: &[(String, String)],
) -> Vec<String> {
    image
        .platforms
        .iter()
        .map(|p| {
            if patched.contains(p) {
                patched_local(cat, image, p)
            } else {
                let d = original_digests
                    .iter()
                    .find(|(q, _)| q == p)
                    .map(|(_, d)| d.as_str())
                    .unwrap_or("<digest>");
                format!("{}@{d}", image.repo_ref())
            }
        })
        .collect()
}

/// What `publish` pushes for the patched image (never the original tag).
pub fn publish_patched(
    cat: &Catalog,
    image: &Image,
    patched: &[String],
    digests: &[(String, String)],
) -> Vec<Cmd> {
    let target = image.patched_reference(&cat.patch.suffix);
    debug_assert_ne!(target, image.reference);
    if image.platforms.len() == 1 {
        return vec![registry::push(cat, &target)];
    }
    let mut cmds: Vec<Cmd> = patched
        .iter()
        .map(|p| registry::push(cat, &patched_local(cat, image, p)))
        .collect();
    cmds.push(buildx::create_index(
        cat,
        &target,
        &index_sources(cat, image, patched, digests),
    ));
    cmds
}

// ---- the plan of a whole command -----------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Build,
    Scan { gate: bool },
    Patch,
    Publish,
}

/// Every step a command may run for one image, in order.
pub fn image_plan(cat: &Catalog, image: &Image, command: Command, l: &Layout) -> Vec<Step> {
    let mut steps = Vec::new();
    match command {
        Command::Build => steps.push(step(Stage::Build, "", build(cat, image, l))),
        Command::Scan { gate } => {
            for p in &image.platforms {
                steps.push(step(Stage::Scan, "", scan(cat, image, p, gate, l)));
                steps.push(step(Stage::Scan, "", sarif(cat, image, p, l)));
            }
        }
        Command::Patch => {
            for p in &image.platforms {
                steps.push(step(Stage::Scan, "", scan(cat, image, p, false, l)));
                steps.push(step(Stage::Scan, "", sarif(cat, image, p, l)));
            }
            steps.push(step(
                Stage::Patch,
                "if any platform has fixable OS vulnerabilities",
                patch(cat, image, l),
            ));
            for p in &image.platforms {
                let labels = patched_labels(cat, image, "<original digest>", "<report sha256>");
                steps.push(step(
                    Stage::Patch,
                    "for each patched platform",
                    relabel(cat, image, p, &labels, l),
                ));
            }
            for p in &image.platforms {
                steps.push(step(
                    Stage::Rescan,
                    "for each patched platform",
                    rescan(cat, image, p, l),
                ));
            }
            for p in &image.platforms {
                let when = "for each patched platform that passed the gate";
                if image.smoke_compare {
                    steps.push(step(Stage::Smoke, when, smoke_original(cat, image, p)));
                }
                steps.push(step(Stage::Smoke, when, smoke(cat, image, p)));
            }
        }
        Command::Publish => {
            if cat.mode == Mode::Local {
                steps.push(step(
                    Stage::Publish,
                    "",
                    registry::push(cat, &image.reference),
                ));
            }
            if image.platforms.len() > 1 {
                steps.push(step(
                    Stage::Publish,
                    "",
                    buildx::inspect(cat, &image.reference),
                ));
            }
            for c in publish_patched(cat, image, &image.platforms, &[]) {
                steps.push(step(Stage::Publish, "if the patch passed its gate", c));
            }
        }
    }
    steps
}

/// `--dry-run`: the plan, as text, per image.
pub fn render(cat: &Catalog, images: &[Image], command: Command, l: &Layout) -> String {
    let mut out = String::new();
    for image in images {
        out += &format!(
            "# {} ({}; {})\n",
            image.name,
            image.reference,
            image.platforms.join(", ")
        );
        let mut last = "";
        for s in image_plan(cat, image, command, l) {
            if !s.when.is_empty() && s.when != last {
                out += &format!("#   {}: {}\n", s.stage, s.when);
            }
            last = s.when;
            out += &format!("{}\n", s.cmd);
        }
        out += "\n";
    }
    out
}

#[cfg(test)]
mod tests;
