use super::*;
use crate::tools::trivy::Counts;

fn counts(ids: &[(&str, &str)]) -> Counts {
    let mut c = Counts::default();
    for (id, sev) in ids {
        c.total += 1;
        *c.by_severity.entry(sev.to_string()).or_default() += 1;
        c.ids.insert(id.to_string());
    }
    c
}

fn run() -> RunReport {
    let mut ok = ImageResult {
        image: "vuln".into(),
        reference: "r/vuln:t".into(),
        action: Action::Patched,
        failure: None,
        patched_reference: Some("r/vuln:t-patched".into()),
        platforms: vec![PlatformResult {
            platform: "linux/amd64".into(),
            ..Default::default()
        }],
        seconds: 3.25,
    };
    ok.platforms[0].before = Some(counts(&[("CVE-2099-0001", "HIGH")]));
    ok.platforms[0].after = Some(Counts::default());
    let mut bad = ok.clone();
    bad.image = "broken".into();
    bad.patched_reference = None;
    bad.fail(
        Stage::Patch,
        "copa exited with 1: 100% | broken\nsecond line",
    );
    RunReport {
        command: "patch".into(),
        catalog: "c.toml".into(),
        registry: "r".into(),
        mode: "local".into(),
        exit_code: 1,
        seconds: 5.0,
        images: vec![ok, bad],
    }
}

#[test]
fn terminal_table_names_failures() {
    let t = terminal(&run());
    assert!(t.lines().next().unwrap().starts_with("image"), "{t}");
    assert!(t.contains("1 (1 H) → 0"), "{t}");
    assert!(
        t.contains("patched") && t.contains("r/vuln:t-patched"),
        "{t}"
    );
    assert!(t.contains("failed at patch"), "{t}");
    assert!(t.contains("1 of 2 image(s) failed"), "{t}");
    assert!(
        t.contains("broken failed at patch: copa exited with 1"),
        "{t}"
    );
}

#[test]
fn markdown_summary_and_limit() {
    let md = markdown(&run());
    assert!(
        md.starts_with("### cargo xtask patch: 1 image(s) failed"),
        "{md}"
    );
    assert!(
        md.contains("| vuln | linux/amd64 | 1 (1 H) → 0 | patched |"),
        "{md}"
    );
    assert!(
        md.contains("<details><summary>broken failed at patch</summary>"),
        "{md}"
    );
    assert!(
        md.contains("vuln linux/amd64 before: CVE-2099-0001"),
        "{md}"
    );
    let mut big = run();
    let many: Vec<(String, String)> = (0..80_000)
        .map(|i| (format!("CVE-2099-{i:05}"), "LOW".to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    big.images[0].platforms[0].before = Some(counts(&refs));
    let md = markdown(&big);
    assert!(md.len() <= 1024 * 1024, "{}", md.len());
    assert!(md.ends_with("see the JSON results)\n"));
}

#[test]
fn annotations_escape_and_summarise_first() {
    let a = annotations(&run());
    assert_eq!(
        a[0],
        "::error title=cargo xtask patch::1 image(s) failed: broken"
    );
    assert_eq!(
        a[1],
        "::error title=broken failed at patch::copa exited with 1: 100%25 | broken%0Asecond line"
    );
    let mut r = run();
    for i in 0..20 {
        let mut x = r.images[1].clone();
        x.image = format!("b{i}");
        r.images.push(x);
    }
    assert_eq!(
        annotations(&r).len(),
        10,
        "GitHub shows at most 10 errors per step"
    );
}

#[test]
fn json_round_trips() {
    let text = serde_json::to_string(&run()).unwrap();
    let back: RunReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back.images[1].failure.as_ref().unwrap().stage, Stage::Patch);
    assert!(text.contains(r#""action":"failed""#));
}
