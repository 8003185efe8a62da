//! Writes a small Trivy vulnerability DB (`db/trivy.db`, bbolt, schema 2, plus
//! `db/metadata.json`) from a readable TOML advisory fixture, so Trivy can scan
//! offline with `--cache-dir DIR --skip-db-update`.
//!
//! Layout written (all values JSON):
//!
//! ```text
//! data-source/<distro>                       {"ID":"debian","Name":...,"URL":...}
//! <distro>/<source package>/<vuln id>        {"FixedVersion":"1.0-2"} | {"Status":2}
//! vulnerability/<vuln id>                    {"Title":...,"Severity":"HIGH","VendorSeverity":{"debian":3}}
//! ```

pub mod fixture;
pub mod rfc3339;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bbolt_rs::{Bolt, BucketRwApi, DbApi, DbRwAPI, TxRwRefApi};
use serde_json::{json, Map, Value};

pub use fixture::{Advisory, Fixture, Severity, UnfixedStatus};

/// Trivy DB schema version (`metadata.json` `Version`); Trivy 0.5x+ expects 2.
pub const SCHEMA_VERSION: u32 = 2;
/// Bucket mapping a distro bucket name to its data source.
pub const DATA_SOURCE_BUCKET: &str = "data-source";
/// Bucket with per-id details (title, description, severities).
pub const VULNERABILITY_BUCKET: &str = "vulnerability";
/// How far `NextUpdate` lies after `UpdatedAt` (ignored with `--skip-db-update`).
pub const NEXT_UPDATE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What [`write_cache`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub db_path: PathBuf,
    pub metadata_path: PathBuf,
    pub advisories: usize,
    pub vulnerabilities: usize,
    pub distros: Vec<String>,
}

/// Every key/value the DB will hold, computed up front so that the bbolt
/// transaction only copies bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DbContents {
    /// distro bucket name -> data-source JSON
    pub data_sources: BTreeMap<String, Vec<u8>>,
    /// distro -> source package -> vuln id -> advisory JSON
    pub advisories: BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<u8>>>>,
    /// vuln id -> vulnerability JSON
    pub vulnerabilities: BTreeMap<String, Vec<u8>>,
}

/// JSON stored under `<distro>/<source package>/<id>` (trivy-db `types.Advisory`;
/// its `Status` is marshalled as an int and only set when there is no fix).
pub fn advisory_json(adv: &Advisory) -> Value {
    match (&adv.fixed_version, adv.unfixed_status()) {
        (Some(fixed), _) => json!({ "FixedVersion": fixed }),
        (None, Some(status)) => json!({ "Status": status.as_int() }),
        (None, None) => unreachable!("unfixed_status is Some without fixed_version"),
    }
}

/// JSON stored under `data-source/<distro>` (trivy-db `types.DataSource`).
pub fn data_source_json(family: &fixture::Family) -> Value {
    json!({ "ID": family.id, "Name": family.name, "URL": family.url })
}

/// JSON stored under `vulnerability/<id>` (trivy-db `types.Vulnerability`).
/// `vendors` are the data-source IDs the id appears under.
pub fn vulnerability_json(adv: &Advisory, vendors: &BTreeSet<&str>) -> Value {
    let mut v = Map::new();
    if let Some(t) = &adv.title {
        v.insert("Title".into(), t.clone().into());
    }
    if let Some(d) = &adv.description {
        v.insert("Description".into(), d.clone().into());
    }
    v.insert("Severity".into(), adv.severity.as_str().into());
    let vendor_severity: Map<String, Value> = vendors
        .iter()
        .map(|id| (id.to_string(), adv.severity.as_int().into()))
        .collect();
    v.insert("VendorSeverity".into(), vendor_severity.into());
    if !adv.references.is_empty() {
        v.insert("References".into(), adv.references.clone().into());
    }
    Value::Object(v)
}

impl DbContents {
    pub fn from_fixture(fixture: &Fixture) -> Result<Self> {
        let mut out = DbContents::default();
        let mut vendors: BTreeMap<&str, (&Advisory, BTreeSet<&str>)> = BTreeMap::new();
        for adv in &fixture.advisories {
            let family = fixture::family_of(&adv.distro)?;
            out.data_sources
                .entry(adv.distro.clone())
                .or_insert_with(|| data_source_json(family).to_string().into_bytes());
            out.advisories
                .entry(adv.distro.clone())
                .or_default()
                .entry(adv.source_package.clone())
                .or_default()
                .insert(adv.id.clone(), advisory_json(adv).to_string().into_bytes());
            vendors
                .entry(adv.id.as_str())
                .or_insert_with(|| (adv, BTreeSet::new()))
                .1
                .insert(family.id);
        }
        for (id, (adv, families)) in vendors {
            out.vulnerabilities.insert(
                id.to_string(),
                vulnerability_json(adv, &families).to_string().into_bytes(),
            );
        }
        Ok(out)
    }

    /// Number of advisory entries (distro x package x id).
    pub fn advisory_count(&self) -> usize {
        self.advisories
            .values()
            .flat_map(|pkgs| pkgs.values())
            .map(BTreeMap::len)
            .sum()
    }
}

/// Writes `contents` into a new bbolt file at `path` (which must not exist).
/// Not atomic by itself; [`write_cache`] writes to a temp name and renames.
pub fn write_db(contents: &DbContents, path: &Path) -> Result<()> {
    if path.exists() {
        anyhow::bail!("{} already exists", path.display());
    }
    let mut db =
        Bolt::open(path).with_context(|| format!("creating bbolt DB {}", path.display()))?;
    db.update(|mut tx| {
        // Trivy panics on scan if "vulnerability" is missing, so always create it
        // (and "data-source") even for an empty fixture.
        let mut ds = tx.create_bucket_if_not_exists(DATA_SOURCE_BUCKET)?;
        for (distro, value) in &contents.data_sources {
            ds.put(distro, value)?;
        }
        let mut vb = tx.create_bucket_if_not_exists(VULNERABILITY_BUCKET)?;
        for (id, value) in &contents.vulnerabilities {
            vb.put(id, value)?;
        }
        for (distro, packages) in &contents.advisories {
            let mut distro_bucket = tx.create_bucket_if_not_exists(distro)?;
            for (pkg, ids) in packages {
                let mut pkg_bucket = distro_bucket.create_bucket_if_not_exists(pkg)?;
                for (id, value) in ids {
                    pkg_bucket.put(id, value)?;
                }
            }
        }
        Ok(())
    })
    .with_context(|| format!("writing bbolt DB {}", path.display()))?;
    db.close();
    Ok(())
}

/// The `metadata.json` Trivy checks before using `trivy.db`.
pub fn metadata_json(now: SystemTime) -> String {
    let ts = rfc3339::format(now);
    let next = rfc3339::format(now + NEXT_UPDATE_AFTER);
    let v = json!({
        "Version": SCHEMA_VERSION,
        "NextUpdate": next,
        "UpdatedAt": ts,
        "DownloadedAt": ts,
    });
    let mut s = serde_json::to_string_pretty(&v).expect("metadata serializes");
    s.push('\n');
    s
}

/// A temp file next to its destination, removed on drop unless persisted.
struct TempPath {
    path: PathBuf,
    keep: bool,
}

impl TempPath {
    fn next_to(dest: &Path) -> Self {
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("tmp");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = dest.with_file_name(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
        TempPath { path, keep: false }
    }

    /// Makes the temp file world-readable (bbolt creates it 0600; a cache
    /// shared with a container running as another user must stay readable),
    /// fsyncs it and renames it over `dest`.
    fn persist(mut self, dest: &Path) -> Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&self.path, fs::Permissions::from_mode(0o644))
                .with_context(|| format!("setting permissions of {}", self.path.display()))?;
        }
        File::open(&self.path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", self.path.display()))?;
        fs::rename(&self.path, dest)
            .with_context(|| format!("renaming {} to {}", self.path.display(), dest.display()))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `CACHE_DIR/db/trivy.db` and then `CACHE_DIR/db/metadata.json`, each
/// via a temp file in the same directory and a rename, so a concurrent Trivy
/// sees either the old or the new file, never a partial one.
pub fn write_cache(fixture: &Fixture, cache_dir: &Path, now: SystemTime) -> Result<Summary> {
    let contents = DbContents::from_fixture(fixture)?;
    let db_dir = cache_dir.join("db");
    fs::create_dir_all(&db_dir)
        .with_context(|| format!("creating directory {}", db_dir.display()))?;
    let db_path = db_dir.join("trivy.db");
    let metadata_path = db_dir.join("metadata.json");

    let tmp_db = TempPath::next_to(&db_path);
    let _ = fs::remove_file(&tmp_db.path);
    write_db(&contents, &tmp_db.path)?;
    tmp_db.persist(&db_path)?;

    let tmp_meta = TempPath::next_to(&metadata_path);
    {
        let mut f = File::create(&tmp_meta.path)
            .with_context(|| format!("creating {}", tmp_meta.path.display()))?;
        f.write_all(metadata_json(now).as_bytes())
            .with_context(|| format!("writing {}", tmp_meta.path.display()))?;
    }
    tmp_meta.persist(&metadata_path)?;

    // Make the renames durable; not all platforms can fsync a directory.
    if let Ok(dir) = File::open(&db_dir) {
        let _ = dir.sync_all();
    }

    Ok(Summary {
        db_path,
        metadata_path,
        advisories: contents.advisory_count(),
        vulnerabilities: contents.vulnerabilities.len(),
        distros: contents.data_sources.keys().cloned().collect(),
    })
}

/// Loads `advisories` and writes the DB into `cache_dir` (see [`write_cache`]).
pub fn generate(advisories: &Path, cache_dir: &Path, now: SystemTime) -> Result<Summary> {
    let fixture = Fixture::load(advisories)?;
    write_cache(&fixture, cache_dir, now).with_context(|| {
        format!(
            "writing Trivy DB from {} into {}",
            advisories.display(),
            cache_dir.display()
        )
    })
}

/// `SOURCE_DATE_EPOCH` if set (reproducible timestamps), else the clock.
pub fn now_or_source_date_epoch() -> Result<SystemTime> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => {
            let secs: u64 = s.trim().parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds since 1970")
            })?;
            Ok(UNIX_EPOCH + Duration::from_secs(secs))
        }
        Err(_) => Ok(SystemTime::now()),
    }
}

/// Reads every bucket/key of a bbolt file back (two levels of nesting, as Trivy
/// uses). Values of nested buckets are keyed `bucket/sub/key`. For tests and
/// debugging.
pub fn dump_db(path: &Path) -> Result<BTreeMap<String, String>> {
    use bbolt_rs::{BucketApi, TxApi};
    if !path.is_file() {
        anyhow::bail!("{} is not a file", path.display());
    }
    let db = Bolt::open_ro(path).with_context(|| format!("opening bbolt DB {}", path.display()))?;
    let mut out = BTreeMap::new();
    db.view(|tx| {
        fn walk<'tx, B: BucketApi<'tx>>(prefix: &str, b: &B, out: &mut BTreeMap<String, String>) {
            for (k, v) in b.iter_entries() {
                out.insert(
                    format!("{prefix}/{}", String::from_utf8_lossy(k)),
                    String::from_utf8_lossy(v).into_owned(),
                );
            }
            for (k, sub) in b.iter_buckets() {
                let p = format!("{prefix}/{}", String::from_utf8_lossy(k));
                // Mark empty buckets so their existence is visible.
                out.entry(format!("{p}/")).or_default();
                walk(&p, &sub, out);
            }
        }
        for (name, b) in tx.iter_buckets() {
            let p = String::from_utf8_lossy(name).into_owned();
            out.insert(format!("{p}/"), String::new());
            walk(&p, &b, &mut out);
        }
        Ok(())
    })
    .with_context(|| format!("reading bbolt DB {}", path.display()))?;
    db.close();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = r#"
[[advisory]]
id = "CVE-2099-0001"
distro = "debian 12"
source_package = "libfoo"
fixed_version = "1.0-2"
severity = "HIGH"
title = "libfoo: example"
description = "fixed one"

[[advisory]]
id = "CVE-2099-0002"
distro = "debian 12"
source_package = "libbar"
severity = "MEDIUM"

[[advisory]]
id = "CVE-2099-0001"
distro = "debian 13"
source_package = "libfoo"
fixed_version = "1.1-1"
severity = "HIGH"
title = "libfoo: example"
description = "fixed one"

[[advisory]]
id = "CVE-2099-0003"
distro = "debian 13"
source_package = "libbaz"
status = "fix_deferred"
severity = "CRITICAL"
references = ["https://example.invalid/3"]
"#;

    fn json_at(dump: &BTreeMap<String, String>, key: &str) -> Value {
        let raw = dump
            .get(key)
            .unwrap_or_else(|| panic!("no key {key:?} in {dump:#?}"));
        serde_json::from_str(raw).unwrap_or_else(|e| panic!("{key}: {e}: {raw}"))
    }

    #[test]
    fn writes_and_reads_back_layout() {
        let dir = tempfile::tempdir().unwrap();
        let fixture = Fixture::parse(FIXTURE).unwrap();
        let when = UNIX_EPOCH + Duration::from_secs(1_735_689_600);
        let s = write_cache(&fixture, dir.path(), when).unwrap();
        assert_eq!(s.db_path, dir.path().join("db/trivy.db"));
        assert_eq!(s.metadata_path, dir.path().join("db/metadata.json"));
        assert_eq!(s.advisories, 4);
        assert_eq!(s.vulnerabilities, 3);
        assert_eq!(s.distros, ["debian 12", "debian 13"]);

        let dump = dump_db(&s.db_path).unwrap();
        let keys: Vec<&str> = dump.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "data-source/",
                "data-source/debian 12",
                "data-source/debian 13",
                "debian 12/",
                "debian 12/libbar/",
                "debian 12/libbar/CVE-2099-0002",
                "debian 12/libfoo/",
                "debian 12/libfoo/CVE-2099-0001",
                "debian 13/",
                "debian 13/libbaz/",
                "debian 13/libbaz/CVE-2099-0003",
                "debian 13/libfoo/",
                "debian 13/libfoo/CVE-2099-0001",
                "vulnerability/",
                "vulnerability/CVE-2099-0001",
                "vulnerability/CVE-2099-0002",
                "vulnerability/CVE-2099-0003",
            ]
        );

        let debian = json!({
            "ID": "debian",
            "Name": "Debian Security Tracker",
            "URL": "https://salsa.debian.org/security-tracker-team/security-tracker"
        });
        assert_eq!(json_at(&dump, "data-source/debian 12"), debian);
        assert_eq!(json_at(&dump, "data-source/debian 13"), debian);
        assert_eq!(
            json_at(&dump, "debian 12/libfoo/CVE-2099-0001"),
            json!({"FixedVersion": "1.0-2"})
        );
        assert_eq!(
            json_at(&dump, "debian 13/libfoo/CVE-2099-0001"),
            json!({"FixedVersion": "1.1-1"})
        );
        assert_eq!(
            json_at(&dump, "debian 12/libbar/CVE-2099-0002"),
            json!({"Status": 2})
        );
        assert_eq!(
            json_at(&dump, "debian 13/libbaz/CVE-2099-0003"),
            json!({"Status": 6})
        );
        assert_eq!(
            json_at(&dump, "vulnerability/CVE-2099-0001"),
            json!({
                "Title": "libfoo: example",
                "Description": "fixed one",
                "Severity": "HIGH",
                "VendorSeverity": {"debian": 3}
            })
        );
        assert_eq!(
            json_at(&dump, "vulnerability/CVE-2099-0002"),
            json!({"Severity": "MEDIUM", "VendorSeverity": {"debian": 2}})
        );
        assert_eq!(
            json_at(&dump, "vulnerability/CVE-2099-0003"),
            json!({
                "Severity": "CRITICAL",
                "VendorSeverity": {"debian": 4},
                "References": ["https://example.invalid/3"]
            })
        );

        let meta: Value =
            serde_json::from_str(&fs::read_to_string(&s.metadata_path).unwrap()).unwrap();
        assert_eq!(
            meta,
            json!({
                "Version": 2,
                "NextUpdate": "2025-01-02T00:00:00Z",
                "UpdatedAt": "2025-01-01T00:00:00Z",
                "DownloadedAt": "2025-01-01T00:00:00Z"
            })
        );
    }

    #[test]
    fn empty_fixture_still_has_required_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let s = write_cache(&Fixture::parse("").unwrap(), dir.path(), SystemTime::now()).unwrap();
        let dump = dump_db(&s.db_path).unwrap();
        let keys: Vec<&str> = dump.keys().map(String::as_str).collect();
        assert_eq!(keys, ["data-source/", "vulnerability/"]);
    }

    #[test]
    fn rewrite_replaces_atomically_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = Fixture::parse(FIXTURE).unwrap();
        let s = write_cache(&first, dir.path(), SystemTime::now()).unwrap();
        // Keep a reader open on the old file while it is replaced.
        let old = File::open(&s.db_path).unwrap();
        let old_len = old.metadata().unwrap().len();

        let second = Fixture::parse(
            "[[advisory]]\nid = \"CVE-2099-9\"\ndistro = \"debian 12\"\nsource_package = \"z\"\nseverity = \"LOW\"\n",
        )
        .unwrap();
        write_cache(&second, dir.path(), SystemTime::now()).unwrap();
        assert_eq!(
            old.metadata().unwrap().len(),
            old_len,
            "old inode untouched"
        );

        let dump = dump_db(&s.db_path).unwrap();
        assert!(dump.contains_key("debian 12/z/CVE-2099-9"));
        assert!(!dump.contains_key("debian 12/libfoo/CVE-2099-0001"));

        let mut names: Vec<String> = fs::read_dir(dir.path().join("db"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["metadata.json", "trivy.db"]);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&s.db_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }

    #[test]
    fn unwritable_out_dir_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, "x").unwrap();
        let e = format!(
            "{:#}",
            write_cache(&Fixture::parse("").unwrap(), &file, SystemTime::now()).unwrap_err()
        );
        assert!(e.contains("creating directory"), "{e}");
        assert!(e.contains("not-a-dir"), "{e}");
    }

    #[test]
    fn generate_names_fixture_errors() {
        let dir = tempfile::tempdir().unwrap();
        let adv = dir.path().join("bad.toml");
        fs::write(
            &adv,
            "[[advisory]]\nid = \"CVE-1\"\ndistro = \"ubuntu 22.04\"\nsource_package = \"x\"\nseverity = \"LOW\"\n",
        )
        .unwrap();
        let e = format!(
            "{:#}",
            generate(&adv, &dir.path().join("cache"), SystemTime::now()).unwrap_err()
        );
        assert!(e.contains("bad.toml"), "{e}");
        assert!(e.contains("advisory #1 (CVE-1)"), "{e}");
        assert!(e.contains("unsupported family \"ubuntu\""), "{e}");
        assert!(
            !dir.path().join("cache").exists(),
            "nothing written on bad input"
        );
    }
}
