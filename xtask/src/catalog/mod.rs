//! The catalog: `docker/images.toml`, read once, overridden by Fleet's environment variables,
//! validated before any tool runs. Paths in the file are relative to the file's own folder.

pub mod reference;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

/// The file as written. Every key is documented in the README's configuration reference
/// (a test keeps the two in sync).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub build: BuildSettings,
    #[serde(default)]
    pub scan: ScanSettings,
    #[serde(default)]
    pub patch: PatchSettings,
    #[serde(default)]
    pub publish: PublishSettings,
    #[serde(default)]
    pub tools: Tools,
    #[serde(default, rename = "image")]
    pub images: Vec<ImageEntry>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Registry (and optional path) images are named under. Env: REGISTRY.
    pub registry: String,
    /// Tag when TAG is unset; empty means `git rev-parse --short=7 HEAD`. Env: TAG.
    pub tag: String,
    /// Env: TARGET_OS.
    pub target_os: String,
    /// Platforms for images that name none; empty means TARGET_OS/<host arch>.
    pub platforms: Vec<String>,
    /// `type=docker` loads into the local engine, `type=registry` pushes. Env: OUTPUT_TYPE.
    pub output_type: String,
    /// buildx --progress. Env: BUILDKIT_PROGRESS_TYPE.
    pub progress: String,
    /// buildx builder; empty means the current one. Env: BUILDX_BUILDER_NAME.
    pub builder: String,
    /// URL for the org.opencontainers.image.source label.
    pub source_url: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            registry: "ghcr.io".into(),
            tag: String::new(),
            target_os: "linux".into(),
            platforms: Vec::new(),
            output_type: "type=docker".into(),
            progress: "auto".into(),
            builder: String::new(),
            source_url: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuildSettings {
    /// Always look for newer base images (`--pull`), as Fleet does.
    pub pull: bool,
    /// BuildKit provenance attestation (`--provenance`); empty leaves buildx's default.
    pub provenance: String,
    pub timeout: String,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            pull: true,
            provenance: String::new(),
            timeout: "60m".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanSettings {
    /// Only vulnerabilities that have a fixed version (`--ignore-unfixed`).
    pub ignore_unfixed: bool,
    /// Trivy `--pkg-types`; Copa patches `os` only.
    pub pkg_types: Vec<String>,
    /// Trivy `--severity`; empty means all.
    pub severities: Vec<String>,
    /// Trivy `--db-repository` (a mirror of the vulnerability DB); empty means Trivy's default.
    pub db_repository: String,
    /// Trivy `--skip-db-update` (an offline or pre-seeded DB).
    pub skip_db_update: bool,
    /// Trivy `--cache-dir`; empty means Trivy's default (or TRIVY_CACHE_DIR).
    pub cache_dir: String,
    pub timeout: String,
    pub gate: GateSettings,
}

impl Default for ScanSettings {
    fn default() -> Self {
        ScanSettings {
            ignore_unfixed: true,
            pkg_types: vec!["os".into()],
            severities: Vec::new(),
            db_repository: String::new(),
            skip_db_update: false,
            cache_dir: String::new(),
            timeout: "10m".into(),
            gate: GateSettings::default(),
        }
    }
}

/// `scan --gate`: fail when any finding matches (Fleet's trivy.yml policy by default).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateSettings {
    pub severities: Vec<String>,
    pub pkg_types: Vec<String>,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            severities: vec!["CRITICAL".into(), "HIGH".into()],
            pkg_types: vec!["os".into(), "library".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatchSettings {
    /// Patched tag is `<tag>-<suffix>`.
    pub suffix: String,
    /// Copa `--timeout`.
    pub timeout: String,
    /// Copa `--addr`; empty lets Copa find the local engine's BuildKit.
    pub buildkit_addr: String,
    /// BuildKit source policy (EXPERIMENTAL_BUILDKIT_SOURCE_POLICY) to redirect Copa's tooling
    /// images to a mirror; relative to the catalog.
    pub source_policy: String,
    /// Timeout of the smoke run of a patched image.
    pub smoke_timeout: String,
}

impl Default for PatchSettings {
    fn default() -> Self {
        PatchSettings {
            suffix: "patched".into(),
            timeout: "10m".into(),
            buildkit_addr: String::new(),
            source_policy: String::new(),
            smoke_timeout: "2m".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishSettings {
    pub timeout: String,
}

impl Default for PublishSettings {
    fn default() -> Self {
        PublishSettings {
            timeout: "10m".into(),
        }
    }
}

/// Pinned tool versions, in this one place.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tools {
    pub trivy: String,
    pub copa: String,
    /// SHA-256 of release archives, keyed `<tool>-<os>-<arch>`.
    pub sha256: BTreeMap<String, String>,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            trivy: "0.76.0".into(),
            copa: "v0.14.2".into(),
            sha256: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    /// The name used on the command line; also the env prefix (hub-agent → HUB_AGENT_…).
    pub name: String,
    /// Repository under the registry; default: `name`. Env: <PREFIX>_IMAGE_NAME.
    #[serde(default)]
    pub repository: String,
    pub dockerfile: Utf8PathBuf,
    #[serde(default = "dot")]
    pub context: String,
    /// Named build contexts (`--build-context name=value`): a path, git URL or image.
    #[serde(default)]
    pub contexts: BTreeMap<String, String>,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Arguments for the smoke run of a patched image (appended to its entrypoint).
    #[serde(default = "default_smoke")]
    pub smoke: Vec<String>,
    /// Instead of requiring exit 0, require the patched image to exit like the original does
    /// with the same arguments (for programs whose `--help` exits non-zero).
    #[serde(default)]
    pub smoke_compare: bool,
}

fn dot() -> String {
    ".".into()
}

fn default_smoke() -> Vec<String> {
    vec!["--help".into()]
}

/// Facts from outside the file: the environment and git. Passed in so resolution stays pure.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub env: BTreeMap<String, String>,
    pub git_sha: Option<String>,
    pub git_time: Option<String>,
    pub host_arch: String,
}

impl Facts {
    fn var(&self, k: &str) -> Option<&str> {
        self.env
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Command-line overrides that touch the catalog.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub push: bool,
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Images live in the local engine (`--load`).
    Local,
    /// Images live in the registry (`--push`); scans and patches read the published refs.
    Registry,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub path: Utf8PathBuf,
    pub dir: Utf8PathBuf,
    pub registry: String,
    pub output_type: String,
    pub mode: Mode,
    pub progress: String,
    pub builder: Option<String>,
    pub source_url: String,
    pub revision: Option<String>,
    pub created: Option<String>,
    pub build: BuildSettings,
    pub scan: ScanSettings,
    pub patch: PatchSettings,
    pub tools: Tools,
    pub timeouts: Timeouts,
    pub images: Vec<Image>,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub build: Duration,
    pub scan: Duration,
    pub patch: Duration,
    pub smoke: Duration,
    pub publish: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub name: String,
    pub repository: String,
    pub version: String,
    /// `registry/repository:version`.
    pub reference: String,
    pub dockerfile: Utf8PathBuf,
    pub context: String,
    pub contexts: BTreeMap<String, String>,
    pub build_args: BTreeMap<String, String>,
    pub platforms: Vec<String>,
    pub smoke: Vec<String>,
    pub smoke_compare: bool,
}

impl Image {
    pub fn patched_tag(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.version)
    }
    /// `registry/repository` without tag.
    pub fn repo_ref(&self) -> &str {
        self.reference
            .rsplit_once(':')
            .map(|(r, _)| r)
            .unwrap_or(&self.reference)
    }
    pub fn patched_reference(&self, suffix: &str) -> String {
        format!("{}:{}", self.repo_ref(), self.patched_tag(suffix))
    }
}

pub fn env_prefix(name: &str) -> String {
    name.to_ascii_uppercase().replace(['-', '.'], "_")
}

/// Read and parse the file; errors carry the file name and TOML line/column.
pub fn read(path: &Utf8Path) -> Result<CatalogFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the catalog {path} (pass --catalog PATH)"))?;
    parse(&text).with_context(|| format!("invalid catalog {path}"))
}

pub fn parse(text: &str) -> Result<CatalogFile> {
    toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
}

/// Load, apply overrides and validate: the one entry point commands use.
pub fn load(path: &Utf8Path, facts: &Facts, overrides: &Overrides) -> Result<Catalog> {
    let file = read(path)?;
    resolve(path, file, facts, overrides).with_context(|| format!("invalid catalog {path}"))
}

pub fn resolve(
    path: &Utf8Path,
    file: CatalogFile,
    facts: &Facts,
    o: &Overrides,
) -> Result<Catalog> {
    let dir = path.parent().map(Utf8Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_str().is_empty() {
        Utf8PathBuf::from(".")
    } else {
        dir
    };
    let d = &file.defaults;
    let registry = facts.var("REGISTRY").unwrap_or(&d.registry).to_string();
    reference::check_registry(&registry).map_err(|e| anyhow::anyhow!("REGISTRY: {e}"))?;

    let default_tag = match facts
        .var("TAG")
        .or(Some(d.tag.as_str()).filter(|t| !t.is_empty()))
    {
        Some(t) => Some(t.to_string()),
        None => facts.git_sha.clone(),
    };
    let output_type = if o.push {
        "type=registry".to_string()
    } else {
        facts
            .var("OUTPUT_TYPE")
            .unwrap_or(&d.output_type)
            .to_string()
    };
    check_literal("OUTPUT_TYPE", &output_type)?;
    let mode = if output_type
        .split(',')
        .any(|kv| kv == "type=registry" || kv == "push=true")
    {
        Mode::Registry
    } else {
        Mode::Local
    };
    let target_os = facts.var("TARGET_OS").unwrap_or(&d.target_os).to_string();
    let env_platform = facts.var("TARGET_ARCH").map(|a| format!("{target_os}/{a}"));
    let host_platform = format!("{target_os}/{}", facts.host_arch);

    for (what, list) in [
        ("scan.pkg_types", &file.scan.pkg_types),
        ("scan.gate.pkg_types", &file.scan.gate.pkg_types),
    ] {
        for t in list {
            if !["os", "library"].contains(&t.as_str()) {
                bail!("{what}: unknown package type {t:?} (known: os, library)");
            }
        }
    }
    for (what, list) in [
        ("scan.severities", &file.scan.severities),
        ("scan.gate.severities", &file.scan.gate.severities),
    ] {
        for s in list {
            if !crate::tools::trivy::SEVERITIES.contains(&s.as_str()) {
                bail!(
                    "{what}: unknown severity {s:?} (known: {})",
                    crate::tools::trivy::SEVERITIES.join(", ")
                );
            }
        }
    }
    if !file.scan.pkg_types.iter().any(|t| t == "os") {
        bail!("scan.pkg_types must include \"os\": Copa patches OS packages only");
    }
    let suffix = &file.patch.suffix;
    if suffix.is_empty() {
        bail!("patch.suffix must not be empty: a patched image may never take an original tag");
    }
    reference::check_tag(&format!("x-{suffix}"))
        .map_err(|e| anyhow::anyhow!("patch.suffix: {e}"))?;
    for (what, v) in [
        ("scan.db_repository", &file.scan.db_repository),
        ("patch.buildkit_addr", &file.patch.buildkit_addr),
        ("defaults.progress", &d.progress),
        ("defaults.source_url", &d.source_url),
    ] {
        check_literal(what, v)?;
    }
    let builder = facts
        .var("BUILDX_BUILDER_NAME")
        .unwrap_or(&d.builder)
        .to_string();
    check_literal("BUILDX_BUILDER_NAME", &builder)?;
    let progress = facts
        .var("BUILDKIT_PROGRESS_TYPE")
        .unwrap_or(&d.progress)
        .to_string();
    check_literal("BUILDKIT_PROGRESS_TYPE", &progress)?;

    let timeouts = Timeouts {
        build: parse_duration(&file.build.timeout).context("build.timeout")?,
        scan: parse_duration(&file.scan.timeout).context("scan.timeout")?,
        patch: parse_duration(&file.patch.timeout).context("patch.timeout")?,
        smoke: parse_duration(&file.patch.smoke_timeout).context("patch.smoke_timeout")?,
        publish: parse_duration(&file.publish.timeout).context("publish.timeout")?,
    };

    let mut seen = BTreeSet::new();
    let mut images = Vec::new();
    if file.images.is_empty() {
        bail!("no [[image]] entries");
    }
    for e in &file.images {
        if !seen.insert(e.name.clone()) {
            bail!("image {:?} is listed twice", e.name);
        }
        let image = resolve_image(e, &dir, facts, default_tag.as_deref(), &registry)
            .with_context(|| format!("image {:?}", e.name))?;
        let platforms = if !o.platforms.is_empty() {
            o.platforms.clone()
        } else if let Some(p) = &env_platform {
            vec![p.clone()]
        } else if !e.platforms.is_empty() {
            e.platforms.clone()
        } else if !d.platforms.is_empty() {
            d.platforms.clone()
        } else {
            vec![host_platform.clone()]
        };
        let mut uniq = BTreeSet::new();
        for p in &platforms {
            reference::check_platform(p).map_err(|m| anyhow::anyhow!("image {:?}: {m}", e.name))?;
            if !uniq.insert(p) {
                bail!("image {:?}: platform {p} is listed twice", e.name);
            }
        }
        images.push(Image { platforms, ..image });
    }

    let mut scan = file.scan.clone();
    if !scan.cache_dir.is_empty() {
        scan.cache_dir = local_or_remote(&dir, &scan.cache_dir);
    }
    Ok(Catalog {
        path: path.to_path_buf(),
        dir,
        registry,
        output_type,
        mode,
        progress,
        builder: Some(builder).filter(|b| !b.is_empty()),
        source_url: d.source_url.clone(),
        revision: facts.git_sha.clone(),
        created: facts.git_time.clone(),
        build: file.build.clone(),
        scan,
        patch: file.patch.clone(),
        tools: file.tools.clone(),
        timeouts,
        images,
    })
}

fn resolve_image(
    e: &ImageEntry,
    dir: &Utf8Path,
    facts: &Facts,
    default_tag: Option<&str>,
    registry: &str,
) -> Result<Image> {
    let prefix = env_prefix(&e.name);
    if e.name.is_empty()
        || !e
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        bail!("name must be lowercase letters, digits and '-'");
    }
    let repository = facts
        .var(&format!("{prefix}_IMAGE_NAME"))
        .map(str::to_string)
        .unwrap_or_else(|| {
            if e.repository.is_empty() {
                e.name.clone()
            } else {
                e.repository.clone()
            }
        });
    reference::check_repository(&repository).map_err(|m| anyhow::anyhow!("{m}"))?;
    let version = match facts
        .var(&format!("{prefix}_IMAGE_VERSION"))
        .or(default_tag)
    {
        Some(v) => v.to_string(),
        None => bail!("no tag: set TAG (or {prefix}_IMAGE_VERSION), or run inside a git checkout"),
    };
    reference::check_tag(&version).map_err(|m| anyhow::anyhow!("{m}"))?;
    let dockerfile = dir.join(&e.dockerfile);
    if !dockerfile.is_file() {
        bail!("Dockerfile {dockerfile} does not exist");
    }
    let context = local_or_remote(dir, &e.context);
    if !is_remote(&e.context) && !Utf8Path::new(&context).is_dir() {
        bail!("build context {context} is not a directory");
    }
    let mut contexts = BTreeMap::new();
    for (k, v) in &e.contexts {
        check_key("contexts", k)?;
        let env_key = format!("{prefix}_CONTEXT_{}", env_prefix(k));
        let v = facts.var(&env_key).unwrap_or(v);
        check_literal(&format!("contexts.{k}"), v)?;
        contexts.insert(k.clone(), local_or_remote(dir, v));
    }
    for (k, v) in &e.build_args {
        check_key("build_args", k)?;
        check_literal(&format!("build_args.{k}"), v)?;
    }
    Ok(Image {
        name: e.name.clone(),
        reference: format!("{registry}/{repository}:{version}"),
        repository,
        version,
        dockerfile,
        context,
        contexts,
        build_args: e.build_args.clone(),
        platforms: Vec::new(),
        smoke: e.smoke.clone(),
        smoke_compare: e.smoke_compare,
    })
}

fn is_remote(v: &str) -> bool {
    v.contains("://")
        || v.starts_with("git@")
        || v.starts_with("docker-image:")
        || v.starts_with("target:")
}

fn local_or_remote(dir: &Utf8Path, v: &str) -> String {
    if is_remote(v) || Utf8Path::new(v).is_absolute() {
        v.to_string()
    } else {
        dir.join(v).to_string()
    }
}

fn check_key(what: &str, k: &str) -> Result<()> {
    let ok = !k.is_empty()
        && k.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        bail!("{what}: key {k:?} must be letters, digits, '_' or '-'");
    }
    Ok(())
}

/// Values reach tools as single argv elements, so shell metacharacters are harmless; control
/// characters (newlines) are rejected because they would corrupt logs and annotations.
fn check_literal(what: &str, v: &str) -> Result<()> {
    if v.chars().any(char::is_control) {
        bail!("{what}: control characters (newline, tab…) are not allowed");
    }
    Ok(())
}

/// `90s`, `10m`, `1h`, `1h30m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num
            .parse()
            .map_err(|_| anyhow::anyhow!("{s:?} is not a duration like 30s, 10m, 1h"))?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => bail!("{s:?} is not a duration like 30s, 10m, 1h"),
        };
    }
    if !num.is_empty() || total == 0 {
        bail!("{s:?} is not a duration like 30s, 10m, 1h (and must be > 0)");
    }
    Ok(Duration::from_secs(total))
}

impl Catalog {
    /// Select images by name, in catalog order; unknown names list the known ones.
    pub fn select(&self, names: &[String]) -> Result<Vec<Image>> {
        if names.is_empty() {
            return Ok(self.images.clone());
        }
        let known: Vec<&str> = self.images.iter().map(|i| i.name.as_str()).collect();
        for n in names {
            if !known.contains(&n.as_str()) {
                bail!(
                    "unknown image {n:?}; the catalog {} has: {}",
                    self.path,
                    known.join(", ")
                );
            }
        }
        Ok(self
            .images
            .iter()
            .filter(|i| names.contains(&i.name))
            .cloned()
            .collect())
    }

    pub fn source_policy(&self) -> Option<Utf8PathBuf> {
        let p = &self.patch.source_policy;
        (!p.is_empty()).then(|| self.dir.join(p))
    }
}

#[cfg(test)]
mod tests;
