//! The pipeline: runs each selected image through its stages, images in parallel (`--jobs`),
//! stages in order within an image. A failing image is recorded with its stage and reason; it
//! never stops the others.

mod cache;

use std::time::Instant;

use anyhow::{Context, Result};

use crate::catalog::{Catalog, Image, Mode};
use crate::plan::{self, Command, Layout};
use crate::report::{Action, ImageResult, Stage};
use crate::runner::{self, Runner};
use crate::tools::{buildx, copa, trivy};

pub struct Ctx<'a> {
    pub cat: &'a Catalog,
    pub runner: &'a Runner,
    pub layout: &'a Layout,
    pub use_cache: bool,
}

/// Run `command` for every image, `jobs` at a time.
pub fn run(ctx: &Ctx, images: &[Image], command: Command, jobs: usize) -> Vec<ImageResult> {
    // Longest first: images with more platforms (emulated ones are the slow part) start first,
    // so the longest image does not begin last. Results come back in catalog order.
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(images[i].platforms.len()));
    let mut results: Vec<Option<ImageResult>> = (0..images.len()).map(|_| None).collect();
    let done = runner::parallel(&order, jobs, |&i| run_image(ctx, &images[i], command));
    for (i, r) in order.into_iter().zip(done) {
        results[i] = Some(r);
    }
    results
        .into_iter()
        .map(|r| r.expect("every image ran"))
        .collect()
}

fn run_image(ctx: &Ctx, image: &Image, command: Command) -> ImageResult {
    let start = Instant::now();
    let mut r = ImageResult::new(image);
    let label = image.name.as_str();
    let outcome = match command {
        Command::Build => build(ctx, image, &mut r),
        Command::Scan { gate } => scan(ctx, image, gate, &mut r),
        Command::Patch => patch(ctx, image, &mut r),
        Command::Publish => publish(ctx, image, &mut r),
    };
    if let Err(e) = outcome {
        let (stage, msg) = describe(&e, default_stage(command));
        ctx.runner
            .log
            .line(label, &format!("✗ failed at {stage}: {msg}"));
        r.fail(stage, msg);
    }
    r.seconds = start.elapsed().as_secs_f64();
    ctx.runner.log.flush(label);
    r
}

fn default_stage(command: Command) -> Stage {
    match command {
        Command::Build => Stage::Build,
        Command::Scan { .. } => Stage::Scan,
        Command::Patch => Stage::Patch,
        Command::Publish => Stage::Publish,
    }
}

/// The stage an error belongs to, and its message without the stage prefix.
fn describe(e: &anyhow::Error, default: Stage) -> (Stage, String) {
    let stage = e
        .downcast_ref::<StageError>()
        .map(|s| s.0)
        .unwrap_or(default);
    let msg = format!("{e:#}");
    let msg = msg
        .strip_prefix(&format!("{stage}: "))
        .unwrap_or(&msg)
        .to_string();
    (stage, msg)
}

/// Marks which stage an error belongs to.
#[derive(Debug)]
struct StageError(Stage);
impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl std::error::Error for StageError {}

trait AtStage<T> {
    fn at(self, stage: Stage) -> Result<T>;
}
impl<T> AtStage<T> for Result<T> {
    fn at(self, stage: Stage) -> Result<T> {
        self.map_err(|e| e.context(StageError(stage)))
    }
}

fn label_of(image: &Image, platform: &str) -> String {
    if image.platforms.len() > 1 {
        format!("{} {platform}", image.name)
    } else {
        image.name.clone()
    }
}

// ---- build ---------------------------------------------------------------------------------

fn build(ctx: &Ctx, image: &Image, r: &mut ImageResult) -> Result<()> {
    let cmd = plan::build(ctx.cat, image, ctx.layout);
    ctx.runner.run(&image.name, &cmd).at(Stage::Build)?;
    let digest = std::fs::read_to_string(ctx.layout.metadata(&image.name))
        .ok()
        .and_then(|t| buildx::metadata_digest(&t));
    r.action = if ctx.cat.mode == Mode::Registry {
        Action::Pushed
    } else {
        Action::Built
    };
    for p in &mut r.platforms {
        p.digest = digest.clone();
    }
    Ok(())
}

// ---- scan ----------------------------------------------------------------------------------

/// The digest of each platform of the original image: the cache key's anchor.
fn platform_digests(ctx: &Ctx, image: &Image) -> Result<Vec<(String, String)>> {
    digests_in(ctx, image, ctx.cat.mode)
}

/// Per-platform digests of the original, from the local engine or from the registry.
fn digests_in(ctx: &Ctx, image: &Image, mode: Mode) -> Result<Vec<(String, String)>> {
    let cmd = match mode {
        Mode::Registry => buildx::inspect(ctx.cat, &image.reference),
        Mode::Local => crate::tools::registry::local_id(ctx.cat, &image.reference),
    };
    let out = ctx.runner.run_unchecked(&image.name, &cmd)?;
    if !out.success() {
        anyhow::bail!(
            "{} is not there (build it first): {}",
            image.reference,
            out.tail(3)
        );
    }
    match mode {
        Mode::Registry => {
            let m = buildx::parse_manifest(&out.stdout)?;
            if m.platforms.is_empty() {
                Ok(image
                    .platforms
                    .iter()
                    .map(|p| (p.clone(), m.digest.clone()))
                    .collect())
            } else {
                Ok(m.platforms
                    .into_iter()
                    .map(|(p, d)| (p.trim_end_matches("/v8").to_string(), d))
                    .collect())
            }
        }
        Mode::Local => {
            let id = out.stdout.trim().to_string();
            Ok(image
                .platforms
                .iter()
                .map(|p| (p.clone(), format!("{id}#{p}")))
                .collect())
        }
    }
}

/// Scan every platform of the original; fills `before` (and `gate`) per platform.
fn scan_all(ctx: &Ctx, image: &Image, gate: bool, r: &mut ImageResult) -> Result<()> {
    let digests = platform_digests(ctx, image).at(Stage::Scan)?;
    for p in &image.platforms {
        let l = label_of(image, p);
        let digest = digests.iter().find(|(q, _)| q == p).map(|(_, d)| d.clone());
        let Some(digest) = digest else {
            return Err(anyhow::anyhow!(
                "{} has no {p} image (it has: {})",
                image.reference,
                digests
                    .iter()
                    .map(|(q, _)| q.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .at(Stage::Scan);
        };
        let report_path = ctx.layout.report(&image.name, p);
        let key = cache::scan_key(ctx.cat, &digest, &plan::pkg_types(ctx.cat, gate));
        let cached = ctx.use_cache && cache::restore(ctx, "scan", &key, &report_path);
        if !cached {
            ctx.runner
                .run(&l, &plan::scan(ctx.cat, image, p, gate, ctx.layout))
                .at(Stage::Scan)?;
        }
        let report = trivy::read_report(&report_path).at(Stage::Scan)?;
        if let Some(got) = report
            .platform
            .as_deref()
            .filter(|got| !trivy::same_platform(got, p))
        {
            // Trivy reads a local image through `docker save`, which yields one platform.
            let _ = std::fs::remove_file(&report_path);
            return Err(anyhow::anyhow!(
                "Trivy scanned {got} instead of {p} of {}: a local multi-platform image is scanned \
                 (and patched) per platform only from a registry: build with --push \
                 (OUTPUT_TYPE=type=registry), or select one platform with TARGET_ARCH",
                image.reference
            ))
            .at(Stage::Scan);
        }
        if !cached {
            cache::store(ctx, "scan", &key, &report_path);
            ctx.runner
                .run(&l, &plan::sarif(ctx.cat, image, p, ctx.layout))
                .at(Stage::Scan)?;
            let sarif = ctx.layout.sarif(&image.name, p);
            let category = format!("trivy-{}-{}", image.name, plan::slug(p));
            std::fs::read_to_string(&sarif)
                .map_err(anyhow::Error::from)
                .and_then(|t| trivy::categorize_sarif(&t, &category))
                .and_then(|t| runner::write_atomic(&sarif, t.as_bytes()))
                .with_context(|| format!("cannot set the code-scanning category of {sarif}"))
                .at(Stage::Scan)?;
        }
        let before = report.fixable_os();
        ctx.runner.log.line(
            &l,
            &format!("fixable OS vulnerabilities: {}", before.summary()),
        );
        let pr = r.platform_mut(p);
        pr.digest = Some(digest);
        pr.cached = cached;
        pr.report = Some(report_path.clone());
        let sarif = ctx.layout.sarif(&image.name, p);
        pr.sarif = sarif.exists().then_some(sarif);
        if gate {
            pr.gate =
                Some(report.gate(&ctx.cat.scan.gate.severities, &ctx.cat.scan.gate.pkg_types));
        }
        pr.before = Some(before);
    }
    Ok(())
}

fn scan(ctx: &Ctx, image: &Image, gate: bool, r: &mut ImageResult) -> Result<()> {
    scan_all(ctx, image, gate, r)?;
    r.action = Action::Scanned;
    if gate {
        let found: Vec<String> = r
            .platforms
            .iter()
            .filter_map(|p| {
                p.gate
                    .as_ref()
                    .filter(|g| g.total > 0)
                    .map(|g| format!("{}: {}", p.platform, g.summary()))
            })
            .collect();
        if !found.is_empty() {
            r.fail(
                Stage::Gate,
                format!(
                    "{} {} finding(s) in {} ({}); fix them or patch with `cargo xtask patch`",
                    ctx.cat.scan.gate.severities.join(","),
                    ctx.cat.scan.gate.pkg_types.join("+"),
                    image.reference,
                    found.join("; ")
                ),
            );
        }
    }
    Ok(())
}

// ---- patch ---------------------------------------------------------------------------------

fn patch(ctx: &Ctx, image: &Image, r: &mut ImageResult) -> Result<()> {
    let result = patch_inner(ctx, image, r);
    // publish reads this, also after a failure (so it pushes nothing for a failed gate)
    let mut saved = r.clone();
    if let Err(e) = &result {
        let (stage, msg) = describe(e, Stage::Patch);
        saved.fail(stage, msg);
    }
    let _ = runner::write_atomic(
        &ctx.layout.state(&image.name),
        serde_json::to_string_pretty(&saved)
            .unwrap_or_default()
            .as_bytes(),
    );
    result
}

fn patch_inner(ctx: &Ctx, image: &Image, r: &mut ImageResult) -> Result<()> {
    scan_all(ctx, image, false, r)?;
    let to_patch: Vec<String> = r
        .platforms
        .iter()
        .filter(|p| p.before.as_ref().is_some_and(|c| c.total > 0))
        .map(|p| p.platform.clone())
        .collect();
    if to_patch.is_empty() {
        r.action = Action::NothingToPatch;
        ctx.runner.log.line(
            &image.name,
            "no fixable OS vulnerabilities: Copa not needed",
        );
        return Ok(());
    }

    if ctx.cat.mode == Mode::Local && image.platforms.len() > 1 {
        // Copa v0.14 reads a local image through `docker save` (one platform) and then looks for
        // the index in the registry: a local multi-platform image cannot be patched.
        return Err(anyhow::anyhow!(
            "{} is a local multi-platform image ({}); Copa patches multi-platform images from a \
             registry: build with --push (OUTPUT_TYPE=type=registry) and patch the published \
             reference, or patch one platform (TARGET_ARCH=amd64)",
            image.reference,
            image.platforms.join(", ")
        ))
        .at(Stage::Patch);
    }
    let key = cache::patch_key(ctx.cat, &r.platforms);
    let cached = ctx.use_cache && cache::patch_hit(ctx, image, &key, &to_patch, r);
    if !cached {
        copa_patch(ctx, image, &to_patch, r)?;
        if r.action == Action::UpToDate {
            return Ok(());
        }
        for p in &to_patch {
            label(ctx, image, p, r)?;
        }
        for p in &to_patch {
            rescan_and_gate(ctx, image, p, r)?;
        }
        for p in &to_patch {
            smoke(ctx, image, p).at(Stage::Smoke)?;
        }
        cache::patch_store(ctx, image, &key, &to_patch, r);
    }
    r.action = Action::Patched;
    r.patched_reference = Some(image.patched_reference(&ctx.cat.patch.suffix));
    Ok(())
}

fn copa_patch(ctx: &Ctx, image: &Image, to_patch: &[String], r: &mut ImageResult) -> Result<()> {
    if image.platforms.len() > 1 {
        // Copa discovers platforms from the reports in the directory: exactly those to patch.
        let dir = ctx.layout.copa_reports(&image.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {dir}"))
            .at(Stage::Patch)?;
        for p in to_patch {
            std::fs::copy(
                ctx.layout.report(&image.name, p),
                dir.join(format!("{}.json", plan::slug(p))),
            )
            .with_context(|| format!("cannot stage the {p} report for Copa"))
            .at(Stage::Patch)?;
        }
    }
    let cmd = plan::patch(ctx.cat, image, ctx.layout);
    let out = ctx
        .runner
        .run_unchecked(&image.name, &cmd)
        .at(Stage::Patch)?;
    if !out.success() {
        let all = out.all();
        return Err(anyhow::anyhow!(
            "copa exited with {}: {}\n{}",
            out.code.map_or("a signal".into(), |c| c.to_string()),
            copa::hint(&all),
            out.tail(8)
        ))
        .at(Stage::Patch);
    }
    if copa::outcome(&out.all()) == copa::Outcome::UpToDate {
        ctx.runner
            .log
            .line(&image.name, "Copa: already up-to-date, no image made");
        r.action = Action::UpToDate;
        return Ok(());
    }
    let vex_src = if image.platforms.len() > 1 {
        ctx.layout.multi_vex(&image.name)
    } else {
        ctx.layout.vex(&image.name, &to_patch[0])
    };
    for p in to_patch {
        let pr = r.platform_mut(p);
        pr.patched_image = Some(plan::patched_local(ctx.cat, image, p));
        pr.vex = vex_src.exists().then(|| vex_src.clone());
    }
    Ok(())
}

/// Labels naming the original (digest, reference), the Copa version and the report's digest.
fn label(ctx: &Ctx, image: &Image, p: &str, r: &mut ImageResult) -> Result<()> {
    let dockerfile = ctx.layout.label_dockerfile();
    runner::write_atomic(&dockerfile, buildx::LABEL_DOCKERFILE.as_bytes()).at(Stage::Patch)?;
    let pr = r.platform_mut(p);
    let digest = pr.digest.clone().unwrap_or_default();
    let digest = digest.split('#').next().unwrap_or_default().to_string();
    let report = crate::doctor::sha256_file(&ctx.layout.report(&image.name, p)).at(Stage::Patch)?;
    let labels = plan::patched_labels(ctx.cat, image, &digest, &format!("sha256:{report}"));
    ctx.runner
        .run(
            &label_of(image, p),
            &plan::relabel(ctx.cat, image, p, &labels, ctx.layout),
        )
        .at(Stage::Patch)?;
    Ok(())
}

/// The patched image must still work: exit 0 with the catalog's smoke arguments, or, with
/// `smoke_compare`, exit exactly as the original does.
fn smoke(ctx: &Ctx, image: &Image, p: &str) -> Result<()> {
    let l = label_of(image, p);
    if !image.smoke_compare {
        ctx.runner.run(&l, &plan::smoke(ctx.cat, image, p))?;
        return Ok(());
    }
    let original = ctx
        .runner
        .run_unchecked(&l, &plan::smoke_original(ctx.cat, image, p))?;
    let patched = ctx
        .runner
        .run_unchecked(&l, &plan::smoke(ctx.cat, image, p))?;
    if patched.code != original.code {
        anyhow::bail!(
            "the patched image exits {:?} where the original exits {:?} (args {:?}):\n{}",
            patched.code,
            original.code,
            image.smoke,
            patched.tail(6)
        );
    }
    Ok(())
}

/// The gate: fewer fixable OS vulnerabilities than before, and none that was not there before.
pub fn gate(before: &trivy::Counts, after: &trivy::Counts) -> Result<(), String> {
    let new: Vec<&str> = after
        .ids
        .difference(&before.ids)
        .map(String::as_str)
        .collect();
    if !new.is_empty() {
        return Err(format!(
            "the patched image has vulnerabilities the original had not: {}",
            new.join(", ")
        ));
    }
    if after.total >= before.total {
        return Err(format!(
            "no improvement: {} fixable before, {} after (still: {})",
            before.total,
            after.total,
            after.ids.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

fn rescan_and_gate(ctx: &Ctx, image: &Image, p: &str, r: &mut ImageResult) -> Result<()> {
    let l = label_of(image, p);
    ctx.runner
        .run(&l, &plan::rescan(ctx.cat, image, p, ctx.layout))
        .at(Stage::Rescan)?;
    let path = ctx.layout.rescan(&image.name, p);
    let after = trivy::read_report(&path).at(Stage::Rescan)?.fixable_os();
    let pr = r.platform_mut(p);
    pr.rescan_report = Some(path);
    let before = pr.before.clone().unwrap_or_default();
    ctx.runner.log.line(
        &l,
        &format!(
            "fixable OS vulnerabilities: {} → {}",
            before.summary(),
            after.summary()
        ),
    );
    pr.after = Some(after.clone());
    gate(&before, &after)
        .map_err(|m| anyhow::anyhow!("{m}"))
        .at(Stage::Gate)
}

// ---- publish -------------------------------------------------------------------------------

fn publish(ctx: &Ctx, image: &Image, r: &mut ImageResult) -> Result<()> {
    let cat = ctx.cat;
    // The original's digests, read once: the local push key and the check below both use them.
    let mut now = None;
    if cat.mode == Mode::Local {
        // The original from the local engine; skipped when the registry already has this build.
        let key = now
            .insert(platform_digests(ctx, image).at(Stage::Publish)?)
            .iter()
            .map(|(p, d)| format!("{p}={d}"))
            .collect::<Vec<_>>()
            .join(",");
        if ctx.use_cache && cache::pushed(ctx, image, &image.reference, &key) {
            ctx.runner
                .log
                .line(&image.name, "original already in the registry: no push");
        } else {
            ctx.runner
                .run(
                    &image.name,
                    &crate::tools::registry::push(cat, &image.reference),
                )
                .at(Stage::Publish)?;
            cache::mark_pushed(ctx, image, &image.reference, &key);
        }
    }
    let state = ctx.layout.state(&image.name);
    let patched: Option<ImageResult> = std::fs::read_to_string(&state)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let Some(patched) = patched else {
        ctx.runner.log.line(
            &image.name,
            "no patch result (run `cargo xtask patch` first): originals only",
        );
        r.action = Action::Published;
        return Ok(());
    };
    r.platforms = patched.platforms.clone();
    for p in &mut r.platforms {
        p.cached = false; // the patch's cache state is not publish's
    }
    if let Some(f) = &patched.failure {
        // Nothing is pushed for an image whose patch or gate failed.
        r.fail(
            f.stage,
            format!("not publishing a patched image: {}", f.message),
        );
        return Ok(());
    }
    if patched.action != Action::Patched || patched.reference != image.reference {
        r.action = Action::Published;
        return Ok(());
    }
    // The patched image must still belong to the original that is there now.
    let now = match now {
        Some(n) => n,
        None => platform_digests(ctx, image).at(Stage::Publish)?,
    };
    for p in &patched.platforms {
        let current = now.iter().find(|(q, _)| *q == p.platform).map(|(_, d)| d);
        if p.patched_image.is_some() && current != p.digest.as_ref() {
            return Err(anyhow::anyhow!(
                "{} {} changed since `cargo xtask patch` (was {}, now {}): run patch again",
                image.reference,
                p.platform,
                p.digest.as_deref().unwrap_or("-"),
                current.map_or("missing", |d| d.as_str())
            ))
            .at(Stage::Publish);
        }
    }
    let done: Vec<String> = patched
        .platforms
        .iter()
        .filter(|p| p.patched_image.is_some())
        .map(|p| p.platform.clone())
        .collect();
    // The index keeps unpatched platforms by their registry digest.
    let digests = match (image.platforms.len() > 1, ctx.cat.mode) {
        (false, _) => Vec::new(),
        (true, Mode::Registry) => now,
        (true, Mode::Local) => digests_in(ctx, image, Mode::Registry).at(Stage::Publish)?,
    };
    let key = cache::publish_key(&patched);
    let target = image.patched_reference(&cat.patch.suffix);
    let already = ctx.use_cache && cache::pushed(ctx, image, &target, &key);
    for p in &mut r.platforms {
        p.cached = already;
    }
    if already {
        ctx.runner.log.line(
            &image.name,
            "patched image already published with these contents: no push",
        );
    } else {
        for cmd in plan::publish_patched(cat, image, &done, &digests) {
            ctx.runner.run(&image.name, &cmd).at(Stage::Publish)?;
        }
        cache::mark_pushed(ctx, image, &target, &key);
    }
    r.action = Action::Published;
    r.patched_reference = Some(target);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::trivy::Counts;

    fn counts(ids: &[&str]) -> Counts {
        Counts {
            total: ids.len() as u32,
            ids: ids.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn gate_needs_fewer_and_nothing_new() {
        assert!(gate(&counts(&["A", "B"]), &counts(&[])).is_ok());
        assert!(gate(&counts(&["A", "B"]), &counts(&["B"])).is_ok());
        let same = gate(&counts(&["A"]), &counts(&["A"])).unwrap_err();
        assert!(same.contains("no improvement"), "{same}");
        let new = gate(&counts(&["A", "B"]), &counts(&["C"])).unwrap_err();
        assert!(new.contains("C"), "{new}");
    }
}
