//! The binary's arguments, exit status and error messages.

use std::fs;
use std::process::Command;

fn run(args: &[&std::ffi::OsStr]) -> (bool, String) {
    run_env(args, None)
}

fn run_env(args: &[&std::ffi::OsStr], source_date_epoch: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trivy-db-gen"));
    cmd.args(args);
    match source_date_epoch {
        Some(v) => cmd.env("SOURCE_DATE_EPOCH", v),
        None => cmd.env_remove("SOURCE_DATE_EPOCH"),
    };
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn writes_cache_from_example() {
    let tmp = tempfile::tempdir().unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/advisories.toml");
    let cache = tmp.path().join("cache");
    let (ok, stderr) = run(&[
        "--advisories".as_ref(),
        example.as_os_str(),
        "--out".as_ref(),
        cache.as_os_str(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("wrote 4 advisories"), "{stderr}");
    let db = cache.join("db/trivy.db");
    let dump = trivy_db_gen::dump_db(&db).unwrap();
    assert!(dump.contains_key("debian 13/libfoo/CVE-2099-0001"));
    let meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(cache.join("db/metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["Version"], 2);
}

#[test]
fn bad_fixture_fails_naming_file_and_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let adv = tmp.path().join("broken.toml");
    fs::write(
        &adv,
        "[[advisory]]\nid = \"CVE-1\"\ndistro = \"debian 12\"\nsource_package = \"x\"\nseverity = \"SEVERE\"\n",
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    let (ok, stderr) = run(&[
        "--advisories".as_ref(),
        adv.as_os_str(),
        "--out".as_ref(),
        cache.as_os_str(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("broken.toml"), "{stderr}");
    assert!(stderr.contains("SEVERE"), "{stderr}");
    assert!(!cache.exists());
}

#[test]
fn missing_arguments_are_usage_errors() {
    let (ok, stderr) = run(&["--out".as_ref(), "x".as_ref()]);
    assert!(!ok);
    assert!(stderr.contains("--advisories"), "{stderr}");
}

#[test]
fn source_date_epoch_sets_timestamps() {
    let tmp = tempfile::tempdir().unwrap();
    let adv = tmp.path().join("empty.toml");
    fs::write(&adv, "").unwrap();
    let cache = tmp.path().join("cache");
    let args = [
        "--advisories".as_ref(),
        adv.as_os_str(),
        "--out".as_ref(),
        cache.as_os_str(),
    ];
    let (ok, stderr) = run_env(&args, Some("1735689600"));
    assert!(ok, "{stderr}");
    let meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(cache.join("db/metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["UpdatedAt"], "2025-01-01T00:00:00Z");
    assert_eq!(meta["DownloadedAt"], "2025-01-01T00:00:00Z");
    assert_eq!(meta["NextUpdate"], "2025-01-02T00:00:00Z");

    let (ok, stderr) = run_env(&args, Some("yesterday"));
    assert!(!ok);
    assert!(
        stderr.contains("SOURCE_DATE_EPOCH=\"yesterday\""),
        "{stderr}"
    );
}
