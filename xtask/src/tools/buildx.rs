//! docker buildx: builds, the builder, and multi-arch indexes (`imagetools`).

use anyhow::{bail, Context, Result};
use camino::Utf8Path;
use serde::Deserialize;

use crate::catalog::{Catalog, Image, Mode};
use crate::plan::cmd::{partial, Cmd};

/// `docker buildx build` of one image for all its platforms, loaded or pushed.
pub fn build(cat: &Catalog, image: &Image, metadata: &Utf8Path) -> Cmd {
    let mut c = Cmd::new("docker", cat.timeouts.build)
        .args(["buildx", "build"])
        .opt("--builder", cat.builder.as_deref().unwrap_or(""))
        .arg("--file")
        .arg(image.dockerfile.as_str())
        .arg("--platform")
        .arg(image.platforms.join(","))
        .arg("--tag")
        .arg(&image.reference)
        .arg("--progress")
        .arg(&cat.progress);
    if cat.build.pull {
        c = c.arg("--pull");
    }
    c = c.opt("--provenance", &cat.build.provenance);
    for (k, v) in labels(cat, image) {
        c = c.arg("--label").arg(format!("{k}={v}"));
    }
    // One platform: Fleet's GOOS/GOARCH build args. Several: each Dockerfile stage derives them
    // from BuildKit's TARGETOS/TARGETARCH, per platform.
    if let [p] = image.platforms.as_slice() {
        let (os, arch) = p.split_once('/').unwrap_or((p, ""));
        let arch = arch.split('/').next().unwrap_or(arch);
        for (k, v) in [("GOOS", os), ("GOARCH", arch)] {
            if !image.build_args.contains_key(k) {
                c = c.arg("--build-arg").arg(format!("{k}={v}"));
            }
        }
    }
    for (k, v) in &image.build_args {
        c = c.arg("--build-arg").arg(format!("{k}={v}"));
    }
    for (k, v) in &image.contexts {
        c = c.arg("--build-context").arg(format!("{k}={v}"));
    }
    c = match (cat.mode, cat.output_type.as_str()) {
        (Mode::Registry, "type=registry") => c.arg("--push"),
        (Mode::Local, "type=docker") => c.arg("--load"),
        (_, other) => c.arg(format!("--output={other}")),
    };
    c.arg("--metadata-file")
        .arg(partial(metadata).as_str())
        .arg(&image.context)
        .output(metadata.to_path_buf())
}

fn labels(cat: &Catalog, image: &Image) -> Vec<(&'static str, String)> {
    let mut l = vec![
        ("org.opencontainers.image.title", image.name.clone()),
        ("org.opencontainers.image.version", image.version.clone()),
    ];
    if !cat.source_url.is_empty() {
        l.push(("org.opencontainers.image.source", cat.source_url.clone()));
    }
    if let Some(r) = &cat.revision {
        l.push(("org.opencontainers.image.revision", r.clone()));
    }
    if let Some(t) = &cat.created {
        l.push(("org.opencontainers.image.created", t.clone()));
    }
    l
}

/// The Dockerfile of the label step: the patched image, unchanged but for its config labels.
pub const LABEL_DOCKERFILE: &str = "ARG PATCHED\nFROM ${PATCHED}\n";

/// Re-tag a patched image with labels naming its origin (no layer is added).
pub fn relabel(
    cat: &Catalog,
    image: &str,
    platform: &str,
    labels: &[(String, String)],
    dockerfile: &Utf8Path,
) -> Cmd {
    let mut c = Cmd::new("docker", cat.timeouts.build)
        .args(["buildx", "build", "--load", "--provenance=false"])
        .opt("--builder", cat.builder.as_deref().unwrap_or(""))
        .arg("--platform")
        .arg(platform)
        .arg("--file")
        .arg(dockerfile.as_str())
        .arg("--build-arg")
        .arg(format!("PATCHED={image}"));
    for (k, v) in labels {
        c = c.arg("--label").arg(format!("{k}={v}"));
    }
    c.arg("--tag")
        .arg(image)
        .arg(dockerfile.parent().map_or(".", |p| p.as_str()))
}

/// The digest buildx recorded in `--metadata-file`.
pub fn metadata_digest(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("containerimage.digest")?.as_str().map(str::to_string)
}

/// `docker buildx create --use --name NAME` (or reuse it).
pub fn create_builder(cat: &Catalog, name: &str) -> Cmd {
    Cmd::new("docker", cat.timeouts.build).args([
        "buildx",
        "create",
        "--name",
        name,
        "--use",
        "--bootstrap",
    ])
}

pub fn inspect_builder(cat: &Catalog, name: &str) -> Cmd {
    Cmd::new("docker", cat.timeouts.publish).args(["buildx", "inspect", name])
}

/// `imagetools inspect` with the manifest as JSON (digest + per-platform manifests).
pub fn inspect(cat: &Catalog, reference: &str) -> Cmd {
    Cmd::new("docker", cat.timeouts.publish)
        .args([
            "buildx",
            "imagetools",
            "inspect",
            "--format",
            "{{json .Manifest}}",
        ])
        .arg(reference)
}

/// `imagetools create -t TARGET SOURCES…`: assemble a multi-arch index from per-platform images.
pub fn create_index(cat: &Catalog, target: &str, sources: &[String]) -> Cmd {
    Cmd::new("docker", cat.timeouts.publish)
        .args(["buildx", "imagetools", "create", "--tag", target])
        .args(sources.iter().cloned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Digest of what the tag points at (an index or a single manifest).
    pub digest: String,
    /// `(os/arch[/variant], digest)` of each platform image; attestations are skipped.
    pub platforms: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    digest: String,
    #[serde(default)]
    manifests: Option<Vec<RawEntry>>,
}

#[derive(Deserialize)]
struct RawEntry {
    digest: String,
    #[serde(default)]
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// Parse `imagetools inspect --format '{{json .Manifest}}'`. BuildKit's provenance attestations
/// appear as `unknown/unknown` entries: they are not platforms.
pub fn parse_manifest(text: &str) -> Result<Manifest> {
    let raw: RawManifest =
        serde_json::from_str(text.trim()).context("unexpected `imagetools inspect` output")?;
    if !raw.digest.starts_with("sha256:") {
        bail!("unexpected digest {:?}", raw.digest);
    }
    let platforms = raw
        .manifests
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            let p = e.platform?;
            let word = |w: &str| {
                !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            };
            if p.os == "unknown"
                || p.architecture == "unknown"
                || !word(&p.os)
                || !word(&p.architecture)
            {
                return None;
            }
            if p.variant
                .as_deref()
                .is_some_and(|v| !v.is_empty() && !word(v))
            {
                return None;
            }
            let name = match p.variant.filter(|v| !v.is_empty()) {
                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            };
            Some((name, e.digest))
        })
        .collect();
    Ok(Manifest {
        digest: raw.digest,
        platforms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_skips_attestations() {
        let text = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
          "digest":"sha256:aaa","size":1,
          "manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a1","size":1,"platform":{"architecture":"amd64","os":"linux"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a2","size":1,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a3","size":1,"platform":{"architecture":"unknown","os":"unknown"},
             "annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}"#;
        let m = parse_manifest(text).unwrap();
        assert_eq!(m.digest, "sha256:aaa");
        assert_eq!(
            m.platforms,
            vec![
                ("linux/amd64".into(), "sha256:a1".into()),
                ("linux/arm64/v8".into(), "sha256:a2".into())
            ]
        );
    }

    #[test]
    fn single_manifest_has_no_platform_list() {
        let m = parse_manifest(r#"{"schemaVersion":2,"digest":"sha256:bb","size":3}"#).unwrap();
        assert!(m.platforms.is_empty());
        assert!(parse_manifest("ERROR: not found").is_err());
    }

    /// Found by the fuzzer: malformed platform entries are not platforms.
    #[test]
    fn malformed_platforms_are_skipped() {
        for p in [
            r#"{"os":"unknownunknown"}"#,
            r#"{"os":"/inux","architecture":"amd64"}"#,
            r#"{"os":"linux","architecture":"arm 64"}"#,
        ] {
            let text = format!(
                r#"{{"digest":"sha256:a","manifests":[{{"digest":"sha256:b","platform":{p}}}]}}"#
            );
            assert!(parse_manifest(&text).unwrap().platforms.is_empty(), "{p}");
        }
    }

    #[test]
    fn metadata_file_digest() {
        let t = r#"{"buildx.build.ref":"x","containerimage.digest":"sha256:cc"}"#;
        assert_eq!(metadata_digest(t).as_deref(), Some("sha256:cc"));
        assert_eq!(metadata_digest("{}"), None);
    }
}
