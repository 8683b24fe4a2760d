//! `recorder-daemon`: the recorder's storage side. `serve` runs the HTTP metadata store
//! (docs/store.md); `token` mints a development bearer token; `audit verify` checks the audit
//! trail's hash chain; `verify` checks recording directories written by bot-host. The
//! uploader and the retention cycle (issue 6, the rest of issue 7) follow.

mod api;
mod audit;
mod auth;
mod bench;
mod bench_azure;
mod config;
mod media;
mod model;
mod rbac;
// Used by the uploader and retention cycle being built on it (issue 6).
#[allow(dead_code)]
mod storage;
mod store;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

#[derive(Parser)]
#[command(
    name = "recorder-daemon",
    version,
    about = "The recorder's storage side"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP metadata store.
    Serve {
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides the configuration).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Mint a bearer token signed with the development key.
    Token {
        /// The user's UPN.
        #[arg(long)]
        upn: String,
        /// Group object ids (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// App roles (repeatable), e.g. Interactions.Ingest for bot-host.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Object id (default: the directory's, else derived from the UPN).
        #[arg(long)]
        oid: Option<String>,
        /// Lifetime: 90, 90s, 15m, 8h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides the configuration).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Load benchmark of the store: insert N synthetic interactions, time searches.
    BenchStore {
        /// Directory of the benchmark database (recreated).
        #[arg(long, default_value = "./bench-data")]
        dir: PathBuf,
        /// Interactions to insert.
        #[arg(long, default_value_t = 100_000)]
        interactions: u64,
        /// Runs of each search.
        #[arg(long, default_value_t = 200)]
        runs: usize,
    },
    /// Upload benchmark of the Azure Blob backend (docs/azure.md).
    BenchAzure(bench_azure::BenchAzureArgs),
    /// Verify recording directories (meta.json + Ogg Opus tracks) as written by bot-host.
    Verify {
        /// Recording directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain and the anchor; fails on any edit or deletion.
    Verify {
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides the configuration).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    let r = match command {
        Command::Verify { dirs } => return verify_dirs(&dirs),
        Command::BenchStore {
            dir,
            interactions,
            runs,
        } => bench::run(&dir, interactions, runs),
        Command::BenchAzure(args) => bench_azure::run(args),
        Command::Serve { config, data_dir } => {
            Config::load(config.as_deref(), data_dir).and_then(serve)
        }
        Command::Token {
            upn,
            groups,
            roles,
            oid,
            ttl,
            config,
            data_dir,
        } => Config::load(config.as_deref(), data_dir)
            .and_then(|c| token(&c, &upn, groups, roles, oid, &ttl)),
        Command::Audit {
            command: AuditCommand::Verify { config, data_dir },
        } => Config::load(config.as_deref(), data_dir).and_then(|c| audit_verify(&c)),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recorder-daemon: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn verify_dirs(dirs: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    for dir in dirs {
        match verify::verify_recording(dir) {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("FAILED {}: {e:#}", dir.display());
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn open_store(cfg: &Config) -> Result<SqliteStore> {
    SqliteStore::open(&cfg.db_path())
        .with_context(|| format!("opening {}", cfg.db_path().display()))
}

fn token(
    cfg: &Config,
    upn: &str,
    groups: Vec<String>,
    roles: Vec<String>,
    oid: Option<String>,
    ttl: &str,
) -> Result<()> {
    let ttl = auth::parse_duration(ttl)?;
    let keys = auth::TokenKeys::hs256(&cfg.jwt_secret()?, &cfg.tenant_id);
    let oid = match oid {
        Some(o) => o,
        None => {
            // The directory's object id when the store knows the UPN.
            let known = if cfg.db_path().exists() {
                open_store(cfg)?
                    .users()?
                    .into_iter()
                    .find(|u| u.upn.eq_ignore_ascii_case(upn))
                    .map(|u| u.oid)
            } else {
                None
            };
            known.unwrap_or_else(|| auth::oid_for_upn(upn))
        }
    };
    let now = auth::now_secs();
    let claims = auth::Claims {
        oid,
        upn: upn.to_string(),
        tid: cfg.tenant_id.clone(),
        groups,
        roles,
        exp: now + ttl.as_secs(),
        iat: now,
    };
    println!("{}", keys.mint(&claims)?);
    Ok(())
}

fn audit_verify(cfg: &Config) -> Result<()> {
    let entries = open_store(cfg)?.audit_all()?;
    let anchor: Option<audit::Anchor> = match std::fs::read(cfg.audit_anchor()) {
        Ok(b) => Some(serde_json::from_slice(&b).context("parsing the audit anchor")?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("reading the audit anchor"),
    };
    match audit::verify_chain(&entries, anchor.as_ref()) {
        Ok(n) => {
            println!(
                "audit trail ok: {n} entries{}",
                if anchor.is_some() {
                    ", anchor matches"
                } else {
                    ", no anchor"
                }
            );
            Ok(())
        }
        Err(e) => anyhow::bail!("audit trail FAILED: {e}"),
    }
}

/// The state `serve` runs with.
fn state(cfg: &Config, public_url: String) -> Result<api::AppState> {
    let store: Arc<dyn Store> = Arc::new(open_store(cfg)?);
    let root = cfg.storage_root();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    Ok(api::AppState::new(
        store,
        auth::TokenKeys::hs256(&cfg.jwt_secret()?, &cfg.tenant_id),
        cfg.ingest_key.clone(),
        cfg.global_admins.clone(),
        root,
        Some(cfg.audit_anchor()),
        public_url,
        cfg.body_limit,
    ))
}

fn serve(cfg: Config) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let state = state(&cfg, cfg.public_url.clone().unwrap_or_else(|| url.clone()))?;
        println!("recorder-daemon serve: {url}");
        axum::serve(listener, api::app(state))
            .with_graceful_shutdown(shutdown())
            .await?;
        Ok(())
    })
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
