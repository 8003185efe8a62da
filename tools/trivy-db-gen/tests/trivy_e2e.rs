//! Writes a DB with the real CLI and scans a tiny Debian 12 rootfs with the real
//! Trivy. Trivy is looked up via $TRIVY, then PATH, then the workspace's
//! `.tools/bin/trivy`. Without it the test is skipped, unless
//! XTASK_E2E=required, in which case it fails.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const FIXTURE: &str = r#"
[[advisory]]
id = "CVE-2099-0001"
distro = "debian 12"
source_package = "libfoo"
fixed_version = "1.0-2"
severity = "HIGH"
title = "libfoo: example"
description = "Fixed in 1.0-2."

[[advisory]]
id = "CVE-2099-0002"
distro = "debian 12"
source_package = "libbar"
severity = "MEDIUM"
title = "libbar: example"
description = "No fix yet."
"#;

const DPKG_STATUS: &str = "\
Package: libfoo1
Status: install ok installed
Source: libfoo
Version: 1.0-1
Architecture: all
Maintainer: Nobody <nobody@example.invalid>
Description: example library (fixed upstream in 1.0-2)

Package: libbar1
Status: install ok installed
Source: libbar
Version: 2.0-1
Architecture: all
Maintainer: Nobody <nobody@example.invalid>
Description: example library (no fix)

";

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

fn find_trivy() -> Result<PathBuf, String> {
    if let Some(t) = env::var_os("TRIVY").filter(|t| !t.is_empty()) {
        let p = PathBuf::from(&t);
        // An explicit $TRIVY that doesn't exist is a configuration error.
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(format!("TRIVY={} is not an executable file", p.display()))
        };
    }
    if let Some(path) = env::var_os("PATH") {
        for dir in env::split_paths(&path) {
            let p = dir.join("trivy");
            if is_executable(&p) {
                return Ok(p);
            }
        }
    }
    let workspace_tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/trivy");
    if is_executable(&workspace_tool) {
        return Ok(workspace_tool);
    }
    Err(format!(
        "$TRIVY unset, not on PATH, no {}",
        workspace_tool.display()
    ))
}

fn write_rootfs(root: &Path) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    fs::write(
        root.join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
         VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n",
    )
    .unwrap();
    fs::write(root.join("etc/debian_version"), "12.7\n").unwrap();
    fs::write(root.join("var/lib/dpkg/status"), DPKG_STATUS).unwrap();
}

fn scan(trivy: &Path, cache: &Path, rootfs: &Path, extra: &[&str]) -> Value {
    let out = Command::new(trivy)
        .arg("rootfs")
        .arg("--cache-dir")
        .arg(cache)
        .args([
            "--skip-db-update",
            "--skip-version-check",
            "--disable-telemetry",
            "--scanners",
            "vuln",
            "--pkg-types",
            "os",
            "--format",
            "json",
            "--quiet",
        ])
        .args(extra)
        .arg(rootfs)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", trivy.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "trivy {extra:?} failed ({}):\n{stderr}",
        out.status
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "trivy output is not JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// (id, pkg, installed, fixed, status, severity) of every finding.
fn findings(report: &Value) -> Vec<[String; 6]> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut out: Vec<[String; 6]> = report
        .get("Results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|r| {
            r.get("Vulnerabilities")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| {
            [
                s(&v, "VulnerabilityID"),
                s(&v, "PkgName"),
                s(&v, "InstalledVersion"),
                s(&v, "FixedVersion"),
                s(&v, "Status"),
                s(&v, "Severity"),
            ]
        })
        .collect();
    out.sort();
    out
}

fn row(cells: [&str; 6]) -> [String; 6] {
    cells.map(str::to_string)
}

#[test]
fn real_trivy_uses_generated_db() {
    let trivy = match find_trivy() {
        Ok(t) => t,
        Err(why) => {
            if env::var("XTASK_E2E").as_deref() == Ok("required") {
                panic!("XTASK_E2E=required but trivy not found: {why}");
            }
            eprintln!("skipped: trivy not found ({why}); set XTASK_E2E=required to fail instead");
            return;
        }
    };

    let tmp = tempfile::tempdir().unwrap();
    let fixture = tmp.path().join("advisories.toml");
    fs::write(&fixture, FIXTURE).unwrap();
    let cache = tmp.path().join("cache");
    let rootfs = tmp.path().join("rootfs");
    write_rootfs(&rootfs);

    let gen = Command::new(env!("CARGO_BIN_EXE_trivy-db-gen"))
        .arg("--advisories")
        .arg(&fixture)
        .arg("--out")
        .arg(&cache)
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "trivy-db-gen failed: {}",
        String::from_utf8_lossy(&gen.stderr)
    );
    assert!(cache.join("db/trivy.db").is_file());
    assert!(cache.join("db/metadata.json").is_file());

    let report = scan(&trivy, &cache, &rootfs, &[]);
    assert_eq!(report["Metadata"]["OS"]["Family"], "debian", "{report:#}");
    let fixed = row([
        "CVE-2099-0001",
        "libfoo1",
        "1.0-1",
        "1.0-2",
        "fixed",
        "HIGH",
    ]);
    let unfixed = row([
        "CVE-2099-0002",
        "libbar1",
        "2.0-1",
        "",
        "affected",
        "MEDIUM",
    ]);
    let all = findings(&report);
    eprintln!("trivy {}: {all:?}", trivy.display());
    assert_eq!(all, vec![fixed.clone(), unfixed], "{report:#}");

    // Title/description come from the "vulnerability" bucket via the debian data source.
    let vulns = &report["Results"][0]["Vulnerabilities"];
    let foo = vulns
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["VulnerabilityID"] == "CVE-2099-0001")
        .unwrap();
    assert_eq!(foo["Title"], "libfoo: example");
    assert_eq!(foo["SeveritySource"], "debian");
    assert_eq!(foo["DataSource"]["ID"], "debian");

    let report = scan(&trivy, &cache, &rootfs, &["--ignore-unfixed"]);
    let only_fixed = findings(&report);
    eprintln!("trivy --ignore-unfixed: {only_fixed:?}");
    assert_eq!(only_fixed, vec![fixed], "{report:#}");
}
