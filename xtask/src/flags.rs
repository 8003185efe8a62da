//! The whole command line. `main.rs` only dispatches on it.

use camino::Utf8PathBuf;
use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Exit codes:
  0  every selected image finished its stages
  1  at least one image failed (the others still finished; see the summary)
  2  usage or configuration error (nothing was run)

Environment (same names as Fleet's Makefile; they override docker/images.toml):
  REGISTRY, TAG, <IMAGE>_IMAGE_NAME, <IMAGE>_IMAGE_VERSION (e.g. HUB_AGENT_IMAGE_VERSION),
  TARGET_OS, TARGET_ARCH, OUTPUT_TYPE, BUILDKIT_PROGRESS_TYPE, BUILDX_BUILDER_NAME";

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Build, scan, patch and publish the container images in the catalog",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The image catalog.
    #[arg(
        long,
        global = true,
        default_value = "docker/images.toml",
        env = "XTASK_CATALOG"
    )]
    pub catalog: Utf8PathBuf,
    /// Print the exact argv of every tool call, per image, in order; run nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Images processed at once (default: number of cores).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Write a machine-readable result file.
    #[arg(long, global = true)]
    pub json: Option<Utf8PathBuf>,
    /// Recompute everything: ignore cached scan and patch results.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Where reports, results and the cache go.
    #[arg(long, global = true, default_value = "target/xtask", env = "XTASK_OUT")]
    pub out: Utf8PathBuf,
    /// GitHub Actions output (groups, annotations, step summary); default: detected.
    #[arg(long, global = true)]
    pub github: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// docker buildx build every selected image (loaded locally, or pushed).
    Build(BuildArgs),
    /// Trivy JSON report per image and platform, counted by severity.
    Scan(ScanArgs),
    /// Scan, Copa-patch only images with fixable OS vulnerabilities, rescan, gate, smoke-test.
    Patch(Select),
    /// Push originals and gated patched images (multi-arch indexes); never moves an original tag.
    Publish(Select),
    /// Log in to the registry: GHCR/others with docker login, *.azurecr.io with az acr login.
    Login,
    /// Create (or reuse) the buildx builder named by BUILDX_BUILDER_NAME.
    Builder,
    /// Print the selected images as a GitHub Actions matrix (JSON).
    Matrix(Select),
    /// List every tool, its path and version against the pinned one.
    Doctor,
    /// Pinned tools.
    #[command(subcommand)]
    Tools(ToolsCommand),
    /// Measure the pipeline on a catalog: parallel vs sequential, warm vs cold, own overhead.
    Bench(BenchArgs),
}

#[derive(Debug, Clone, Args, Default)]
pub struct Select {
    /// Image names from the catalog (default: all).
    pub images: Vec<String>,
    /// Every image in the catalog (the default when no name is given).
    #[arg(long, conflicts_with = "images")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub select: Select,
    /// Push to the registry (same as OUTPUT_TYPE=type=registry).
    #[arg(long)]
    pub push: bool,
    /// Platforms for every selected image, comma-separated (overrides catalog and TARGET_ARCH).
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub select: Select,
    /// Apply the catalog's gate policy ([scan.gate], like Fleet's trivy.yml): exit 1 on findings.
    #[arg(long)]
    pub gate: bool,
}

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// Put the pinned Trivy and Copa in .tools/bin, verified by the pinned SHA-256.
    Install {
        /// Base URL of the release mirror (default: the upstream GitHub releases).
        #[arg(long, env = "XTASK_TOOLS_MIRROR")]
        mirror: Option<String>,
        /// Target directory.
        #[arg(long, default_value = ".tools/bin")]
        dir: Utf8PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Image names (default: all).
    pub images: Vec<String>,
    /// The command to measure: scan or patch.
    #[arg(long, default_value = "patch")]
    pub stage: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from(["xtask", "scan", "hub-agent", "--dry-run", "--jobs", "3"])
            .unwrap();
        assert!(cli.global.dry_run);
        assert_eq!(cli.global.jobs, Some(3));
        assert!(Cli::try_parse_from(["xtask", "scan", "--jobs", "0"]).is_err());
    }
}
