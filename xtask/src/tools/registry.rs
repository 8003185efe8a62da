//! The registry and the local engine: push, tag, digests, smoke runs, login.

use crate::catalog::Catalog;
use crate::plan::cmd::Cmd;

/// How to log in, decided by the registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// `az acr login --name <name>` for `<name>.azurecr.io`.
    Acr { name: String },
    /// `docker login HOST --username U --password-stdin` with the token from REGISTRY_PASSWORD.
    Docker { host: String },
}

pub fn host(registry: &str) -> &str {
    registry.split('/').next().unwrap_or(registry)
}

pub fn login_kind(registry: &str) -> Login {
    let h = host(registry);
    match h.strip_suffix(".azurecr.io") {
        Some(name) if !name.is_empty() && !name.contains('.') => Login::Acr {
            name: name.to_string(),
        },
        _ => Login::Docker {
            host: h.to_string(),
        },
    }
}

pub const PASSWORD_VAR: &str = "REGISTRY_PASSWORD";
pub const USERNAME_VAR: &str = "REGISTRY_USERNAME";

pub fn login(cat: &Catalog, username: &str) -> Cmd {
    match login_kind(&cat.registry) {
        Login::Acr { name } => {
            Cmd::new("az", cat.timeouts.publish).args(["acr", "login", "--name", &name])
        }
        Login::Docker { host } => {
            let mut c = Cmd::new("docker", cat.timeouts.publish).args([
                "login",
                &host,
                "--username",
                username,
                "--password-stdin",
            ]);
            c.stdin_from_env = Some(PASSWORD_VAR.into());
            c
        }
    }
}

pub fn push(cat: &Catalog, reference: &str) -> Cmd {
    Cmd::new("docker", cat.timeouts.publish).args(["push", reference])
}

/// The local image's ID: with the containerd store, the digest of its index or manifest.
pub fn local_id(cat: &Catalog, reference: &str) -> Cmd {
    Cmd::new("docker", cat.timeouts.publish)
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
}

/// Start the patched image with the catalog's smoke arguments; it must exit 0.
pub fn smoke(cat: &Catalog, reference: &str, platform: &str, args: &[String]) -> Cmd {
    Cmd::new("docker", cat.timeouts.smoke)
        .args([
            "run",
            "--rm",
            "--pull",
            "never",
            "--network",
            "none",
            "--platform",
            platform,
            reference,
        ])
        .args(args.iter().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_by_host() {
        assert_eq!(
            login_kind("fleet.azurecr.io"),
            Login::Acr {
                name: "fleet".into()
            }
        );
        assert_eq!(
            login_kind("fleet.azurecr.io/x/y"),
            Login::Acr {
                name: "fleet".into()
            }
        );
        assert_eq!(
            login_kind("ghcr.io/azure/fleet"),
            Login::Docker {
                host: "ghcr.io".into()
            }
        );
        assert_eq!(
            login_kind("127.0.0.1:5000"),
            Login::Docker {
                host: "127.0.0.1:5000".into()
            }
        );
    }
}
