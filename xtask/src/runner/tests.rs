use super::*;

fn runner() -> Runner {
    Runner::new(
        Arc::new(Log::quiet()),
        None,
        vec![("trivy".into(), "0.76.0".into())],
    )
}

fn sh(script: &str, timeout: Duration) -> Cmd {
    Cmd::new("sh", timeout).args(["-c", script])
}

fn tmp(name: &str) -> Utf8PathBuf {
    let d = Utf8PathBuf::try_from(std::env::temp_dir())
        .unwrap()
        .join(format!("xtask-runner-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn captures_output_and_exit_code() {
    let out = runner()
        .run_unchecked(
            "t",
            &sh("echo out; echo err >&2; exit 3", Duration::from_secs(10)),
        )
        .unwrap();
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    let e = runner()
        .run("t", &sh("echo boom >&2; exit 4", Duration::from_secs(10)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("exit code 4") && e.contains("boom"), "{e}");
}

#[test]
fn arguments_are_never_interpreted_by_a_shell() {
    let hostile = "x; touch /tmp/xtask-pwned-$$ `id` $(id) | cat > /dev/null";
    let out = runner()
        .run(
            "t",
            &Cmd::new("printf", Duration::from_secs(5)).args(["%s", hostile]),
        )
        .unwrap();
    assert_eq!(out.stdout.trim_end(), hostile);
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let d = tmp("timeout");
    let marker = d.join("child-still-alive");
    // the child leaves a grandchild behind that would write the marker after 3 s
    let script = format!("(sleep 3; touch {marker}) & sleep 30");
    let e = runner()
        .run("t", &sh(&script, Duration::from_millis(500)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sh timed out") && e.contains("raise its timeout"),
        "{e}"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert!(!marker.exists(), "a grandchild survived the timeout");
}

#[test]
fn outputs_appear_only_on_success() {
    let d = tmp("outputs");
    let good = d.join("good.json");
    let cmd = sh(
        &format!("echo ok > {}", partial(&good)),
        Duration::from_secs(5),
    )
    .output(good.clone());
    runner().run("t", &cmd).unwrap();
    assert_eq!(std::fs::read_to_string(&good).unwrap(), "ok\n");
    assert!(!partial(&good).exists());

    let bad = d.join("bad.json");
    let cmd = sh(
        &format!("echo half > {}; exit 1", partial(&bad)),
        Duration::from_secs(5),
    )
    .output(bad.clone());
    assert!(runner().run("t", &cmd).is_err());
    assert!(
        !bad.exists() && !partial(&bad).exists(),
        "a failed tool leaves nothing that looks valid"
    );
}

#[test]
fn missing_tool_says_what_to_do() {
    let r = Runner {
        path: "/nonexistent".into(),
        ..runner()
    };
    let e = r
        .run("t", &Cmd::new("trivy", Duration::from_secs(1)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("trivy is not installed")
            && e.contains("pinned version 0.76.0")
            && e.contains("tools install"),
        "{e}"
    );
}

#[test]
fn stdin_secret_comes_from_the_environment_only() {
    std::env::set_var("XTASK_TEST_SECRET", "hunter2-token");
    let mut cmd = Cmd::new("cat", Duration::from_secs(5));
    cmd.stdin_from_env = Some("XTASK_TEST_SECRET".into());
    assert!(!cmd.to_string().contains("hunter2"));
    assert_eq!(
        runner().run("t", &cmd).unwrap().stdout.trim_end(),
        "hunter2-token"
    );
    cmd.stdin_from_env = Some("XTASK_TEST_UNSET_VAR".into());
    assert!(runner()
        .run("t", &cmd)
        .unwrap_err()
        .to_string()
        .contains("XTASK_TEST_UNSET_VAR is not set"));
}

#[test]
fn parallel_keeps_order_and_runs_concurrently() {
    use std::sync::atomic::AtomicUsize;
    let items: Vec<u64> = (0..6).collect();
    let (now, max) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let out = parallel(&items, 3, |i| {
        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(n, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        now.fetch_sub(1, Ordering::SeqCst);
        i * 2
    });
    assert_eq!(out, [0, 2, 4, 6, 8, 10]);
    let max = max.load(Ordering::SeqCst);
    assert!(
        max > 1 && max <= 3,
        "at most --jobs at once, and more than one: {max}"
    );
}

#[test]
fn atomic_write_replaces_whole_files() {
    let d = tmp("atomic");
    let p = d.join("a/b.json");
    write_atomic(&p, b"one").unwrap();
    write_atomic(&p, b"two").unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
    assert_eq!(
        std::fs::read_dir(d.join("a")).unwrap().count(),
        1,
        "no temp file left behind"
    );
}
