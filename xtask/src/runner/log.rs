//! Output that stays readable with several images at once: every line carries its image
//! label; under GitHub Actions each image's lines are held and printed as one `::group::`.
//! Known secrets are masked in every line.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

pub struct Log {
    github: bool,
    quiet: bool,
    secrets: Vec<String>,
    held: Mutex<BTreeMap<String, Vec<String>>>,
}

impl Log {
    pub fn new(github: bool, secrets: Vec<String>) -> Log {
        let secrets = secrets.into_iter().filter(|s| s.len() >= 4).collect();
        Log {
            github,
            quiet: false,
            secrets,
            held: Mutex::new(BTreeMap::new()),
        }
    }

    /// No tool output at all (benchmarks, tests of the runner).
    pub fn quiet() -> Log {
        Log {
            github: false,
            quiet: true,
            secrets: Vec::new(),
            held: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn github(&self) -> bool {
        self.github
    }

    pub fn mask(&self, line: &str) -> String {
        let mut l = line.to_string();
        for s in &self.secrets {
            if l.contains(s.as_str()) {
                l = l.replace(s.as_str(), "***");
            }
        }
        l
    }

    /// One line of an image's output. The label is the image (and platform).
    pub fn line(&self, label: &str, text: &str) {
        if self.quiet || text.trim().is_empty() {
            return;
        }
        let text = self.mask(text);
        if self.github {
            let key = label.split_whitespace().next().unwrap_or(label).to_string();
            self.held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default()
                .push(format!("[{label}] {text}"));
        } else {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "[{label}] {text}");
        }
    }

    /// Progress that must show even while lines are held (long steps).
    pub fn heartbeat(&self, label: &str, text: &str) {
        if self.quiet {
            return;
        }
        let _ = writeln!(std::io::stderr().lock(), "[{label}] {}", self.mask(text));
    }

    /// A message of the tool itself, not tied to an image.
    pub fn say(&self, text: &str) {
        if self.quiet {
            return;
        }
        let _ = writeln!(std::io::stderr().lock(), "{}", self.mask(text));
    }

    /// Print an image's held lines as one group (GitHub Actions); no-op elsewhere.
    pub fn flush(&self, image: &str) {
        if !self.github || self.quiet {
            return;
        }
        let lines = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(image)
            .unwrap_or_default();
        let mut out = std::io::stderr().lock();
        let _ = writeln!(out, "::group::{image}");
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = writeln!(out, "::endgroup::");
    }
}

/// Lines still held at the end (commands outside the pipeline: login, tools install) are not lost.
impl Drop for Log {
    fn drop(&mut self) {
        let images: Vec<String> = self
            .held
            .lock()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default();
        for image in images {
            self.flush(&image);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secrets_everywhere_in_a_line() {
        let log = Log::new(false, vec!["s3cr3t-token".into(), "ab".into()]);
        assert_eq!(
            log.mask("user:s3cr3t-token x s3cr3t-token"),
            "user:*** x ***"
        );
        // too-short values are not treated as secrets (they would mask everything)
        assert_eq!(log.mask("abc"), "abc");
    }
}
