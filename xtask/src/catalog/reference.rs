//! Validation against the OCI distribution reference grammar, hand-written for the few rules
//! that matter: a value that passes here reaches tools as one literal, harmless argument.

/// `host[:port]` or `host[:port]/path/components`, as used for REGISTRY (`ghcr.io/azure/fleet`).
pub fn check_registry(value: &str) -> Result<(), String> {
    let (host, path) = match value.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (value, None),
    };
    check_host(host)?;
    if let Some(path) = path {
        check_repository(path)?;
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("registry port {port:?} is not a number"));
        }
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(format!(
            "registry host {host:?} is not a valid host name (letters, digits, '-', '.', optional :port)"
        ));
    }
    Ok(())
}

/// Repository path: lowercase components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`.
pub fn check_repository(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 255 {
        return Err("an image name must have 1 to 255 characters".into());
    }
    for component in value.split('/') {
        if !component_ok(component) {
            return Err(format!(
                "image name {value:?} is not valid: each '/'-separated part is lowercase letters and \
                 digits, joined by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run: '.', '_', '__' or one or more '-'
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {value:?} is not valid: 1 to 128 of letters, digits, '_', '.', '-', not starting with '.' or '-'"
        ))
    }
}

/// The platforms this tool knows how to build, scan and patch.
pub const PLATFORMS: &[&str] = &[
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
];

pub fn check_platform(value: &str) -> Result<(), String> {
    if PLATFORMS.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "unknown platform {value:?}; known: {}",
            PLATFORMS.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories() {
        for ok in [
            "hub-agent",
            "azure/fleet/hub-agent",
            "a__b",
            "a.b_c--d",
            "x1",
        ] {
            assert!(check_repository(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "Hub", "-a", "a-", "a/", "a//b", "a;rm -rf", "a___b", "a$(x)", "a b", "a._b",
        ] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        for ok in ["main", "v1.2.3", "abc1234", "_x", "main-patched"] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in ["", ".x", "-x", "a:b", "a b", "`id`", long.as_str()] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registries() {
        for ok in [
            "ghcr.io",
            "ghcr.io/azure/fleet",
            "127.0.0.1:5000",
            "fleet.azurecr.io",
            "localhost:5000/x",
        ] {
            assert!(check_registry(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ghcr.io:",
            "ghcr.io:abc",
            "-a.io",
            "a..io",
            "ghcr.io/Azure",
            "r.io;id",
            "$(id)",
        ] {
            assert!(check_registry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn platforms() {
        assert!(check_platform("linux/arm64").is_ok());
        assert!(check_platform("windows/amd64")
            .unwrap_err()
            .contains("linux/amd64"));
    }
}
