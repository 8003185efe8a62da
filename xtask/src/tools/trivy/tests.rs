use super::*;

fn vuln(id: &str, pkg: &str, fixed: Option<&str>, sev: &str) -> String {
    let fixed = fixed
        .map(|f| format!(r#","FixedVersion":"{f}","Status":"fixed""#))
        .unwrap_or_else(|| r#","Status":"affected""#.into());
    format!(
        r#"{{"VulnerabilityID":"{id}","PkgName":"{pkg}","InstalledVersion":"1.0-1"{fixed},"Severity":"{sev}"}}"#
    )
}

fn report(results: &str) -> String {
    format!(
        r#"{{"SchemaVersion":2,"CreatedAt":"2026-12-04T00:00:00Z","ArtifactName":"r/x:1","ArtifactType":"container_image",
        "Metadata":{{"OS":{{"Family":"debian","Name":"12.12"}},"ImageID":"sha256:abc",
        "ImageConfig":{{"architecture":"arm64","os":"linux"}}}},"Results":{results}}}"#
    )
}

#[test]
fn counts_fixable_os_findings_by_severity() {
    let os = format!(
        r#"{{"Target":"r/x:1 (debian 12.12)","Class":"os-pkgs","Type":"debian","Vulnerabilities":[{},{},{},{}]}}"#,
        vuln("CVE-1", "libfoo1", Some("1.0-2"), "HIGH"),
        vuln("CVE-2", "libfoo1", Some("1.0-2"), "CRITICAL"),
        vuln("CVE-3", "libbar1", None, "MEDIUM"),
        vuln("CVE-4", "libbaz1", Some(""), "LOW"),
    );
    let lang = format!(
        r#"{{"Target":"app/go.mod","Class":"lang-pkgs","Type":"gomod","Vulnerabilities":[{}]}}"#,
        vuln("GHSA-1", "golang.org/x/net", Some("0.1.0"), "HIGH")
    );
    let r = parse_report(&report(&format!("[{os},{lang}]"))).unwrap();
    assert_eq!(r.platform.as_deref(), Some("linux/arm64"));
    assert_eq!(r.os.as_deref(), Some("debian 12.12"));
    let c = r.fixable_os();
    assert_eq!(
        c.total, 2,
        "unfixed, empty FixedVersion and library findings are not Copa's"
    );
    assert_eq!(c.get("HIGH"), 1);
    assert_eq!(c.get("CRITICAL"), 1);
    assert_eq!(c.summary(), "2 (1 C 1 H)");
    assert_eq!(
        c.ids.iter().cloned().collect::<Vec<_>>(),
        ["CVE-1", "CVE-2"]
    );
    // Fleet's gate: CRITICAL,HIGH over os + library
    let g = r.gate(
        &["CRITICAL".into(), "HIGH".into()],
        &["os".into(), "library".into()],
    );
    assert_eq!(g.total, 3);
    assert_eq!(r.gate(&[], &["os".into()]).total, 4);
}

#[test]
fn nulls_are_empty_not_errors() {
    for results in [
        "null",
        "[]",
        r#"[{"Target":"x","Class":"os-pkgs","Type":"debian","Vulnerabilities":null}]"#,
        r#"[{"Target":"x","Class":"os-pkgs"}]"#,
    ] {
        let r = parse_report(&report(results)).unwrap();
        assert_eq!(r.fixable_os().total, 0, "{results}");
    }
    let r = parse_report(r#"{"SchemaVersion":2,"Results":null,"Metadata":null}"#).unwrap();
    assert!(r.findings.is_empty() && r.platform.is_none());
}

#[test]
fn the_same_finding_in_two_targets_counts_once() {
    let v = vuln("CVE-1", "libfoo1", Some("1.0-2"), "HIGH");
    let results = format!(
        r#"[{{"Target":"a","Class":"os-pkgs","Vulnerabilities":[{v}]}},{{"Target":"b","Class":"os-pkgs","Vulnerabilities":[{v}]}}]"#
    );
    assert_eq!(
        parse_report(&report(&results)).unwrap().fixable_os().total,
        1
    );
}

#[test]
fn unknown_severity_is_unknown() {
    let results = format!(
        r#"[{{"Class":"os-pkgs","Vulnerabilities":[{}]}}]"#,
        vuln("CVE-1", "p", Some("2"), "weird")
    );
    assert_eq!(
        parse_report(&report(&results))
            .unwrap()
            .fixable_os()
            .get("UNKNOWN"),
        1
    );
}

#[test]
fn not_a_schema_v2_report_says_what_is_wrong() {
    let cases = [
        ("", "empty"),
        (r#"{"SchemaVersion":1,"Results":[]}"#, "schema version 1"),
        (r#"{"Results":[]}"#, "no SchemaVersion"),
        (
            r#"{"SchemaVersion":2,"Results":[{"Class":"os-pkgs","Vulnerabilities":[{"VulnerabilityID":"#,
            "truncated",
        ),
        ("<html>rate limited</html>", "not a Trivy JSON report"),
        (r#"[1,2,3]"#, "not a Trivy JSON report"),
        (
            r#"{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"PkgName":"x"}]}]}"#,
            "VulnerabilityID",
        ),
    ];
    for (text, want) in cases {
        let e = parse_report(text).unwrap_err().to_string();
        assert!(e.contains(want), "{want:?} not in {e:?}");
    }
}

#[test]
fn read_report_names_the_file() {
    let p = Utf8PathBuf::from(format!(
        "{}/xtask-trivy-{}.json",
        std::env::temp_dir().display(),
        std::process::id()
    ));
    std::fs::write(&p, r#"{"SchemaVersion":2,"Results":["#).unwrap();
    let e = format!("{:#}", read_report(&p).unwrap_err());
    assert!(e.contains(p.as_str()) && e.contains("truncated"), "{e}");
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn a_50_mb_report_with_thousands_of_findings() {
    let vulns: Vec<String> = (0..250_000)
        .map(|i| {
            vuln(
                &format!("CVE-{i}"),
                &format!("p{}", i % 500),
                Some("2"),
                SEVERITIES[i % 5],
            )
        })
        .collect();
    // Trivy's Description fields make real reports this heavy
    let padding = "x".repeat(80);
    let vulns: Vec<String> = vulns
        .into_iter()
        .map(|v| v.replacen('{', &format!(r#"{{"Description":"{padding}","#), 1))
        .collect();
    let text = report(&format!(
        r#"[{{"Class":"os-pkgs","Vulnerabilities":[{}]}}]"#,
        vulns.join(",")
    ));
    assert!(text.len() > 50_000_000, "{} bytes", text.len());
    let c = parse_report(&text).unwrap().fixable_os();
    assert_eq!(c.total, 250_000);
    assert_eq!(c.get("LOW"), 50_000);
}

use camino::Utf8PathBuf;

#[test]
fn sarif_gets_one_category_per_image_and_platform() {
    let sarif = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"Trivy"}},"results":[]}]}"#;
    let out = categorize_sarif(sarif, "trivy-hub-agent-linux-arm64").unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["runs"][0]["automationDetails"]["id"],
        "trivy-hub-agent-linux-arm64/"
    );
    assert_eq!(v["runs"][0]["tool"]["driver"]["name"], "Trivy");
    assert!(categorize_sarif("{}", "x").is_err());
}

#[test]
fn platforms_compare_without_the_arm64_variant() {
    assert!(same_platform("linux/arm64", "linux/arm64/v8"));
    assert!(!same_platform("linux/amd64", "linux/arm64"));
}
