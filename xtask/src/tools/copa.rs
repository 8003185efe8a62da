//! Copa: the argv of `copa patch` and the meaning of its outcome.

use camino::Utf8Path;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::plan::cmd::{partial, Cmd};

pub struct PatchSpec<'a> {
    /// The image to patch: a local engine reference or a registry reference.
    pub image: &'a str,
    /// One report file (one platform), or a directory of per-platform reports.
    pub report: &'a Utf8Path,
    /// The patched tag (`<tag>-patched`).
    pub tag: &'a str,
    /// Platforms to patch when `report` is a directory; the image's others are preserved.
    pub vex: &'a Utf8Path,
}

pub fn patch(cat: &Catalog, spec: &PatchSpec) -> Cmd {
    let mut c = Cmd::new("copa", cat.timeouts.patch)
        .arg("patch")
        .arg("--image")
        .arg(spec.image)
        .arg("--report")
        .arg(spec.report.as_str())
        .arg("--tag")
        .arg(spec.tag)
        .arg("--timeout")
        .arg(format!("{}s", cat.timeouts.patch.as_secs()))
        .opt("--addr", &cat.patch.buildkit_addr)
        .args(["--progress", "plain", "--format", "openvex", "--output"])
        .arg(partial(spec.vex).as_str())
        .output(spec.vex.to_path_buf());
    if let Some(policy) = cat.source_policy() {
        c = c.env("EXPERIMENTAL_BUILDKIT_SOURCE_POLICY", policy.as_str());
    }
    c
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A patched image was made.
    Patched,
    /// Copa found nothing to update and made no image (exit 0): an outcome, not a failure.
    UpToDate,
}

/// Copa exits 0 both when it patched and when there was nothing to do; only its words tell.
pub fn outcome(output: &str) -> Outcome {
    let o = output.to_ascii_lowercase();
    if o.contains("already up-to-date")
        || o.contains("no patch was applied")
        || o.contains("no patchable")
    {
        Outcome::UpToDate
    } else {
        Outcome::Patched
    }
}

/// The local tag Copa gives one platform of a multi-platform patch (`<tag>-<arch>[-<variant>]`).
pub fn platform_tag(tag: &str, platform: &str) -> String {
    let arch: Vec<&str> = platform.split('/').skip(1).collect();
    format!("{tag}-{}", arch.join("-"))
}

/// What to tell the user about a Copa failure, from its output.
pub fn hint(output: &str) -> &'static str {
    let o = output.to_ascii_lowercase();
    if o.contains("deadline exceeded") || o.contains("timeout") {
        "Copa ran out of time: raise [patch] timeout in the catalog"
    } else if o.contains("buildkit")
        && (o.contains("connect") || o.contains("unavailable") || o.contains("no such file"))
    {
        "Copa cannot reach BuildKit: check [patch] buildkit_addr, or that dockerd runs with the containerd image store"
    } else if o.contains("not found") && o.contains("debian") {
        "Copa's Debian tooling image did not resolve: tag a local debian:<major>-slim or set [patch] source_policy"
    } else {
        "see Copa's output above"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_date_is_an_outcome() {
        let out = "level=info msg=\"Image is already up-to-date. No patch was applied.\"";
        assert_eq!(outcome(out), Outcome::UpToDate);
        assert_eq!(
            outcome("level=info msg=\"Loaded image: x:1-patched\""),
            Outcome::Patched
        );
    }

    #[test]
    fn per_platform_tags() {
        assert_eq!(
            platform_tag("v1-patched", "linux/arm64"),
            "v1-patched-arm64"
        );
        assert_eq!(
            platform_tag("v1-patched", "linux/arm/v7"),
            "v1-patched-arm-v7"
        );
    }

    #[test]
    fn hints_name_the_fix() {
        assert!(hint("context deadline exceeded").contains("timeout"));
        assert!(hint("failed to connect to buildkit: unavailable").contains("buildkit_addr"));
    }
}
