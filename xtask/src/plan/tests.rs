use super::*;
use crate::catalog::{self, Facts, Overrides};

fn catalog(env: &[(&str, &str)], o: &Overrides) -> (Catalog, Layout) {
    let d = std::env::temp_dir().join(format!(
        "xtask-plan-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let d = Utf8PathBuf::try_from(d).unwrap();
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("x.Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(
        d.join("images.toml"),
        r#"
[defaults]
source_url = "https://github.com/Azure/fleet"
[build]
pull = false
[scan]
skip_db_update = true
cache_dir = "trivy-cache"
[[image]]
name = "one"
dockerfile = "x.Dockerfile"
platforms = ["linux/amd64"]
build_args = { BASE_IMAGE = "debian:12-slim" }
contexts = { fleet = "https://github.com/Azure/fleet.git#v0.14.0" }
smoke = ["--version"]
[[image]]
name = "multi"
dockerfile = "x.Dockerfile"
platforms = ["linux/amd64", "linux/arm64"]
"#,
    )
    .unwrap();
    let facts = Facts {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        git_sha: Some("abc1234".into()),
        git_time: Some("2026-12-01T10:00:00Z".into()),
        host_arch: "amd64".into(),
    };
    let cat = catalog::load(&d.join("images.toml"), &facts, o).unwrap();
    (cat, Layout { out: "out".into() })
}

fn img<'a>(c: &'a Catalog, n: &str) -> &'a Image {
    c.images.iter().find(|i| i.name == n).unwrap()
}

#[test]
fn build_one_platform_loads_with_fleet_build_args() {
    let (c, l) = catalog(
        &[("REGISTRY", "127.0.0.1:5000"), ("TAG", "t1")],
        &Overrides::default(),
    );
    let cmd = build(&c, img(&c, "one"), &l);
    let dir = c.dir.as_str();
    assert_eq!(
        cmd.argv(),
        [
            "docker",
            "buildx",
            "build",
            "--file",
            &format!("{dir}/x.Dockerfile"),
            "--platform",
            "linux/amd64",
            "--tag",
            "127.0.0.1:5000/one:t1",
            "--progress",
            "auto",
            "--label",
            "org.opencontainers.image.title=one",
            "--label",
            "org.opencontainers.image.version=t1",
            "--label",
            "org.opencontainers.image.source=https://github.com/Azure/fleet",
            "--label",
            "org.opencontainers.image.revision=abc1234",
            "--label",
            "org.opencontainers.image.created=2026-12-01T10:00:00Z",
            "--build-arg",
            "GOOS=linux",
            "--build-arg",
            "GOARCH=amd64",
            "--build-arg",
            "BASE_IMAGE=debian:12-slim",
            "--build-context",
            "fleet=https://github.com/Azure/fleet.git#v0.14.0",
            "--load",
            "--metadata-file",
            "out/build/one.json.partial",
            &format!("{dir}/."),
        ]
    );
}

#[test]
fn build_multi_platform_pushes_without_goarch() {
    let o = Overrides {
        push: true,
        ..Default::default()
    };
    let (c, l) = catalog(&[("TAG", "t1"), ("BUILDX_BUILDER_NAME", "img-builder")], &o);
    let a = build(&c, img(&c, "multi"), &l).argv().join(" ");
    assert!(
        a.starts_with("docker buildx build --builder img-builder --file "),
        "{a}"
    );
    assert!(
        a.contains("--platform linux/amd64,linux/arm64 --tag ghcr.io/multi:t1"),
        "{a}"
    );
    assert!(
        !a.contains("GOARCH"),
        "per-platform GOARCH comes from TARGETARCH: {a}"
    );
    assert!(
        a.contains(" --push --metadata-file out/build/multi.json.partial "),
        "{a}"
    );
    // any other OUTPUT_TYPE is passed through
    let (c, l) = catalog(
        &[("TAG", "t1"), ("OUTPUT_TYPE", "type=oci,dest=x.tar")],
        &Overrides::default(),
    );
    assert!(build(&c, img(&c, "one"), &l)
        .args
        .contains(&"--output=type=oci,dest=x.tar".to_string()));
}

#[test]
fn scan_reads_local_engine_or_registry_per_platform() {
    let (c, l) = catalog(&[("TAG", "t1")], &Overrides::default());
    let cmd = scan(&c, img(&c, "multi"), "linux/arm64", false, &l);
    let cache = format!("{}/trivy-cache", c.dir);
    assert_eq!(
        cmd.argv(),
        [
            "trivy",
            "image",
            "--cache-dir",
            &cache,
            "--skip-db-update",
            "--skip-version-check",
            "--disable-telemetry",
            "--scanners",
            "vuln",
            "--pkg-types",
            "os",
            "--ignore-unfixed",
            "--image-src",
            "docker",
            "--platform",
            "linux/arm64",
            "--timeout",
            "600s",
            "--format",
            "json",
            "--output",
            "out/reports/multi/linux-arm64/trivy.json.partial",
            "ghcr.io/multi:t1",
        ]
    );
    assert_eq!(
        cmd.outputs,
        [Utf8PathBuf::from(
            "out/reports/multi/linux-arm64/trivy.json"
        )]
    );
    let (c, l) = catalog(
        &[("TAG", "t1"), ("OUTPUT_TYPE", "type=registry")],
        &Overrides::default(),
    );
    let a = scan(&c, img(&c, "one"), "linux/amd64", true, &l)
        .argv()
        .join(" ");
    assert!(
        a.contains("--pkg-types os,library"),
        "--gate adds the gate's package types: {a}"
    );
    assert!(
        a.contains("--image-src remote --platform linux/amd64"),
        "{a}"
    );
    let s = sarif(&c, img(&c, "one"), "linux/amd64", &l)
        .argv()
        .join(" ");
    assert_eq!(s, "trivy convert --format sarif --output out/reports/one/linux-amd64/trivy.sarif.partial out/reports/one/linux-amd64/trivy.json");
}

#[test]
fn patch_single_report_or_report_directory() {
    let (c, l) = catalog(&[("TAG", "t1")], &Overrides::default());
    let one = patch(&c, img(&c, "one"), &l).argv().join(" ");
    assert_eq!(
        one,
        "copa patch --image ghcr.io/one:t1 --report out/reports/one/linux-amd64/trivy.json --tag t1-patched \
         --timeout 600s --progress plain --format openvex --output out/reports/one/linux-amd64/vex.json.partial"
    );
    let multi = patch(&c, img(&c, "multi"), &l).argv().join(" ");
    assert!(
        multi.contains("--report out/reports/multi/copa-reports --tag t1-patched"),
        "{multi}"
    );
    assert_eq!(
        patched_local(&c, img(&c, "multi"), "linux/arm64"),
        "ghcr.io/multi:t1-patched-arm64"
    );
    assert_eq!(
        patched_local(&c, img(&c, "one"), "linux/amd64"),
        "ghcr.io/one:t1-patched"
    );
    let r = rescan(&c, img(&c, "multi"), "linux/arm64", &l)
        .argv()
        .join(" ");
    assert!(r.ends_with("--output out/reports/multi/linux-arm64/rescan.json.partial ghcr.io/multi:t1-patched-arm64"), "{r}");
    assert!(
        r.contains("--image-src docker"),
        "patched images are in the local engine: {r}"
    );
    assert_eq!(
        smoke(&c, img(&c, "one"), "linux/amd64").argv().join(" "),
        "docker run --rm --pull never --network none --platform linux/amd64 ghcr.io/one:t1-patched --version"
    );
}

#[test]
fn smoke_compare_runs_the_original_first() {
    let (mut c, l) = catalog(&[("TAG", "t1")], &Overrides::default());
    c.images[0].smoke_compare = true;
    let text = render(&c, &c.images[..1], Command::Patch, &l);
    let runs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("docker run"))
        .collect();
    assert_eq!(
        runs,
        [
            "docker run --rm --pull missing --network none --platform linux/amd64 ghcr.io/one:t1 --version",
            "docker run --rm --pull never --network none --platform linux/amd64 ghcr.io/one:t1-patched --version",
        ]
    );
}

#[test]
fn patched_images_are_labelled_with_their_origin() {
    let (c, l) = catalog(&[("TAG", "t1")], &Overrides::default());
    let labels = patched_labels(&c, img(&c, "one"), "sha256:orig", "sha256:rep");
    let a = relabel(&c, img(&c, "one"), "linux/amd64", &labels, &l)
        .argv()
        .join(" ");
    assert_eq!(
        a,
        "docker buildx build --load --provenance=false --platform linux/amd64 --file out/label/Dockerfile \
         --build-arg PATCHED=ghcr.io/one:t1-patched \
         --label org.opencontainers.image.base.name=ghcr.io/one:t1 \
         --label org.opencontainers.image.base.digest=sha256:orig --label dev.copacetic.version=v0.14.2 \
         --label dev.xtask.trivy-report.sha256=sha256:rep --tag ghcr.io/one:t1-patched out/label"
    );
}

#[test]
fn publish_never_targets_the_original_tag() {
    let (c, _) = catalog(
        &[("TAG", "t1"), ("REGISTRY", "127.0.0.1:5000")],
        &Overrides::default(),
    );
    let one = publish_patched(&c, img(&c, "one"), &["linux/amd64".into()], &[]);
    assert_eq!(one.len(), 1);
    assert_eq!(
        one[0].argv(),
        ["docker", "push", "127.0.0.1:5000/one:t1-patched"]
    );
    let digests = vec![
        ("linux/amd64".to_string(), "sha256:a".to_string()),
        ("linux/arm64".to_string(), "sha256:b".to_string()),
    ];
    let multi = publish_patched(&c, img(&c, "multi"), &["linux/amd64".into()], &digests);
    let all: Vec<String> = multi.iter().map(|c| c.argv().join(" ")).collect();
    assert_eq!(
        all,
        [
            "docker push 127.0.0.1:5000/multi:t1-patched-amd64",
            "docker buildx imagetools create --tag 127.0.0.1:5000/multi:t1-patched 127.0.0.1:5000/multi:t1-patched-amd64 127.0.0.1:5000/multi@sha256:b",
        ],
        "the unpatched arm64 is kept by digest"
    );
    for cmd in multi.iter().chain(&one) {
        assert!(!cmd
            .args
            .iter()
            .any(|a| a == "127.0.0.1:5000/multi:t1" || a == "127.0.0.1:5000/one:t1"));
    }
}

#[test]
fn dry_run_lists_every_step_in_order() {
    let (c, l) = catalog(&[("TAG", "t1")], &Overrides::default());
    let text = render(&c, &c.images, Command::Patch, &l);
    let order: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        &order[..6],
        [
            "trivy image",
            "trivy convert",
            "copa patch",
            "docker buildx",
            "trivy image",
            "docker run"
        ],
        "{text}"
    );
    assert!(text.contains("# multi (ghcr.io/multi:t1; linux/amd64, linux/arm64)"));
    assert!(text.contains("#   patch: if any platform has fixable OS vulnerabilities"));
    let build = render(&c, &c.images, Command::Build, &l);
    assert_eq!(
        build
            .lines()
            .filter(|l| l.starts_with("docker buildx build"))
            .count(),
        2
    );
}
