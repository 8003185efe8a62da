//! One external tool call: argv, extra environment, timeout. Never a shell string.

use std::fmt;
use std::time::Duration;

use camino::Utf8PathBuf;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cmd {
    /// Tool name looked up on PATH (and the repo-local `.tools/bin`): docker, trivy, copa, az, git.
    pub program: String,
    pub args: Vec<String>,
    /// Extra environment for this call only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    /// Name of an environment variable whose value is written to stdin. The value itself is
    /// never part of the plan, so it cannot be printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin_from_env: Option<String>,
    #[serde(serialize_with = "secs")]
    pub timeout: Duration,
    /// Files the tool writes that only count once it succeeded: written under `<path>.partial`
    /// by the tool (the argv names the partial path) and renamed by the runner afterwards.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Utf8PathBuf>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl Cmd {
    pub fn new(program: &str, timeout: Duration) -> Cmd {
        Cmd {
            program: program.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            stdin_from_env: None,
            timeout,
            outputs: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Cmd {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `--flag value`, only when `value` is not empty.
    pub fn opt(self, flag: &str, value: &str) -> Cmd {
        if value.is_empty() {
            self
        } else {
            self.arg(flag).arg(value)
        }
    }

    pub fn env(mut self, k: &str, v: impl Into<String>) -> Cmd {
        self.env.push((k.to_string(), v.into()));
        self
    }

    /// Declare an output file (see `outputs`).
    pub fn output(mut self, final_path: Utf8PathBuf) -> Cmd {
        self.outputs.push(final_path);
        self
    }

    /// `args` as a list of `&str` (handy in tests).
    #[cfg(test)]
    pub fn argv(&self) -> Vec<&str> {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect()
    }
}

pub fn partial(p: &camino::Utf8Path) -> Utf8PathBuf {
    Utf8PathBuf::from(format!("{p}.partial"))
}

/// Shell-quoted, for people to read and paste; the runner never goes through a shell.
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.env {
            write!(f, "{k}={} ", quote(v))?;
        }
        write!(f, "{}", self.program)?;
        for a in &self.args {
            write!(f, " {}", quote(a))?;
        }
        if let Some(var) = &self.stdin_from_env {
            write!(f, " <<< \"${var}\"")?;
        }
        Ok(())
    }
}

pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let c = Cmd::new("docker", Duration::from_secs(1))
            .args(["build", "--label", "a=b c", "x;y", "it's"])
            .opt("--builder", "")
            .env("K", "v");
        assert_eq!(
            c.to_string(),
            r#"K=v docker build --label 'a=b c' 'x;y' 'it'\''s'"#
        );
        assert_eq!(
            c.argv(),
            ["docker", "build", "--label", "a=b c", "x;y", "it's"]
        );
    }

    #[test]
    fn secret_is_named_not_shown() {
        let mut c = Cmd::new("docker", Duration::from_secs(1)).args(["login", "--password-stdin"]);
        c.stdin_from_env = Some("REGISTRY_PASSWORD".into());
        assert!(c.to_string().ends_with(r#"<<< "$REGISTRY_PASSWORD""#));
    }
}
