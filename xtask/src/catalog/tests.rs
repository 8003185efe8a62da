use super::*;

fn dir_with_dockerfiles() -> Utf8PathBuf {
    let d = std::env::temp_dir().join(format!(
        "xtask-cat-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let d = Utf8PathBuf::try_from(d).unwrap();
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("a.Dockerfile"), "FROM scratch\n").unwrap();
    d
}

const TWO: &str = r#"
[defaults]
registry = "ghcr.io/azure/fleet"
[[image]]
name = "hub-agent"
dockerfile = "a.Dockerfile"
platforms = ["linux/amd64", "linux/arm64"]
build_args = { BASE_IMAGE = "x" }
[[image]]
name = "refresh-token"
repository = "fleet-refresh"
dockerfile = "a.Dockerfile"
"#;

fn facts(env: &[(&str, &str)]) -> Facts {
    Facts {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        git_sha: Some("abc1234".into()),
        git_time: Some("2026-12-01T00:00:00Z".into()),
        host_arch: "amd64".into(),
    }
}

fn load_str(text: &str, env: &[(&str, &str)], o: &Overrides) -> Result<Catalog> {
    let d = dir_with_dockerfiles();
    let path = d.join("images.toml");
    std::fs::write(&path, text).unwrap();
    load(&path, &facts(env), o)
}

fn err(text: &str, env: &[(&str, &str)]) -> String {
    format!(
        "{:#}",
        load_str(text, env, &Overrides::default()).unwrap_err()
    )
}

#[test]
fn defaults_and_git_tag() {
    let c = load_str(TWO, &[], &Overrides::default()).unwrap();
    assert_eq!(
        c.images[0].reference,
        "ghcr.io/azure/fleet/hub-agent:abc1234"
    );
    assert_eq!(
        c.images[1].reference,
        "ghcr.io/azure/fleet/fleet-refresh:abc1234"
    );
    assert_eq!(
        c.images[1].platforms,
        ["linux/amd64"],
        "host platform when none is named"
    );
    assert_eq!(c.mode, Mode::Local);
    assert_eq!(c.images[0].smoke, ["--help"]);
    assert_eq!(c.timeouts.scan, Duration::from_secs(600));
    assert_eq!(
        c.images[0].patched_reference("patched"),
        "ghcr.io/azure/fleet/hub-agent:abc1234-patched"
    );
}

#[test]
fn fleet_environment_overrides() {
    let env = [
        ("REGISTRY", "127.0.0.1:5000"),
        ("TAG", "main"),
        ("HUB_AGENT_IMAGE_NAME", "hub"),
        ("HUB_AGENT_IMAGE_VERSION", "v1.2.3"),
        ("TARGET_ARCH", "arm64"),
        ("OUTPUT_TYPE", "type=registry"),
        ("BUILDX_BUILDER_NAME", "img-builder"),
        ("BUILDKIT_PROGRESS_TYPE", "plain"),
    ];
    let c = load_str(TWO, &env, &Overrides::default()).unwrap();
    assert_eq!(c.images[0].reference, "127.0.0.1:5000/hub:v1.2.3");
    assert_eq!(c.images[1].reference, "127.0.0.1:5000/fleet-refresh:main");
    assert_eq!(
        c.images[0].platforms,
        ["linux/arm64"],
        "TARGET_ARCH wins over the catalog"
    );
    assert_eq!(c.mode, Mode::Registry);
    assert_eq!(c.builder.as_deref(), Some("img-builder"));
    assert_eq!(c.progress, "plain");
    // empty variables count as unset
    let c = load_str(TWO, &[("REGISTRY", ""), ("TAG", "")], &Overrides::default()).unwrap();
    assert_eq!(
        c.images[0].reference,
        "ghcr.io/azure/fleet/hub-agent:abc1234"
    );
}

#[test]
fn flags_override_environment() {
    let o = Overrides {
        push: true,
        platforms: vec!["linux/arm64".into(), "linux/amd64".into()],
    };
    let c = load_str(
        TWO,
        &[("TARGET_ARCH", "amd64"), ("OUTPUT_TYPE", "type=docker")],
        &o,
    )
    .unwrap();
    assert_eq!(c.mode, Mode::Registry);
    assert_eq!(c.images[1].platforms, ["linux/arm64", "linux/amd64"]);
}

#[test]
fn malformed_toml_names_line_and_column() {
    let e = err("[defaults]\nregistry = \n", &[]);
    assert!(
        e.contains("images.toml") && e.contains("line 2") && e.contains("column"),
        "{e}"
    );
}

#[test]
fn bad_catalogs_are_refused_before_any_tool_runs() {
    let cases: &[(&str, &str)] = &[
        ("[defaults]\nregistri = \"x\"\n[[image]]\nname=\"a\"\ndockerfile=\"a.Dockerfile\"", "unknown field `registri`"),
        ("[[image]]\nname=\"a\"\ndockerfile=\"a.Dockerfile\"\n[[image]]\nname=\"a\"\ndockerfile=\"a.Dockerfile\"", "listed twice"),
        ("[[image]]\nname=\"a\"\ndockerfile=\"missing.Dockerfile\"", "missing.Dockerfile does not exist"),
        ("[[image]]\nname=\"a\"\ndockerfile=\"a.Dockerfile\"\nplatforms=[\"linux/mips\"]", "unknown platform \"linux/mips\""),
        ("[[image]]\nname=\"a\"\nrepository=\"Fleet/Hub\"\ndockerfile=\"a.Dockerfile\"", "not valid"),
        ("[[image]]\nname=\"A b\"\ndockerfile=\"a.Dockerfile\"", "lowercase"),
        ("[patch]\nsuffix=\"\"\n[[image]]\nname=\"a\"\ndockerfile=\"a.Dockerfile\"", "suffix must not be empty"),
        ("[scan]\ntimeout=\"soon\"\n[[image]]\nname=\"a\"\ndockerfile=\"a.Dockerfile\"", "scan.timeout"),
        ("[scan]\npkg_types=[\"library\"]\n[[image]]\nname=\"a\"\ndockerfile=\"a.Dockerfile\"", "must include \"os\""),
        ("[scan]\nseverities=[\"SEVERE\"]\n[[image]]\nname=\"a\"\ndockerfile=\"a.Dockerfile\"", "unknown severity"),
        ("", "no [[image]] entries"),
    ];
    for (text, want) in cases {
        let e = err(text, &[]);
        assert!(e.contains(want), "{want:?} not in {e:?}");
    }
}

#[test]
fn bad_environment_values_are_refused() {
    assert!(err(TWO, &[("TAG", "v1;rm -rf /")]).contains("tag"));
    assert!(err(TWO, &[("REGISTRY", "ghcr.io/$(id)")]).contains("REGISTRY"));
    assert!(err(TWO, &[("HUB_AGENT_IMAGE_NAME", "Hub Agent")]).contains("not valid"));
    assert!(err(TWO, &[("TARGET_ARCH", "sparc")]).contains("unknown platform"));
}

#[test]
fn metacharacters_in_free_text_stay_literal() {
    // build args and named contexts are passed as single argv elements: allowed as-is
    let text = TWO.replace(
        "BASE_IMAGE = \"x\"",
        "BASE_IMAGE = \"x; rm -rf / $(id) `id` | cat\"",
    );
    let c = load_str(&text, &[], &Overrides::default()).unwrap();
    assert_eq!(
        c.images[0].build_args["BASE_IMAGE"],
        "x; rm -rf / $(id) `id` | cat"
    );
    // control characters would corrupt logs and annotations: refused
    let text = TWO.replace("BASE_IMAGE = \"x\"", "BASE_IMAGE = \"x\\ny\"");
    assert!(format!(
        "{:#}",
        load_str(&text, &[], &Overrides::default()).unwrap_err()
    )
    .contains("control characters"));
}

#[test]
fn select_lists_known_names() {
    let c = load_str(TWO, &[], &Overrides::default()).unwrap();
    assert_eq!(c.select(&[]).unwrap().len(), 2);
    assert_eq!(
        c.select(&["refresh-token".into()]).unwrap()[0].name,
        "refresh-token"
    );
    let e = c.select(&["hub".into()]).unwrap_err().to_string();
    assert!(e.contains("hub-agent, refresh-token"), "{e}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    for bad in ["", "0s", "10x", "m", "1h3"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_shipped_catalog_is_valid() {
    let path = Utf8PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docker/images.toml"
    ));
    let c = load(&path, &facts(&[]), &Overrides::default()).unwrap();
    let names: Vec<&str> = c.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hub-agent",
            "member-agent",
            "refresh-token",
            "crd-installer"
        ]
    );
    assert!(c.images.iter().all(|i| i.contexts.contains_key("fleet")));
    assert_eq!(c.tools.copa, "v0.14.2");
}

/// Every key of the catalog structs is in the README's configuration reference, and every
/// key the reference names exists.
#[test]
fn readme_reference_matches_the_catalog_struct() {
    let readme = include_str!("../../../README.md");
    let mut file = CatalogFile::default();
    file.images.push(ImageEntry {
        name: String::new(),
        repository: String::new(),
        dockerfile: "x".into(),
        context: String::new(),
        contexts: BTreeMap::new(),
        build_args: BTreeMap::new(),
        platforms: Vec::new(),
        smoke: Vec::new(),
        smoke_compare: false,
    });
    let v = serde_json::to_value(&file).unwrap();
    let mut keys = Vec::new();
    fn walk(prefix: &str, v: &serde_json::Value, keys: &mut Vec<String>) {
        if let Some(o) = v.as_object() {
            for (k, x) in o {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let nested = x.is_object()
                    || x.as_array()
                        .is_some_and(|a| a.first().is_some_and(|e| e.is_object()));
                if nested && !["sha256", "contexts", "build_args"].contains(&k.as_str()) {
                    walk(&key, x, keys);
                } else {
                    keys.push(key);
                }
            }
        } else if let Some(a) = v.as_array() {
            walk(prefix, &a[0], keys);
        }
    }
    walk("", &v, &mut keys);
    for k in &keys {
        assert!(
            readme.contains(&format!("| `{k}` |")),
            "README's configuration reference lacks `{k}`"
        );
    }
    let reference = readme
        .split("## Configuration reference")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    for line in reference.lines().filter(|l| l.starts_with("| `")) {
        let k = line.trim_start_matches("| `").split('`').next().unwrap();
        assert!(
            keys.iter().any(|x| x == k),
            "README documents `{k}`, which the catalog does not have"
        );
    }
    assert!(keys.len() > 30, "{keys:?}");
}
