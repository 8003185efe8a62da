//! Faults injected into one image while the others are healthy, on the real tools (registry
//! mode, as in CI). For each: the others complete and publish; exit 1; the JSON names image,
//! stage and reason; no patched tag for the victim; originals never move; a re-run after the
//! fault is fixed finishes the work without redoing what succeeded.

mod common;

use common::{Env, Run, Session};

const HEALTHY: [&str; 2] = ["vuln", "clean"];
const VICTIM: &str = "victim";

struct Case<'a> {
    s: Session<'a>,
    originals: Vec<(String, String)>,
}

/// Build (push) the healthy images and the victim (a second vulnerable image).
fn setup<'a>(env: &'a Env, name: &str, extra: &str, victim_dockerfile: &str) -> Case<'a> {
    setup_with(env, name, extra, victim_dockerfile, "")
}

/// `setup`, with extra catalog keys for the victim's [[image]] entry.
fn setup_with<'a>(
    env: &'a Env,
    name: &str,
    extra: &str,
    victim_dockerfile: &str,
    victim_keys: &str,
) -> Case<'a> {
    let cat = common::catalog(
        name,
        extra,
        &[
            ("vuln", "vuln.Dockerfile", &["linux/amd64"]),
            ("clean", "clean.Dockerfile", &["linux/amd64"]),
            (VICTIM, victim_dockerfile, &["linux/amd64"]),
        ],
    );
    let text = std::fs::read_to_string(&cat).unwrap();
    std::fs::write(
        &cat,
        text.replace(
            &format!("name = \"{VICTIM}\"\n"),
            &format!("name = \"{VICTIM}\"\n{victim_keys}\n"),
        ),
    )
    .unwrap();
    let env = Box::leak(Box::new(Env {
        vars: env.vars.clone(),
        registry: env.registry.clone(),
        catalog: cat,
    }));
    let s = Session::new(env, name).with("OUTPUT_TYPE", "type=registry");
    Case {
        s,
        originals: Vec::new(),
    }
}

impl Case<'_> {
    fn build_all(&mut self) {
        self.s.ok(&["build"]);
        self.originals = ["vuln", "clean", VICTIM]
            .iter()
            .map(|i| {
                (
                    i.to_string(),
                    self.s.remote(&self.s.reference(i)).unwrap().0,
                )
            })
            .collect();
    }

    /// patch + publish with the fault in place; returns the patch run.
    fn faulty_run(&self, tools: Option<&std::path::Path>) -> (Run, Run) {
        let with_tools = |args: &[&str]| {
            let mut c = self.s.command(args);
            if let Some(t) = tools {
                c.env("XTASK_TOOLS_DIR", t);
            }
            c
        };
        let run = |args: &[&str]| self.s.run(with_tools(args), args);
        (run(&["patch"]), run(&["publish"]))
    }

    fn assert_contained(&self, patch: &Run, publish: &Run, stage: &str, reason: &str) {
        assert_eq!(patch.code, 1, "the run exits 1");
        let f = &patch.image(VICTIM)["failure"];
        assert_eq!(f["stage"], stage, "{}", patch.image(VICTIM));
        assert!(
            f["message"].as_str().unwrap().contains(reason),
            "{reason:?} not in {}",
            f["message"]
        );
        assert!(
            patch
                .stdout
                .contains(&format!("{VICTIM} failed at {stage}")),
            "summary names it:\n{}",
            patch.stdout
        );
        assert_eq!(patch.action("vuln"), "patched");
        assert_eq!(patch.action("clean"), "nothing-to-patch");
        assert_eq!(publish.code, 1);
        assert_eq!(publish.action("vuln"), "published");
        assert_eq!(publish.action("clean"), "published");
        assert!(
            self.s
                .remote(&format!("{}-patched", self.s.reference("vuln")))
                .is_some(),
            "healthy image published"
        );
        assert!(
            self.s
                .remote(&format!("{}-patched", self.s.reference(VICTIM)))
                .is_none(),
            "no patched tag for the victim"
        );
        self.assert_originals();
    }

    fn assert_originals(&self) {
        for (i, d) in &self.originals {
            assert_eq!(
                &self.s.remote(&self.s.reference(i)).unwrap().0,
                d,
                "original {i} moved"
            );
        }
    }

    /// Fault fixed: the victim finishes; the healthy images are not redone.
    fn rerun_fixed(&self) {
        let p = self.s.ok(&["patch"]);
        assert_eq!(p.action(VICTIM), "patched");
        assert!(
            p.platform("vuln", "linux/amd64")["cached"]
                .as_bool()
                .unwrap(),
            "vuln was redone"
        );
        assert!(
            !p.stderr.contains(&format!(
                "$ copa patch --image {}",
                self.s.reference("vuln")
            )),
            "Copa ran again for vuln"
        );
        let pu = self.s.ok(&["publish"]);
        let vuln_push = format!("$ docker push {}-patched", self.s.reference("vuln"));
        assert!(
            !pu.stderr.contains(&vuln_push),
            "vuln re-pushed:\n{}",
            pu.stderr
        );
        assert!(self
            .s
            .remote(&format!("{}-patched", self.s.reference(VICTIM)))
            .is_some());
        self.assert_originals();
    }
}

#[test]
fn a_dockerfile_that_fails_to_build() {
    let Some(env) = common::env() else { return };
    let broken =
        std::env::temp_dir().join(format!("xtask-broken-{}.Dockerfile", std::process::id()));
    std::fs::write(&broken, "ARG BASE_IMAGE=debian:12-slim\nFROM ${BASE_IMAGE}\nRUN echo injected build failure && exit 7\n").unwrap();
    let c = setup(&env, "fbuild", "", broken.to_str().unwrap());
    let b = c.s.xtask(&["build"]);
    assert_eq!(b.code, 1);
    assert_eq!(b.image(VICTIM)["failure"]["stage"], "build");
    assert!(
        b.image(VICTIM)["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("exit code"),
        "{}",
        b.image(VICTIM)
    );
    for i in HEALTHY {
        assert_eq!(b.action(i), "pushed");
    }
    assert!(c.s.remote(&c.s.reference(VICTIM)).is_none());
    let p = c.s.xtask(&["patch", "vuln", "clean"]);
    assert_eq!(p.code, 0, "the healthy images go on");
}

#[test]
fn trivy_fails_for_one_image() {
    let Some(env) = common::env() else { return };
    let mut c = setup(&env, "ftrivy", "", "vuln.Dockerfile");
    c.build_all();
    let tools = common::fault_tools(
        c.s.env,
        "trivy-exit",
        &[(
            "trivy",
            "/victim:",
            "echo 'injected: trivy failure' >&2; exit 3",
        )],
    );
    let (p, pu) = c.faulty_run(Some(&tools));
    c.assert_contained(&p, &pu, "scan", "exit code 3");
    c.rerun_fixed();
}

#[test]
fn trivy_writes_a_corrupt_report() {
    let Some(env) = common::env() else { return };
    let mut c = setup(&env, "fcorrupt", "", "vuln.Dockerfile");
    c.build_all();
    let action = r#"if [ "$1" = image ]; then printf '{"SchemaVersion":2,"Results":[{"Vulnerabil' > "$out"; exit 0; fi"#;
    let tools = common::fault_tools(c.s.env, "trivy-corrupt", &[("trivy", "/victim:", action)]);
    let (p, pu) = c.faulty_run(Some(&tools));
    c.assert_contained(&p, &pu, "scan", "truncated");
    c.rerun_fixed();
}

#[test]
fn trivy_without_its_database() {
    let Some(env) = common::env() else { return };
    let mut c = setup(&env, "fnodb", "", "vuln.Dockerfile");
    c.build_all();
    let tools = common::fault_tools(
        c.s.env,
        "trivy-nodb",
        &[(
            "trivy",
            "/victim:",
            r#"exec "$real" "$@" --cache-dir /nonexistent/trivy-db"#,
        )],
    );
    let (p, pu) = c.faulty_run(Some(&tools));
    c.assert_contained(&p, &pu, "scan", "trivy image");
    c.rerun_fixed();
}

#[test]
fn copa_exits_non_zero() {
    let Some(env) = common::env() else { return };
    let mut c = setup(&env, "fcopa", "", "vuln.Dockerfile");
    c.build_all();
    let tools = common::fault_tools(
        c.s.env,
        "copa-exit",
        &[(
            "copa",
            "/victim:",
            "echo 'injected: copa failure' >&2; exit 1",
        )],
    );
    let (p, pu) = c.faulty_run(Some(&tools));
    c.assert_contained(&p, &pu, "patch", "injected: copa failure");
    c.rerun_fixed();
}

#[test]
fn copa_reaches_its_timeout() {
    let Some(env) = common::env() else { return };
    let mut c = setup(
        &env,
        "ftimeout",
        "[patch]\ntimeout = \"90s\"\n",
        "vuln.Dockerfile",
    );
    c.build_all();
    let tools = common::fault_tools(c.s.env, "copa-hang", &[("copa", "/victim:", "sleep 3600")]);
    let (p, pu) = c.faulty_run(Some(&tools));
    c.assert_contained(
        &p,
        &pu,
        "patch",
        "copa timed out after 90s: raise its timeout in the catalog ([patch] timeout)",
    );
    let orphans = std::process::Command::new("pgrep")
        .args(["-f", "sleep 3600"])
        .output()
        .unwrap();
    assert!(
        orphans.stdout.is_empty(),
        "the hung copa's group was not killed"
    );
    c.rerun_fixed();
}

#[test]
fn copa_cannot_reach_buildkit() {
    let Some(env) = common::env() else { return };
    let mut c = setup(&env, "fbuildkit", "", "vuln.Dockerfile");
    c.build_all();
    let tools = common::fault_tools(
        c.s.env,
        "copa-addr",
        &[(
            "copa",
            "/victim:",
            r#"exec "$real" "$@" --addr unix:///nonexistent/buildkitd.sock"#,
        )],
    );
    let (p, pu) = c.faulty_run(Some(&tools));
    c.assert_contained(&p, &pu, "patch", "copa exited with");
    c.rerun_fixed();
}

#[test]
fn a_patch_that_does_not_improve_is_not_published() {
    let Some(env) = common::env() else { return };
    let mut c = setup(&env, "fgate", "", "vuln.Dockerfile");
    c.build_all();
    // "patches" by re-tagging the original: the rescan shows the same vulnerability
    let action = r#"if [ "$1" = patch ]; then docker pull -q "$image" >/dev/null && docker tag "$image" "${image%:*}:$tag" && echo "Loaded image: ${image%:*}:$tag"; exit $?; fi"#;
    let tools = common::fault_tools(c.s.env, "copa-noop", &[("copa", "/victim:", action)]);
    let (p, pu) = c.faulty_run(Some(&tools));
    c.assert_contained(&p, &pu, "gate", "no improvement: 1 fixable before, 1 after");
    c.rerun_fixed();
}

#[test]
fn copa_missing_from_path() {
    let Some(env) = common::env() else { return };
    let mut c = setup(&env, "fmissing", "", "clean.Dockerfile");
    c.build_all();
    let only_trivy = common::fault_tools(c.s.env, "no-copa", &[]);
    std::fs::remove_file(only_trivy.join("copa")).unwrap();
    let mut cmd = c.s.command(&["patch"]);
    cmd.env("XTASK_TOOLS_DIR", &only_trivy)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let p = c.s.run(cmd, &["patch"]);
    assert_eq!(p.code, 1);
    let f = &p.image("vuln")["failure"];
    assert_eq!(f["stage"], "patch");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("copa is not installed")
            && f["message"]
                .as_str()
                .unwrap()
                .contains("pinned version v0.14.2"),
        "{f}"
    );
    assert_eq!(p.action("clean"), "nothing-to-patch");
    assert_eq!(
        p.action(VICTIM),
        "nothing-to-patch",
        "images that need no Copa are unaffected"
    );
    c.assert_originals();
}

/// A registry of this test's own (real docker-registry on 127.0.0.1), so stopping it cannot
/// disturb tests running beside it.
struct OwnRegistry {
    child: Option<std::process::Child>,
    config: std::path::PathBuf,
    addr: String,
}

impl OwnRegistry {
    fn new() -> OwnRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("xtask-own-registry-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n", dir.join("data").display()),
        )
        .unwrap();
        let mut r = OwnRegistry {
            child: None,
            config,
            addr: format!("127.0.0.1:{port}"),
        };
        r.start();
        r
    }
    fn start(&mut self) {
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (sudo .ci/provision installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("registry on {} did not start", self.addr);
    }
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn the_registry_stops_during_publish() {
    let Some(env) = common::env() else { return };
    let mut reg = OwnRegistry::new();
    let env = Env {
        vars: env.vars.clone(),
        registry: reg.addr.clone(),
        catalog: env.catalog.clone(),
    };
    let mut c = setup(&env, "fregistry", "", "vuln.Dockerfile");
    c.build_all();
    c.s.ok(&["patch"]);
    reg.stop();
    let pu = c.s.xtask(&["publish"]);
    reg.start();
    assert_eq!(pu.code, 1);
    assert_eq!(pu.image("vuln")["failure"]["stage"], "publish");
    assert_eq!(pu.image(VICTIM)["failure"]["stage"], "publish");
    assert_eq!(
        pu.action("clean"),
        "published",
        "nothing to push for the clean image"
    );
    assert!(c
        .s
        .remote(&format!("{}-patched", c.s.reference("vuln")))
        .is_none());
    c.assert_originals();
    // registry back: the re-run publishes what is missing
    let again = c.s.ok(&["publish"]);
    assert_eq!(again.action("vuln"), "published");
    assert!(c
        .s
        .remote(&format!("{}-patched", c.s.reference("vuln")))
        .is_some());
    assert!(c
        .s
        .remote(&format!("{}-patched", c.s.reference(VICTIM)))
        .is_some());
    c.assert_originals();
}

#[test]
fn sigint_stops_children_and_the_next_run_resumes() {
    let Some(env) = common::env() else { return };
    let mut c = setup(&env, "fsigint", "", "vuln.Dockerfile");
    c.build_all();
    let marker = format!("sleep 3599.{}", std::process::id() % 1000);
    let tools = common::fault_tools(c.s.env, "copa-slow", &[("copa", "/victim:", &marker)]);
    let mut cmd = c.s.command(&["--jobs", "1", "patch"]);
    cmd.env("XTASK_TOOLS_DIR", &tools)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // wait until the victim's (hanging) Copa runs
    let mut seen = false;
    for _ in 0..600 {
        let o = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap();
        if !o.stdout.is_empty() {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(seen, "the victim's copa never started");
    send_signal(child.id() as i32, 2);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let left = std::process::Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "orphaned children remain");
    let partials = common::walk(&c.s.out)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect::<Vec<_>>();
    assert!(partials.is_empty(), "half-written files left: {partials:?}");
    // the next run resumes: finished scans come from the cache, the victim gets patched
    let p = c.s.ok(&["patch"]);
    assert_eq!(p.action(VICTIM), "patched");
    assert_eq!(p.action("vuln"), "patched");
    c.assert_originals();
}

#[test]
fn two_runs_at_once_share_the_out_dir_safely() {
    let Some(env) = common::env() else { return };
    let mut c = setup(&env, "fconcurrent", "", "vuln.Dockerfile");
    c.build_all();
    let spawn = || {
        let mut cmd = c.s.command(&["--no-cache", "scan"]);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(
        both.contains("another cargo xtask run uses"),
        "the second run should wait for the first:\n{both}"
    );
    for i in ["vuln", "clean", VICTIM] {
        let report = c.s.out.join(format!("reports/{i}/linux-amd64/trivy.json"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(v["SchemaVersion"], 2);
    }
}

fn send_signal(pid: i32, sig: i32) {
    std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
}

/// The original is rebuilt between `patch` and `publish`: the patched image belongs to the old
/// original, so it is not published.
#[test]
fn an_original_rebuilt_after_patch_is_not_published_patched() {
    let Some(env) = common::env() else { return };
    let mut c = setup(&env, "frebuilt", "", "vuln.Dockerfile");
    c.build_all();
    c.s.ok(&["patch"]);
    // rebuild the victim from a different Dockerfile under the same name and tag
    let changed =
        std::env::temp_dir().join(format!("xtask-changed-{}.Dockerfile", std::process::id()));
    let original =
        std::fs::read_to_string(common::repo().join("e2e/fixtures/context/vuln.Dockerfile"))
            .unwrap();
    std::fs::write(&changed, format!("{original}\nLABEL rebuilt=yes\n")).unwrap();
    let other = common::catalog(
        "frebuilt-2",
        "",
        &[(VICTIM, changed.to_str().unwrap(), &["linux/amd64"])],
    );
    let mut rebuild = c.s.command(&["build"]);
    let args: Vec<std::ffi::OsString> = rebuild.get_args().map(|a| a.to_owned()).collect();
    let catalog_at = args.iter().position(|a| a == "--catalog").unwrap() + 1;
    let mut fixed: Vec<std::ffi::OsString> = args.clone();
    fixed[catalog_at] = other.clone().into_os_string();
    rebuild = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
    rebuild
        .args(&fixed)
        .envs(&c.s.env.vars)
        .env("REGISTRY", &c.s.env.registry)
        .env("TAG", &c.s.tag)
        .env("OUTPUT_TYPE", "type=registry");
    assert!(rebuild.status().unwrap().success());
    let pu = c.s.xtask(&["publish"]);
    assert_eq!(pu.code, 1);
    let f = &pu.image(VICTIM)["failure"];
    assert_eq!(f["stage"], "publish");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("changed since `cargo xtask patch`"),
        "{f}"
    );
    assert_eq!(pu.action("vuln"), "published", "the others still publish");
    assert!(c
        .s
        .remote(&format!("{}-patched", c.s.reference(VICTIM)))
        .is_none());
}

/// A patched image that does not pass its smoke run is not published; with `smoke_compare` the
/// patched image only has to exit like the original.
#[test]
fn a_patched_image_that_fails_its_smoke_run() {
    let Some(env) = common::env() else { return };
    let mut c = setup_with(
        &env,
        "fsmoke",
        "",
        "vuln.Dockerfile",
        "smoke = [\"--exit\", \"3\"]",
    );
    c.build_all();
    let p = c.s.xtask(&["patch"]);
    let pu = c.s.xtask(&["publish"]);
    c.assert_contained(&p, &pu, "smoke", "exit code 3");

    let mut c = setup_with(
        &env,
        "fsmokecmp",
        "",
        "vuln.Dockerfile",
        "smoke = [\"--exit\", \"3\"]\nsmoke_compare = true",
    );
    c.build_all();
    let p = c.s.ok(&["patch"]);
    assert_eq!(
        p.action(VICTIM),
        "patched",
        "both exit 3: the patched image behaves like the original"
    );
    assert_eq!(
        p.stderr.matches("--exit 3").count(),
        4,
        "original and patched smoke runs:\n{}",
        p.stderr
    );
}
