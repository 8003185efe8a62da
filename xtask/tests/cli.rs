//! The command line as users meet it: exit codes, --dry-run, errors, secrets, `tools install`.
//! No engine needed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xtask(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(args)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("REGISTRY_PASSWORD");
    for k in [
        "REGISTRY",
        "TAG",
        "OUTPUT_TYPE",
        "TARGET_ARCH",
        "BUILDX_BUILDER_NAME",
        "XTASK_CATALOG",
        "XTASK_OUT",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xtask-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixture_catalog() -> String {
    common::repo()
        .join("e2e/fixtures/images.toml")
        .display()
        .to_string()
}

#[test]
fn help_documents_exit_codes() {
    let o = xtask(&["--help"], &[]);
    assert!(o.status.success());
    let t = text(&o);
    assert!(t.contains("Usage: cargo xtask"), "{t}");
    assert!(
        t.contains("0  every selected image")
            && t.contains("1  at least one image failed")
            && t.contains("2  usage"),
        "{t}"
    );
    assert_eq!(xtask(&["frobnicate"], &[]).status.code(), Some(2));
}

#[test]
fn dry_run_prints_every_call_and_runs_nothing() {
    let cat = fixture_catalog();
    // PATH without docker/trivy/copa: a dry run must not need them
    let o = xtask(
        &["--catalog", &cat, "patch", "--dry-run"],
        &[
            ("TAG", "t1"),
            ("PATH", "/nonexistent"),
            ("REGISTRY", "127.0.0.1:5000"),
        ],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("# vuln (127.0.0.1:5000/vuln:t1; linux/amd64)"),
        "{t}"
    );
    assert!(
        t.contains("copa patch --image 127.0.0.1:5000/multi:t1 --report"),
        "{t}"
    );
    assert_eq!(
        t.matches("trivy image").count(),
        2 * 5,
        "a scan and a rescan per image and platform:\n{t}"
    );
}

#[test]
fn configuration_errors_exit_2_before_anything_runs() {
    let d = tmpdir("bad");
    let bad = d.join("images.toml");
    std::fs::write(&bad, "[[image]]\nname = \"a\"\ndockerfile = \n").unwrap();
    let o = xtask(
        &["--catalog", bad.to_str().unwrap(), "build"],
        &[("TAG", "t")],
    );
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(t.contains("images.toml") && t.contains("line 3"), "{t}");
    assert_eq!(
        t.matches("error:").count(),
        1,
        "one chain, printed once:\n{t}"
    );

    let o = xtask(
        &["--catalog", &fixture_catalog(), "scan", "vulnn"],
        &[("TAG", "t")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("unknown image \"vulnn\"")
            && text(&o).contains("vuln, unfixed, clean, multi")
    );

    let o = xtask(
        &["--catalog", &fixture_catalog(), "scan"],
        &[("TAG", "$(reboot)")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn a_missing_tool_fails_its_images_and_says_how_to_install_it() {
    let d = tmpdir("notools");
    let none = d.join("none");
    let o = xtask(
        &[
            "--catalog",
            &fixture_catalog(),
            "--out",
            d.to_str().unwrap(),
            "scan",
            "vuln",
            "clean",
        ],
        &[
            ("TAG", "t"),
            ("PATH", "/nonexistent"),
            ("XTASK_TOOLS_DIR", none.to_str().unwrap()),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.contains("docker is not installed"), "{t}");
    assert!(
        t.contains("vuln failed at scan") && t.contains("clean failed at scan"),
        "{t}"
    );
}

#[test]
fn a_registry_token_never_appears_in_output_or_files() {
    let token = "ghp_KnownTokenValue1234567890";
    let d = tmpdir("token");
    let cat = fixture_catalog();
    // dry-run login: the token is read from the environment, never printed
    let o = xtask(
        &["--catalog", &cat, "login", "--dry-run"],
        &[
            ("REGISTRY", "ghcr.io"),
            ("REGISTRY_USERNAME", "bot"),
            ("REGISTRY_PASSWORD", token),
            ("TAG", "t"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("docker login ghcr.io --username bot --password-stdin"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains(token));
    // a real run that fails (no docker): nothing it prints or writes holds the token
    let json = d.join("r.json");
    let o = xtask(
        &[
            "--catalog",
            &cat,
            "--out",
            d.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "scan",
            "vuln",
        ],
        &[
            ("REGISTRY_PASSWORD", token),
            ("TAG", "t"),
            ("PATH", "/nonexistent"),
            ("XTASK_TOOLS_DIR", "/nonexistent"),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(!text(&o).contains(token));
    for f in common::walk(&d) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(token),
            "{} holds the token",
            f.display()
        );
    }
    // the ACR path logs in with az, no token on any command line
    let o = xtask(
        &["--catalog", &cat, "login", "--dry-run"],
        &[("REGISTRY", "fleet.azurecr.io"), ("TAG", "t")],
    );
    assert_eq!(text(&o).trim(), "az acr login --name fleet");
}

#[test]
fn matrix_is_json_for_github() {
    let o = xtask(
        &["--catalog", &fixture_catalog(), "matrix", "vuln", "multi"],
        &[("TAG", "t")],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["include"][1]["image"], "multi");
    assert_eq!(v["include"][1]["platforms"], "linux/amd64,linux/arm64");
}

/// `tools install` against a real HTTP server on 127.0.0.1 serving fixture archives (the
/// release host is a stand-in: no internet here). A wrong checksum is refused and leaves nothing.
#[test]
fn tools_install_verifies_checksums() {
    if which("python3").is_none() || which("curl").is_none() {
        panic!("python3 and curl are needed for this test");
    }
    let d = tmpdir("install");
    let srv = d.join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    // fixture archives: a `trivy` and a `copa` that print their version like the real ones
    let arch = if cfg!(target_arch = "aarch64") {
        ("ARM64", "arm64")
    } else {
        ("64bit", "amd64")
    };
    let files = [
        (
            format!("trivy_0.76.0_Linux-{}.tar.gz", arch.0),
            "trivy",
            "echo Version: 0.76.0",
        ),
        (
            format!("copa_0.14.2_linux_{}.tar.gz", arch.1),
            "copa",
            "echo copa version 0.14.2",
        ),
    ];
    let mut sums = Vec::new();
    for (archive, bin, body) in &files {
        let stage = d.join(format!("stage-{bin}"));
        std::fs::create_dir_all(&stage).unwrap();
        std::fs::write(stage.join(bin), format!("#!/bin/sh\n{body}\n")).unwrap();
        Command::new("chmod")
            .args(["+x", stage.join(bin).to_str().unwrap()])
            .status()
            .unwrap();
        assert!(Command::new("tar")
            .args([
                "-czf",
                srv.join(archive).to_str().unwrap(),
                "-C",
                stage.to_str().unwrap(),
                bin
            ])
            .status()
            .unwrap()
            .success());
        let sum = Command::new("sha256sum")
            .arg(srv.join(archive))
            .output()
            .unwrap();
        sums.push(
            String::from_utf8_lossy(&sum.stdout)
                .split_whitespace()
                .next()
                .unwrap()
                .to_string(),
        );
    }
    let port = free_port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
            "--directory",
            srv.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let catalog = |trivy_sum: &str| {
        let c = d.join("images.toml");
        std::fs::write(d.join("x.Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(
            &c,
            format!(
                "[tools]\ntrivy = \"0.76.0\"\ncopa = \"v0.14.2\"\n[tools.sha256]\n\"trivy-linux-{a}\" = \"{trivy_sum}\"\n\"copa-linux-{a}\" = \"{}\"\n[[image]]\nname = \"x\"\ndockerfile = \"x.Dockerfile\"\n",
                sums[1],
                a = arch.1
            ),
        )
        .unwrap();
        c
    };
    let mirror = format!("http://127.0.0.1:{port}");
    let bin = d.join("bin");
    let install = |catalog: PathBuf| {
        let args = [
            "--catalog",
            catalog.to_str().unwrap(),
            "tools",
            "install",
            "--mirror",
            &mirror,
            "--dir",
            bin.to_str().unwrap(),
        ];
        xtask(&args, &[("TAG", "t")])
    };

    // a wrong checksum: refused, nothing installed, no download left behind
    let wrong = "0".repeat(64);
    let o = install(catalog(&wrong));
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("does not match the pinned") && t.contains("refusing"),
        "{t}"
    );
    assert!(
        !bin.join("trivy").exists(),
        "a refused archive was installed"
    );
    let left: Vec<_> = std::fs::read_dir(&bin)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains("trivy"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // the right checksums: both installed and runnable
    let o = install(catalog(&sums[0]));
    assert!(o.status.success(), "{}", text(&o));
    let v = Command::new(bin.join("trivy")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "Version: 0.76.0");
    assert!(bin.join("copa").is_file());
    let _ = server.kill();
    let _ = server.wait();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn which(p: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|d| Path::new(d).join(p))
        .find(|p| p.is_file())
}

/// ACR login runs `az acr login --name <registry>`. `az` is the one tool that cannot run here
/// (no Azure): this test puts a STAND-IN `az` on PATH that records its arguments.
#[test]
fn acr_login_calls_az_with_the_registry_name() {
    let d = tmpdir("az");
    let log = d.join("az-args");
    let stand_in = d.join("az");
    std::fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\n# stand-in for the Azure CLI\necho \"$@\" > {}\n",
            log.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["+x", stand_in.to_str().unwrap()])
        .status()
        .unwrap();
    let path = format!("{}:{}", d.display(), std::env::var("PATH").unwrap());
    let o = xtask(
        &["--catalog", &fixture_catalog(), "login"],
        &[
            ("REGISTRY", "fleet.azurecr.io"),
            ("TAG", "t"),
            ("PATH", &path),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().trim(),
        "acr login --name fleet"
    );
    // docker login without a token is a configuration error, before anything runs
    let o = xtask(
        &["--catalog", &fixture_catalog(), "login"],
        &[
            ("REGISTRY", "ghcr.io"),
            ("REGISTRY_USERNAME", "bot"),
            ("TAG", "t"),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("REGISTRY_PASSWORD"), "{}", text(&o));
}

/// Under GitHub Actions: each image's lines in one `::group::`, `::error::` annotations (summary
/// first), and the table appended to $GITHUB_STEP_SUMMARY.
#[test]
fn github_actions_output() {
    let d = tmpdir("gha");
    let summary = d.join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let o = xtask(
        &[
            "--catalog",
            &fixture_catalog(),
            "--out",
            d.to_str().unwrap(),
            "scan",
            "vuln",
            "clean",
        ],
        &[
            ("TAG", "t"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
            ("PATH", "/nonexistent"),
            ("XTASK_TOOLS_DIR", "/nonexistent"),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    for image in ["vuln", "clean"] {
        let start = err
            .find(&format!("::group::{image}\n"))
            .unwrap_or_else(|| panic!("no group for {image}:\n{err}"));
        let end = err[start..].find("::endgroup::").expect("group closed");
        assert!(
            err[start..start + end].contains(&format!("[{image}] ✗ failed at scan")),
            "{err}"
        );
    }
    assert!(
        out.contains("::error title=cargo xtask scan::2 image(s) failed: vuln, clean"),
        "{out}"
    );
    assert!(out.contains("::error title=vuln failed at scan::"), "{out}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("earlier step\n### cargo xtask scan: 2 image(s) failed"),
        "appended, not replaced:\n{md}"
    );
    assert!(
        md.contains("<details><summary>vuln failed at scan</summary>"),
        "{md}"
    );
}
