//! The readable advisory fixture (TOML) and its validation.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Trivy's severity scale; the discriminant is the integer Trivy stores in
/// `VendorSeverity` (trivy-db `types.Severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Unknown = 0,
    Low = 1,
    Medium = 2,
    High = 3,
    Critical = 4,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "UNKNOWN",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    pub fn as_int(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of an advisory without a fix (trivy-db `types.Status`; stored as an int).
/// Only meaningful when `fixed_version` is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnfixedStatus {
    #[default]
    Affected,
    UnderInvestigation,
    WillNotFix,
    FixDeferred,
    EndOfLife,
}

impl UnfixedStatus {
    /// Index in trivy-db's `Statuses` list (unknown=0, not_affected=1, affected=2,
    /// fixed=3, under_investigation=4, will_not_fix=5, fix_deferred=6, end_of_life=7).
    pub fn as_int(self) -> u8 {
        match self {
            UnfixedStatus::Affected => 2,
            UnfixedStatus::UnderInvestigation => 4,
            UnfixedStatus::WillNotFix => 5,
            UnfixedStatus::FixDeferred => 6,
            UnfixedStatus::EndOfLife => 7,
        }
    }
}

/// One `[[advisory]]` table of the fixture.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Advisory {
    /// Vulnerability id, e.g. `CVE-2099-0001`.
    pub id: String,
    /// Trivy bucket name, e.g. `debian 12`.
    pub distro: String,
    /// dpkg `Source:` name; Trivy looks advisories up by source package.
    pub source_package: String,
    /// Absent: affected, no fix available.
    #[serde(default)]
    pub fixed_version: Option<String>,
    /// Only allowed without `fixed_version`; defaults to `affected`.
    #[serde(default)]
    pub status: Option<UnfixedStatus>,
    pub severity: Severity,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub references: Vec<String>,
}

impl Advisory {
    /// The status stored for an unfixed advisory, `None` when a fix exists.
    pub fn unfixed_status(&self) -> Option<UnfixedStatus> {
        match self.fixed_version {
            Some(_) => None,
            None => Some(self.status.unwrap_or_default()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    #[serde(default)]
    advisory: Vec<Advisory>,
}

/// A distro family this generator knows the Trivy data source for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// Bucket prefix and data-source ID (also the `VendorSeverity` key).
    pub id: &'static str,
    pub name: &'static str,
    pub url: &'static str,
}

pub const FAMILIES: &[Family] = &[Family {
    id: "debian",
    name: "Debian Security Tracker",
    url: "https://salsa.debian.org/security-tracker-team/security-tracker",
}];

/// Splits `"debian 12"` into its family and checks the version is a bare
/// major number (Trivy's Debian detector truncates `12.7` to `12`).
pub fn family_of(distro: &str) -> Result<&'static Family> {
    let Some((name, version)) = distro.split_once(' ') else {
        bail!("distro {distro:?} must be \"<family> <major version>\", e.g. \"debian 12\"");
    };
    let Some(family) = FAMILIES.iter().find(|f| f.id == name) else {
        let known: Vec<_> = FAMILIES.iter().map(|f| f.id).collect();
        bail!(
            "distro {distro:?}: unsupported family {name:?} (supported: {})",
            known.join(", ")
        );
    };
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        bail!(
            "distro {distro:?}: version {version:?} must be the bare major version \
             (Trivy's bucket is e.g. \"debian 12\", not \"debian 12.7\" or \"debian bookworm\")"
        );
    }
    Ok(family)
}

/// Parsed and validated fixture contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixture {
    pub advisories: Vec<Advisory>,
}

impl Fixture {
    /// Reads and validates `path`; errors name the file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading advisory fixture {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid advisory fixture {}", path.display()))
    }

    /// Parses and validates fixture text.
    pub fn parse(text: &str) -> Result<Self> {
        let file: FixtureFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        validate(&file.advisory)?;
        Ok(Fixture {
            advisories: file.advisory,
        })
    }
}

fn non_empty(what: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        bail!("{what} is empty");
    }
    if value.trim() != value {
        bail!("{what} {value:?} has leading or trailing whitespace");
    }
    Ok(())
}

fn validate(advisories: &[Advisory]) -> Result<()> {
    // (distro, source package, id) -> index, to catch duplicates.
    let mut seen: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    // id -> first advisory, to keep the shared `vulnerability` entry consistent.
    let mut vulns: BTreeMap<&str, (usize, &Advisory)> = BTreeMap::new();

    for (i, adv) in advisories.iter().enumerate() {
        let n = i + 1;
        let label = if adv.id.is_empty() {
            format!("advisory #{n}")
        } else {
            format!("advisory #{n} ({})", adv.id)
        };
        let check = || -> Result<()> {
            non_empty("id", &adv.id)?;
            if adv.id.contains(char::is_whitespace) {
                bail!("id {:?} contains whitespace", adv.id);
            }
            non_empty("distro", &adv.distro)?;
            family_of(&adv.distro)?;
            non_empty("source_package", &adv.source_package)?;
            if adv.source_package.contains(char::is_whitespace) {
                bail!(
                    "source_package {:?} contains whitespace (use the dpkg Source: name)",
                    adv.source_package
                );
            }
            if let Some(v) = &adv.fixed_version {
                non_empty("fixed_version", v)?;
                if v.contains(char::is_whitespace) {
                    bail!("fixed_version {v:?} contains whitespace");
                }
                if let Some(status) = adv.status {
                    if status != UnfixedStatus::Affected {
                        bail!(
                            "status {status:?} contradicts fixed_version {v:?} \
                             (status is only for advisories without a fix)"
                        );
                    }
                }
            }
            if let Some(&j) = seen.get(&(
                adv.distro.as_str(),
                adv.source_package.as_str(),
                adv.id.as_str(),
            )) {
                bail!(
                    "duplicate of advisory #{} (same id, distro {:?} and source_package {:?})",
                    j + 1,
                    adv.distro,
                    adv.source_package
                );
            }
            if let Some(&(j, first)) = vulns.get(adv.id.as_str()) {
                let mismatch = if first.severity != adv.severity {
                    Some("severity")
                } else if first.title != adv.title {
                    Some("title")
                } else if first.description != adv.description {
                    Some("description")
                } else if first.references != adv.references {
                    Some("references")
                } else {
                    None
                };
                if let Some(field) = mismatch {
                    bail!(
                        "{field} differs from advisory #{} with the same id; \
                         Trivy keeps one title/description/severity per id",
                        j + 1
                    );
                }
            }
            Ok(())
        };
        check().with_context(|| label.clone())?;
        seen.insert(
            (
                adv.distro.as_str(),
                adv.source_package.as_str(),
                adv.id.as_str(),
            ),
            i,
        );
        vulns.entry(adv.id.as_str()).or_insert((i, adv));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[advisory]]
id = "CVE-2099-0001"
distro = "debian 12"
source_package = "libfoo"
fixed_version = "1.0-2"
severity = "HIGH"
title = "libfoo: example"
description = "A fixed bug."

[[advisory]]
id = "CVE-2099-0002"
distro = "debian 13"
source_package = "libbar"
severity = "MEDIUM"

[[advisory]]
id = "CVE-2099-0003"
distro = "debian 12"
source_package = "libbaz"
status = "will_not_fix"
severity = "LOW"
"#;

    fn err_of(text: &str) -> String {
        format!("{:#}", Fixture::parse(text).unwrap_err())
    }

    #[test]
    fn parses_good_fixture() {
        let f = Fixture::parse(GOOD).unwrap();
        assert_eq!(f.advisories.len(), 3);
        let a = &f.advisories[0];
        assert_eq!(a.id, "CVE-2099-0001");
        assert_eq!(a.distro, "debian 12");
        assert_eq!(a.source_package, "libfoo");
        assert_eq!(a.fixed_version.as_deref(), Some("1.0-2"));
        assert_eq!(a.severity, Severity::High);
        assert_eq!(a.severity.as_int(), 3);
        assert_eq!(a.title.as_deref(), Some("libfoo: example"));
        assert_eq!(a.unfixed_status(), None);
        let b = &f.advisories[1];
        assert_eq!(b.distro, "debian 13");
        assert_eq!(b.fixed_version, None);
        assert_eq!(b.unfixed_status(), Some(UnfixedStatus::Affected));
        assert_eq!(b.unfixed_status().unwrap().as_int(), 2);
        assert_eq!(
            f.advisories[2].unfixed_status(),
            Some(UnfixedStatus::WillNotFix)
        );
    }

    #[test]
    fn empty_fixture_is_allowed() {
        assert!(Fixture::parse("").unwrap().advisories.is_empty());
    }

    #[test]
    fn example_fixture_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/advisories.toml");
        let f = Fixture::load(&path).unwrap();
        assert!(!f.advisories.is_empty());
    }

    #[test]
    fn bad_severity_is_named() {
        let e = err_of(
            r#"[[advisory]]
id = "CVE-1"
distro = "debian 12"
source_package = "x"
severity = "HGH""#,
        );
        assert!(e.contains("HGH"), "{e}");
        assert!(e.contains("CRITICAL"), "{e}");
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn missing_field_is_named() {
        let e = err_of(
            r#"[[advisory]]
id = "CVE-1"
distro = "debian 12"
severity = "LOW""#,
        );
        assert!(e.contains("missing field `source_package`"), "{e}");
    }

    #[test]
    fn unknown_field_is_named() {
        let e = err_of(
            r#"[[advisory]]
id = "CVE-1"
distro = "debian 12"
source_package = "x"
fixed = "1.0"
severity = "LOW""#,
        );
        assert!(e.contains("unknown field `fixed`"), "{e}");
        let e = err_of("[[advisories]]\nid = \"CVE-1\"\n");
        assert!(e.contains("unknown field `advisories`"), "{e}");
    }

    #[test]
    fn bad_distro_is_named() {
        let adv = |distro: &str| {
            format!(
                "[[advisory]]\nid = \"CVE-1\"\ndistro = \"{distro}\"\nsource_package = \"x\"\nseverity = \"LOW\"\n"
            )
        };
        let e = err_of(&adv("debian12"));
        assert!(e.contains("advisory #1 (CVE-1)"), "{e}");
        assert!(e.contains("\"<family> <major version>\""), "{e}");
        let e = err_of(&adv("debian 12.7"));
        assert!(e.contains("bare major version"), "{e}");
        let e = err_of(&adv("debian bookworm"));
        assert!(e.contains("bare major version"), "{e}");
        let e = err_of(&adv("centos 7"));
        assert!(e.contains("unsupported family \"centos\""), "{e}");
    }

    #[test]
    fn empty_values_are_named() {
        let e = err_of(
            "[[advisory]]\nid = \"CVE-1\"\ndistro = \"debian 12\"\nsource_package = \"x\"\nfixed_version = \"\"\nseverity = \"LOW\"\n",
        );
        assert!(e.contains("fixed_version is empty"), "{e}");
        let e = err_of(
            "[[advisory]]\nid = \"\"\ndistro = \"debian 12\"\nsource_package = \"x\"\nseverity = \"LOW\"\n",
        );
        assert!(e.contains("advisory #1: id is empty"), "{e}");
    }

    #[test]
    fn status_with_fix_is_rejected() {
        let e = err_of(
            "[[advisory]]\nid = \"CVE-1\"\ndistro = \"debian 12\"\nsource_package = \"x\"\nfixed_version = \"1\"\nstatus = \"will_not_fix\"\nseverity = \"LOW\"\n",
        );
        assert!(e.contains("contradicts fixed_version"), "{e}");
    }

    #[test]
    fn duplicates_and_inconsistent_ids_are_rejected() {
        let one = "[[advisory]]\nid = \"CVE-1\"\ndistro = \"debian 12\"\nsource_package = \"x\"\nseverity = \"LOW\"\n";
        let e = err_of(&format!("{one}{one}"));
        assert!(
            e.contains("advisory #2 (CVE-1): duplicate of advisory #1"),
            "{e}"
        );

        // Same id for another package is fine when the shared fields agree ...
        let other_pkg = one.replace("\"x\"", "\"y\"");
        Fixture::parse(&format!("{one}{other_pkg}")).unwrap();
        // ... and an error when they don't.
        let other_sev = other_pkg.replace("LOW", "HIGH");
        let e = err_of(&format!("{one}{other_sev}"));
        assert!(e.contains("severity differs from advisory #1"), "{e}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adv.toml");
        let e = format!("{:#}", Fixture::load(&path).unwrap_err());
        assert!(e.contains("reading advisory fixture"), "{e}");
        assert!(e.contains("adv.toml"), "{e}");
        std::fs::write(&path, "[[advisory]]\nid = 3\n").unwrap();
        let e = format!("{:#}", Fixture::load(&path).unwrap_err());
        assert!(e.contains("invalid advisory fixture"), "{e}");
        assert!(e.contains("adv.toml"), "{e}");
        assert!(e.contains("invalid type"), "{e}");
    }
}
