//! End to end on the real tools: dockerd (containerd store), buildx, a registry on 127.0.0.1,
//! Trivy with a generated DB, and Copa. Nothing here is simulated. `.ci/e2e-env up` makes the
//! environment; `.ci/test` runs these with XTASK_E2E=required so a missing one fails.

mod common;

use common::{Run, Session};

const PLATFORM: &str = "linux/amd64";

/// The whole loop in the local engine, as on a laptop: no registry involved until publish.
#[test]
fn local_build_scan_patch_rescan_and_cache() {
    let Some(env) = common::env() else { return };
    let s = Session::new(&env, "local");
    let single = ["vuln", "unfixed", "clean"];

    // build: --load into the local engine
    let mut args = vec!["build"];
    args.extend(single);
    let b = s.ok(&args);
    for i in single {
        assert_eq!(b.action(i), "built");
        assert!(
            s.local_image_exists(&s.reference(i)),
            "{i} not in the engine"
        );
    }

    // scan: the vulnerable image has the fixture CVE as fixable; the others none
    let mut args = vec!["scan"];
    args.extend(single);
    let r = s.ok(&args);
    assert_eq!(r.fixable("vuln", PLATFORM, "before"), 1);
    let ids = &r.platform("vuln", PLATFORM)["before"]["ids"];
    assert_eq!(ids, &serde_json::json!(["CVE-2099-0001"]));
    assert_eq!(
        r.fixable("unfixed", PLATFORM, "before"),
        0,
        "ignore-unfixed hides CVE-2099-0002"
    );
    assert_eq!(r.fixable("clean", PLATFORM, "before"), 0);
    let report = r.platform("vuln", PLATFORM)["report"]
        .as_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(
        text.contains("\"SchemaVersion\": 2") && text.contains("libfoo1"),
        "{report}"
    );
    assert!(
        std::path::Path::new(r.platform("vuln", PLATFORM)["sarif"].as_str().unwrap()).is_file()
    );

    // patch: Copa only for the vulnerable image; the rescan proves the reduction
    let mut args = vec!["patch"];
    args.extend(single);
    let p = s.ok(&args);
    assert_eq!(p.action("vuln"), "patched");
    assert_eq!(p.fixable("vuln", PLATFORM, "before"), 1);
    assert_eq!(p.fixable("vuln", PLATFORM, "after"), 0);
    let patched = format!("{}-patched", s.reference("vuln"));
    assert_eq!(p.image("vuln")["patched_reference"], patched.as_str());
    assert!(s.local_image_exists(&patched));
    let vex = p.platform("vuln", PLATFORM)["vex"]
        .as_str()
        .expect("Copa's VEX document");
    assert!(
        std::fs::read_to_string(vex)
            .unwrap()
            .contains("CVE-2099-0001"),
        "the VEX names the fixed CVE"
    );
    for i in ["unfixed", "clean"] {
        assert_eq!(p.action(i), "nothing-to-patch");
        assert!(
            !s.local_image_exists(&format!("{}-patched", s.reference(i))),
            "{i} got a patched tag"
        );
    }
    assert_eq!(
        p.stderr.matches("$ copa patch").count(),
        1,
        "Copa ran exactly once:\n{}",
        p.stderr
    );

    // the patched container still works, with the fixed package
    let run = s.docker(&["run", "--rm", &patched, "--help"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("1.0-2"),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );

    // a re-run with nothing changed makes no Trivy or Copa call: prove it with neither on PATH
    let empty = std::env::temp_dir().join(format!("xtask-no-tools-{}", s.tag));
    std::fs::create_dir_all(&empty).unwrap();
    let mut c = s.command(&["patch", "vuln", "unfixed", "clean"]);
    c.env("XTASK_TOOLS_DIR", &empty)
        .env("PATH", "/usr/bin:/bin");
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "warm re-run failed:\n{err}");
    assert!(
        !err.contains("$ trivy") && !err.contains("$ copa"),
        "warm run called a tool:\n{err}"
    );

    // publish from the local engine: originals and the patched image; again: nothing pushed
    let pu = s.ok(&["publish", "vuln", "clean"]);
    assert_eq!(
        pu.stderr.matches("$ docker push").count(),
        3,
        "vuln, clean, vuln-patched:\n{}",
        pu.stderr
    );
    assert!(s.remote(&patched).is_some() && s.remote(&s.reference("clean")).is_some());
    let again = s.ok(&["publish", "vuln", "clean"]);
    assert!(
        !again.stderr.contains("$ docker push"),
        "re-publish pushed:\n{}",
        again.stderr
    );

    // a local multi-platform image: a clear error before Copa (it patches those from a registry)
    s.ok(&["build", "multi"]);
    let m = s.xtask(&["patch", "multi"]);
    assert_eq!(m.code, 1);
    let msg = m.image("multi")["failure"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("local multi-platform image") && msg.contains("--push"),
        "{msg}"
    );
    assert!(
        !m.stderr.contains("$ copa"),
        "Copa must not run: {}",
        m.stderr
    );

    // --no-cache recomputes
    let again = s.ok(&["--no-cache", "scan", "vuln"]);
    assert!(again.stderr.contains("$ trivy image"));
}

/// CI's shape: images pushed to the registry, scanned and patched from there, published as
/// multi-arch indexes; originals never move.
#[test]
fn registry_multi_arch_patch_and_publish() {
    let Some(env) = common::env() else { return };
    let s = Session::new(&env, "reg").with("OUTPUT_TYPE", "type=registry");
    let b = s.ok(&["build", "multi", "vuln", "clean"]);
    assert_eq!(b.action("multi"), "pushed");
    let (multi_digest, platforms) = s.remote(&s.reference("multi")).expect("multi pushed");
    assert_eq!(
        platforms,
        ["linux/amd64", "linux/arm64"],
        "an index with both platforms"
    );
    let vuln_digest = s.remote(&s.reference("vuln")).unwrap().0;
    let clean_digest = s.remote(&s.reference("clean")).unwrap().0;

    let p = s.ok(&["patch", "multi", "vuln", "clean"]);
    for pl in ["linux/amd64", "linux/arm64"] {
        assert_eq!(p.fixable("multi", pl, "before"), 1, "{pl}");
        assert_eq!(
            p.fixable("multi", pl, "after"),
            0,
            "{pl} patched (arm64 under qemu)"
        );
    }
    assert_eq!(p.action("clean"), "nothing-to-patch");
    assert!(
        s.remote(&format!("{}-patched", s.reference("multi")))
            .is_none(),
        "patch pushes nothing before the gate and publish"
    );

    let pub_ = s.ok(&["publish", "multi", "vuln", "clean"]);
    assert_eq!(pub_.action("multi"), "published");
    let (_, patched_platforms) = s
        .remote(&format!("{}-patched", s.reference("multi")))
        .expect("patched index");
    assert_eq!(patched_platforms, ["linux/amd64", "linux/arm64"]);
    assert!(s
        .remote(&format!("{}-patched", s.reference("vuln")))
        .is_some());
    assert!(
        s.remote(&format!("{}-patched", s.reference("clean")))
            .is_none(),
        "clean image got a patched tag"
    );

    // originals untouched
    assert_eq!(s.remote(&s.reference("multi")).unwrap().0, multi_digest);
    assert_eq!(s.remote(&s.reference("vuln")).unwrap().0, vuln_digest);
    assert_eq!(s.remote(&s.reference("clean")).unwrap().0, clean_digest);

    // the patched arm64 image runs (under emulation) with the fixed package
    let arm = s.docker(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &format!("{}-patched", s.reference("multi")),
        "--help",
    ]);
    assert!(
        arm.status.success(),
        "{}",
        String::from_utf8_lossy(&arm.stderr)
    );
    assert!(String::from_utf8_lossy(&arm.stdout).contains("1.0-2"));

    // publishing again with nothing changed pushes nothing
    let again = s.ok(&["publish", "multi", "vuln"]);
    assert!(!again.stderr.contains("$ docker push"), "{}", again.stderr);
}

/// The Makefile aliases call the same xtask and give the same result.
#[test]
fn makefile_aliases_match_xtask() {
    let Some(env) = common::env() else { return };
    let s = Session::new(&env, "make");
    s.ok(&["build", "vuln", "clean"]);
    let direct: Run = s.ok(&["scan", "vuln", "clean"]);
    let make = |target: &str| {
        let mut c = std::process::Command::new("make");
        c.arg("-C").arg(common::repo()).arg(target);
        c.arg(format!(
            "XTASK={} --catalog {} --out {}",
            env!("CARGO_BIN_EXE_xtask"),
            env.catalog.display(),
            s.out.join("make").display()
        ));
        c.envs(&env.vars)
            .env("REGISTRY", &env.registry)
            .env("TAG", &s.tag)
            .env("IMAGES", "vuln clean");
        c.output().unwrap()
    };
    let o = make("scan");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "make scan:\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for line in direct
        .stdout
        .lines()
        .filter(|l| l.starts_with("vuln") || l.starts_with("clean"))
    {
        let cells: Vec<&str> = line
            .split("  ")
            .filter(|c| !c.trim().is_empty())
            .take(3)
            .collect();
        assert!(
            out.lines()
                .any(|l| l.starts_with(cells[0]) && l.contains(cells[2].trim())),
            "{line:?} not in make's output:\n{out}"
        );
    }
}
