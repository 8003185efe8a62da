//! Property-based fuzzing of everything that parses outside input: the catalog (TOML + env),
//! Trivy reports, `imagetools` manifests, tool version lines. The property: never a panic;
//! well-formed input still parses. Case count: PROPTEST_CASES (CI default 512 per property).

use proptest::prelude::*;

use crate::catalog::{self, Facts, Overrides};
use crate::tools::{buildx, trivy};

const REPORT: &str = r#"{"SchemaVersion":2,"ArtifactName":"r/x:1","Metadata":{"OS":{"Family":"debian","Name":"12.12"},
"ImageConfig":{"architecture":"amd64","os":"linux"}},"Results":[{"Target":"r/x:1 (debian 12.12)","Class":"os-pkgs",
"Type":"debian","Vulnerabilities":[{"VulnerabilityID":"CVE-2099-0001","PkgName":"libfoo1","InstalledVersion":"1.0-1",
"FixedVersion":"1.0-2","Severity":"HIGH"}]},{"Target":"go.mod","Class":"lang-pkgs","Vulnerabilities":null}]}"#;

const CATALOG: &str = r#"[defaults]
registry = "127.0.0.1:5000"
[scan]
severities = ["HIGH"]
timeout = "5m"
[[image]]
name = "a"
dockerfile = "a.Dockerfile"
platforms = ["linux/amd64", "linux/arm64"]
build_args = { X = "y" }
"#;

const MANIFEST: &str = r#"{"schemaVersion":2,"digest":"sha256:aa","manifests":[{"digest":"sha256:a1",
"platform":{"os":"linux","architecture":"amd64"}},{"digest":"sha256:a2","platform":{"os":"unknown","architecture":"unknown"}}]}"#;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid input with one edit: truncation, a byte replaced, or a span deleted.
fn mutate(base: &'static str) -> impl Strategy<Value = String> {
    let n = base.len();
    prop_oneof![
        (0..n).prop_map(move |i| base[..base.floor_char_boundary(i)].to_string()),
        (0..n, any::<u8>()).prop_map(move |(i, b)| {
            let mut v = base.as_bytes().to_vec();
            v[i] = b;
            String::from_utf8_lossy(&v).into_owned()
        }),
        (0..n, 0..40usize).prop_map(move |(i, len)| {
            let i = base.floor_char_boundary(i);
            let j = base.floor_char_boundary((i + len).min(n));
            format!("{}{}", &base[..i], &base[j..])
        }),
    ]
}

fn dir() -> camino::Utf8PathBuf {
    let d = std::env::temp_dir().join(format!("xtask-fuzz-{}", std::process::id()));
    let d = camino::Utf8PathBuf::try_from(d).unwrap();
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("a.Dockerfile"), "FROM scratch\n").unwrap();
    d
}

fn facts(env: Vec<(String, String)>) -> Facts {
    Facts {
        env: env.into_iter().collect(),
        git_sha: Some("abc1234".into()),
        git_time: None,
        host_arch: "amd64".into(),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn trivy_reports_never_panic(text in prop_oneof![mutate(REPORT), ".{0,300}"]) {
        if let Ok(r) = trivy::parse_report(&text) {
            let c = r.fixable_os();
            prop_assert!(c.total as usize <= r.findings.len());
            prop_assert_eq!(c.by_severity.values().sum::<u32>(), c.total);
        }
    }

    #[test]
    fn catalogs_never_panic(text in prop_oneof![mutate(CATALOG), ".{0,200}"],
                            env in proptest::collection::vec(
                                (prop::sample::select(vec!["REGISTRY", "TAG", "TARGET_ARCH", "OUTPUT_TYPE", "A_IMAGE_NAME", "A_IMAGE_VERSION", "A_CONTEXT_X"]).prop_map(String::from), ".{0,30}"),
                                0..4)) {
        let d = dir();
        if let Ok(file) = catalog::parse(&text) {
            if let Ok(cat) = catalog::resolve(&d.join("images.toml"), file, &facts(env), &Overrides::default()) {
                for i in &cat.images {
                    // whatever passed validation is a well-formed reference
                    prop_assert!(catalog::reference::check_tag(&i.version).is_ok());
                    prop_assert!(!i.reference.chars().any(char::is_whitespace));
                }
            }
        }
    }

    #[test]
    fn manifests_never_panic(text in prop_oneof![mutate(MANIFEST), ".{0,200}"]) {
        if let Ok(m) = buildx::parse_manifest(&text) {
            for (p, _) in &m.platforms {
                let mut parts = p.split('/');
                let (os, arch) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                prop_assert!(!os.is_empty() && !arch.is_empty() && os != "unknown" && arch != "unknown", "{}", p);
            }
        }
    }

    #[test]
    fn version_lines_never_panic(text in ".{0,80}") {
        let _ = crate::doctor::extract_version(&text);
    }

    #[test]
    fn references_never_panic(s in ".{0,80}") {
        let _ = catalog::reference::check_registry(&s);
        let _ = catalog::reference::check_repository(&s);
        let _ = catalog::reference::check_tag(&s);
    }
}

#[test]
fn the_seeds_parse() {
    assert_eq!(trivy::parse_report(REPORT).unwrap().fixable_os().total, 1);
    assert!(catalog::parse(CATALOG).is_ok());
    assert_eq!(buildx::parse_manifest(MANIFEST).unwrap().platforms.len(), 1);
}
