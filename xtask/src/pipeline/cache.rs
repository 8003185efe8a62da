//! The incremental cache: results keyed by what they depend on (image digest per platform,
//! Trivy DB version, tool pins, the relevant settings). A changed input changes the key, so
//! only what it touches is recomputed. Entries are written atomically (temp + rename) and the
//! out dir is locked per run, so a killed or concurrent run never leaves a half entry behind.

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Ctx;
use crate::catalog::{Catalog, Image};
use crate::report::{ImageResult, PlatformResult};
use crate::runner;
use crate::tools::{buildx, registry, trivy};

fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Trivy cache dir in effect (catalog, TRIVY_CACHE_DIR, or Trivy's default).
pub fn trivy_cache_dir(cat: &Catalog) -> Utf8PathBuf {
    if !cat.scan.cache_dir.is_empty() {
        return cat.scan.cache_dir.clone().into();
    }
    if let Ok(d) = std::env::var("TRIVY_CACHE_DIR") {
        return d.into();
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    Utf8PathBuf::from(home).join(".cache/trivy")
}

fn scan_settings(cat: &Catalog) -> String {
    let db = trivy::db_version(&trivy_cache_dir(cat)).unwrap_or_else(|| "db-unknown".into());
    format!(
        "trivy={} db={db} unfixed={} sev={} repo={}",
        cat.tools.trivy,
        cat.scan.ignore_unfixed,
        cat.scan.severities.join(","),
        cat.scan.db_repository
    )
}

pub fn scan_key(cat: &Catalog, digest: &str, pkg_types: &[String]) -> String {
    hash(&["scan", digest, &pkg_types.join(","), &scan_settings(cat)])
}

pub fn patch_key(cat: &Catalog, platforms: &[PlatformResult]) -> String {
    let mut parts = vec![
        "patch".to_string(),
        cat.tools.copa.clone(),
        cat.patch.suffix.clone(),
        scan_settings(cat),
    ];
    for p in platforms {
        parts.push(format!(
            "{}={}",
            p.platform,
            p.digest.clone().unwrap_or_default()
        ));
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    hash(&refs)
}

fn entry(ctx: &Ctx, kind: &str, key: &str) -> Utf8PathBuf {
    ctx.layout.cache().join(kind).join(format!("{key}.json"))
}

/// Copy a cached file into place; false when there is none (or it is unreadable).
pub fn restore(ctx: &Ctx, kind: &str, key: &str, dest: &Utf8Path) -> bool {
    match std::fs::read(entry(ctx, kind, key)) {
        Ok(bytes) => runner::write_atomic(dest, &bytes).is_ok(),
        Err(_) => false,
    }
}

pub fn store(ctx: &Ctx, kind: &str, key: &str, src: &Utf8Path) {
    if let Ok(bytes) = std::fs::read(src) {
        let _ = runner::write_atomic(&entry(ctx, kind, key), &bytes);
    }
}

#[derive(Serialize, Deserialize)]
struct PatchEntry {
    platforms: Vec<PlatformResult>,
    /// Local image ID of each patched platform image when it was made.
    ids: Vec<(String, String)>,
}

fn local_id(ctx: &Ctx, image: &Image, reference: &str) -> Option<String> {
    let out = ctx
        .runner
        .run_unchecked(&image.name, &registry::local_id(ctx.cat, reference))
        .ok()?;
    out.success().then(|| out.stdout.trim().to_string())
}

/// A patch is reusable when the entry exists and every patched image is still in the engine
/// with the same ID (so the rescan and smoke results still describe it).
pub fn patch_hit(
    ctx: &Ctx,
    image: &Image,
    key: &str,
    to_patch: &[String],
    r: &mut ImageResult,
) -> bool {
    let Ok(text) = std::fs::read_to_string(entry(ctx, "patch", key)) else {
        return false;
    };
    let Ok(e) = serde_json::from_str::<PatchEntry>(&text) else {
        return false;
    };
    for p in to_patch {
        let reference = crate::plan::patched_local(ctx.cat, image, p);
        let want = e.ids.iter().find(|(q, _)| q == p).map(|(_, id)| id.clone());
        if want.is_none() || local_id(ctx, image, &reference) != want {
            return false;
        }
    }
    for cached in e.platforms {
        if to_patch.contains(&cached.platform) {
            let pr = r.platform_mut(&cached.platform);
            pr.after = cached.after;
            pr.rescan_report = cached.rescan_report;
            pr.vex = cached.vex;
            pr.patched_image = cached.patched_image;
            pr.cached = true;
        }
    }
    ctx.runner.log.line(
        &image.name,
        "patched image unchanged since the last run: Copa, rescan and smoke skipped",
    );
    true
}

pub fn patch_store(ctx: &Ctx, image: &Image, key: &str, to_patch: &[String], r: &ImageResult) {
    let mut ids = Vec::new();
    for p in to_patch {
        match local_id(ctx, image, &crate::plan::patched_local(ctx.cat, image, p)) {
            Some(id) => ids.push((p.clone(), id)),
            None => return,
        }
    }
    let e = PatchEntry {
        platforms: r.platforms.clone(),
        ids,
    };
    if let Ok(text) = serde_json::to_vec_pretty(&e) {
        let _ = runner::write_atomic(&entry(ctx, "patch", key), &text);
    }
}

pub fn publish_key(patched: &ImageResult) -> String {
    let mut parts = vec![patched.reference.clone()];
    for p in &patched.platforms {
        parts.push(format!(
            "{}={:?}={:?}",
            p.platform, p.digest, p.patched_image
        ));
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    hash(&refs)
}

/// `target` was pushed before from the same inputs (`key`), and the registry still has it with
/// the digest recorded then: pushing again would change nothing.
pub fn pushed(ctx: &Ctx, image: &Image, target: &str, key: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(pushed_entry(ctx, target)) else {
        return false;
    };
    let mut lines = text.lines();
    if lines.next() != Some(key) {
        return false;
    }
    let Some(digest) = lines.next() else {
        return false;
    };
    registry_digest(ctx, image, target).is_some_and(|d| d == digest)
}

/// Record what `target` holds after a push from `key`.
pub fn mark_pushed(ctx: &Ctx, image: &Image, target: &str, key: &str) {
    if let Some(digest) = registry_digest(ctx, image, target) {
        let _ = runner::write_atomic(
            &pushed_entry(ctx, target),
            format!("{key}\n{digest}\n").as_bytes(),
        );
    }
}

fn pushed_entry(ctx: &Ctx, target: &str) -> Utf8PathBuf {
    entry(ctx, "pushed", &hash(&[target]))
}

fn registry_digest(ctx: &Ctx, image: &Image, target: &str) -> Option<String> {
    let o = ctx
        .runner
        .run_unchecked(&image.name, &buildx::inspect(ctx.cat, target))
        .ok()?;
    o.success()
        .then(|| buildx::parse_manifest(&o.stdout).ok().map(|m| m.digest))
        .flatten()
}
