use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Writes CACHE_DIR/db/trivy.db and CACHE_DIR/db/metadata.json from a TOML
/// advisory fixture, for `trivy --cache-dir CACHE_DIR --skip-db-update`.
#[derive(Debug, Parser)]
#[command(name = "trivy-db-gen", version)]
struct Cli {
    /// TOML fixture with [[advisory]] tables.
    #[arg(long, value_name = "FILE.toml")]
    advisories: PathBuf,
    /// Trivy cache directory; the DB goes to CACHE_DIR/db/.
    #[arg(long, value_name = "CACHE_DIR")]
    out: PathBuf,
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let now = trivy_db_gen::now_or_source_date_epoch()?;
    let s = trivy_db_gen::generate(&cli.advisories, &cli.out, now)?;
    eprintln!(
        "trivy-db-gen: wrote {} advisories ({} vulnerability ids; buckets: {}) to {} and {}",
        s.advisories,
        s.vulnerabilities,
        if s.distros.is_empty() {
            "none".to_string()
        } else {
            s.distros.join(", ")
        },
        s.db_path.display(),
        s.metadata_path.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trivy-db-gen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
