//! Shared by the end-to-end tests: the environment `.ci/e2e-env up` made (real dockerd with the
//! containerd store, a real registry on 127.0.0.1, Trivy, Copa, the generated Trivy DB), and a
//! way to run the real `xtask` binary against the fixture catalog.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub struct Env {
    pub vars: BTreeMap<String, String>,
    pub registry: String,
    pub catalog: PathBuf,
}

/// The e2e environment, or `None` (test skipped, loudly) when it is not up. With
/// `XTASK_E2E=required` (as `.ci/test` sets) a missing environment fails the test instead.
pub fn env() -> Option<Env> {
    let root = std::env::var("XTASK_E2E_ROOT").unwrap_or_else(|_| "/tmp/xe".into());
    let file = Path::new(&root).join("env");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            if std::env::var("XTASK_E2E").is_ok_and(|v| v == "required") {
                panic!(
                    "XTASK_E2E=required but {} is unreadable ({e}): run `.ci/e2e-env up`",
                    file.display()
                );
            }
            eprintln!(
                "SKIPPED: e2e environment not up ({}); run `.ci/e2e-env up` or `.ci/test`",
                file.display()
            );
            return None;
        }
    };
    let mut vars: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let registry = vars
        .get("XTASK_E2E_REGISTRY")
        .cloned()
        .expect("XTASK_E2E_REGISTRY in the env file");
    if let Some(bin) = vars.get("XTASK_TOOLS_BIN").cloned() {
        vars.insert("XTASK_TOOLS_DIR".into(), bin);
    }
    Some(Env {
        vars,
        registry,
        catalog: repo().join("e2e/fixtures/images.toml"),
    })
}

static N: AtomicU32 = AtomicU32::new(0);

/// A tag no other test (or earlier run) uses.
pub fn unique_tag(prefix: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 100_000_000;
    format!(
        "{prefix}-{t}-{}-{}",
        std::process::id() % 10_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub json: serde_json::Value,
}

impl Run {
    pub fn image(&self, name: &str) -> &serde_json::Value {
        self.json["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["image"] == name)
            .unwrap_or_else(|| panic!("{name} not in results:\n{}", self.json))
    }
    pub fn action(&self, name: &str) -> String {
        self.image(name)["action"].as_str().unwrap().to_string()
    }
    pub fn platform(&self, name: &str, platform: &str) -> &serde_json::Value {
        self.image(name)["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["platform"] == platform)
            .unwrap()
    }
    pub fn fixable(&self, name: &str, platform: &str, which: &str) -> u64 {
        self.platform(name, platform)[which]["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} {platform} {which}: {}", self.image(name)))
    }
}

pub struct Session<'a> {
    pub env: &'a Env,
    pub tag: String,
    pub out: PathBuf,
    pub extra: Vec<(String, String)>,
}

impl<'a> Session<'a> {
    pub fn new(env: &'a Env, name: &str) -> Session<'a> {
        let tag = unique_tag(name);
        let out = std::env::temp_dir().join(format!("xtask-e2e-{tag}"));
        Session {
            env,
            tag,
            out,
            extra: Vec::new(),
        }
    }

    pub fn with(mut self, k: &str, v: &str) -> Self {
        self.extra.push((k.into(), v.into()));
        self
    }

    pub fn reference(&self, image: &str) -> String {
        format!("{}/{image}:{}", self.env.registry, self.tag)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
        let json = self
            .out
            .join(format!("result-{}.json", N.fetch_add(1, Ordering::SeqCst)));
        c.arg("--catalog")
            .arg(&self.env.catalog)
            .arg("--out")
            .arg(&self.out)
            .arg("--json")
            .arg(&json)
            .arg("--github=false");
        c.args(args);
        c.envs(&self.env.vars)
            .env("REGISTRY", &self.env.registry)
            .env("TAG", &self.tag);
        c.env_remove("GITHUB_ACTIONS")
            .env_remove("OUTPUT_TYPE")
            .env_remove("TARGET_ARCH");
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c
    }

    /// Run `xtask ARGS`; the JSON result file is parsed (Null if it was not written).
    pub fn xtask(&self, args: &[&str]) -> Run {
        self.run(self.command(args), args)
    }

    /// Run a command made by `command` (after adjusting it), like `xtask`.
    pub fn run(&self, mut c: Command, args: &[&str]) -> Run {
        let json_path = c
            .get_args()
            .skip_while(|a| *a != "--json")
            .nth(1)
            .map(PathBuf::from)
            .unwrap();
        let o = c.output().expect("run xtask");
        let run = Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
            json: std::fs::read_to_string(&json_path)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
        };
        eprintln!(
            "=== {} xtask {} → exit {}\n{}\n{}",
            self.tag,
            args.join(" "),
            run.code,
            tail(&run.stderr, 60),
            run.stdout
        );
        run
    }

    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.xtask(args);
        assert_eq!(
            r.code,
            0,
            "xtask {} failed:\n{}\n{}",
            args.join(" "),
            r.stderr,
            r.stdout
        );
        r
    }

    /// A tool call in the e2e environment (docker against the test engine).
    pub fn tool(&self, program: &str, args: &[&str]) -> Output {
        let mut path = std::env::var("PATH").unwrap_or_default();
        if let Some(bin) = self.env.vars.get("XTASK_TOOLS_BIN") {
            path = format!("{bin}:{path}");
        }
        Command::new(program)
            .args(args)
            .envs(&self.env.vars)
            .env("PATH", path)
            .output()
            .expect("run tool")
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.tool("docker", args)
    }

    pub fn local_image_exists(&self, reference: &str) -> bool {
        self.docker(&["image", "inspect", reference])
            .status
            .success()
    }

    /// `(digest, platforms)` of a registry reference, or None when the tag is not there.
    pub fn remote(&self, reference: &str) -> Option<(String, Vec<String>)> {
        let o = self.docker(&[
            "buildx",
            "imagetools",
            "inspect",
            "--format",
            "{{json .Manifest}}",
            reference,
        ]);
        if !o.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        let digest = v["digest"].as_str()?.to_string();
        let platforms = v["manifests"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter(|e| e["platform"]["os"] != "unknown")
                    .map(|e| {
                        format!(
                            "{}/{}",
                            e["platform"]["os"].as_str().unwrap_or(""),
                            e["platform"]["architecture"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some((digest, platforms))
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A catalog in a temp dir: the fixture catalog's settings plus `extra` TOML, and `images` as
/// (name, Dockerfile under e2e/fixtures/context, platforms).
pub fn catalog(name: &str, extra: &str, images: &[(&str, &str, &[&str])]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-cat-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ctx = repo().join("e2e/fixtures/context");
    let mut text = format!(
        "[build]\npull = false\ntimeout = \"20m\"\n[scan]\nskip_db_update = true\ntimeout = \"5m\"\n{extra}\n"
    );
    for (n, dockerfile, platforms) in images {
        let df = if dockerfile.starts_with('/') {
            PathBuf::from(dockerfile)
        } else {
            ctx.join(dockerfile)
        };
        text += &format!(
            "[[image]]\nname = \"{n}\"\ndockerfile = \"{}\"\ncontext = \"{}\"\nplatforms = {:?}\n",
            df.display(),
            ctx.display(),
            platforms
        );
    }
    let path = dir.join("images.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Fault injection: a wrapper named like the real tool (a stand-in only in the sense that it
/// sits in front): calls whose arguments mention `victim` run `action` (sh); every other call
/// `exec`s the real tool unchanged. `$out` is the value of `--output`, `$image`/`$tag` those
/// of `--image`/`--tag`, `$real` the real binary.
pub fn fault_tools(env: &Env, name: &str, faults: &[(&str, &str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-faulttools-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bin = PathBuf::from(env.vars.get("XTASK_TOOLS_BIN").expect("XTASK_TOOLS_BIN"));
    for tool in ["trivy", "copa"] {
        let real = std::fs::canonicalize(bin.join(tool)).unwrap();
        let fault = faults.iter().find(|(t, _, _)| *t == tool);
        let body = match fault {
            None => format!("#!/bin/sh\nexec {} \"$@\"\n", real.display()),
            Some((_, victim, action)) => format!(
                "#!/bin/sh\n# fault injection in front of the real {tool}\nreal={real}\nhit=0; prev=''; out=''; image=''; tag=''\n\
                 for a in \"$@\"; do\n  case \"$a\" in *{victim}*) hit=1;; esac\n  case \"$prev\" in --output) out=$a;; --image) image=$a;; --tag) tag=$a;; esac\n  prev=$a\ndone\n\
                 if [ $hit = 1 ]; then\n{action}\nfi\nexec \"$real\" \"$@\"\n",
                real = real.display()
            ),
        };
        let p = dir.join(tool);
        std::fs::write(&p, body).unwrap();
        Command::new("chmod")
            .args(["+x", p.to_str().unwrap()])
            .status()
            .unwrap();
    }
    dir
}

/// Every file below `d`.
pub fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
