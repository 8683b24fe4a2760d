//! `recorder-daemon`: the recorder's storage side. `serve` runs the HTTP metadata store
//! (docs/store.md); `token` mints a development bearer token; `audit verify` checks the audit
//! trail's hash chain; `verify` checks recording directories written by bot-host; `upload
//! --once` empties the spools once (`serve` runs the uploader continuously); `retention
//! run-once` runs one retention cycle, which `serve` also runs on its schedule
//! (docs/retention.md); `merge --once` merges the stored legs of Pro calls once, which `serve`
//! also does continuously (docs/storage.md, "Merged recordings").

use recorder_daemon::{
    alarms, api, audit, auth, bench, bench_azure, merge, reconcile, retention, storage, upload,
    verify,
};

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use std::collections::BTreeMap;

use recorder_daemon::config::{Config, StorageKind};
use recorder_daemon::storage::local::LocalStorage;
use recorder_daemon::storage::Storages;
use recorder_daemon::store::Store;

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
        /// Concurrent posters (threads posting one leg at a time) for the second tenth.
        #[arg(long, default_value_t = 16)]
        posters: u64,
        /// A PostgreSQL server (`postgres://...`, a role that may create databases): the
        /// benchmark runs in a scratch database there, dropped at the end, instead of SQLite.
        #[arg(long)]
        database_url: Option<String>,
        /// Keep the SQLite database of an earlier run and add the new calls to those it holds:
        /// the rates at its size without filling it again (a million calls take minutes).
        #[arg(long, conflicts_with = "database_url")]
        append: bool,
        /// Draw each call's start at random in the 30 days (as runs before 2026-11 did)
        /// instead of in posting order.
        #[arg(long)]
        random_starts: bool,
    },
    /// Upload the sealed recordings of the configured spools (what `serve` does continuously).
    Upload {
        /// One pass, then exit (non-zero when recordings remain).
        #[arg(long)]
        once: bool,
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides the configuration).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Merge the stored legs of Pro calls (what `serve` does continuously).
    Merge {
        /// One round, then exit (non-zero when merges remain pending).
        #[arg(long)]
        once: bool,
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides the configuration).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The retention cycle.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Upload benchmark: N synthetic sealed recordings of BYTES each to a local storage.
    BenchUpload {
        /// Directory of the benchmark (recreated).
        #[arg(long, default_value = "./bench-upload")]
        dir: PathBuf,
        /// Recordings.
        #[arg(long, default_value_t = 1000)]
        recordings: usize,
        /// Size of each recording's mixed.ogg, bytes.
        #[arg(long, default_value_t = 1 << 20)]
        size: usize,
        /// Recordings uploaded at the same time.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Upload benchmark of the Azure Blob backend (docs/azure.md).
    BenchAzure(bench_azure::BenchAzureArgs),
    /// Copy what a configured storage holds (every object, or those under `--prefix`) into a
    /// local directory, key by key: to verify or inspect recordings kept in Azure.
    Fetch {
        /// The storage's friendly name (`[[storage]] name`).
        #[arg(long)]
        storage: String,
        /// Only the objects whose key starts with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Target directory (created; existing files are overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides the configuration).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
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

#[derive(Subcommand)]
enum RetentionCommand {
    /// Run one cycle now (or as of `--now`) and print its report as JSON.
    RunOnce {
        /// The cycle's notion of now (RFC 3339), e.g. to check what a date would delete.
        #[arg(long)]
        now: Option<String>,
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
        Command::Fetch {
            storage,
            prefix,
            out,
            config,
            data_dir,
        } => Config::load(config.as_deref(), data_dir)
            .and_then(|c| fetch_cmd(&c, &storage, &prefix, &out)),
        Command::BenchStore {
            dir,
            interactions,
            runs,
            posters,
            database_url,
            append,
            random_starts,
        } => bench::run(
            &dir,
            interactions,
            runs,
            posters,
            database_url.as_deref(),
            append,
            random_starts,
        ),
        Command::Upload {
            once,
            config,
            data_dir,
        } => Config::load(config.as_deref(), data_dir).and_then(|c| upload_cmd(c, once)),
        Command::Merge {
            once,
            config,
            data_dir,
        } => Config::load(config.as_deref(), data_dir).and_then(|c| merge_cmd(c, once)),
        Command::Retention {
            command:
                RetentionCommand::RunOnce {
                    now,
                    config,
                    data_dir,
                },
        } => Config::load(config.as_deref(), data_dir).and_then(|c| retention_run_once(c, now)),
        Command::BenchUpload {
            dir,
            recordings,
            size,
            concurrency,
        } => bench::upload(&dir, recordings, size, concurrency),
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

/// The configured store: PostgreSQL when `database_url` is set, else SQLite in the data
/// directory.
fn open_store(cfg: &Config) -> Result<Arc<dyn Store>> {
    recorder_daemon::store::open(cfg)
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
    let keys = auth::TokenKeys::from_config(cfg)?;
    let oid = match oid {
        Some(o) => o,
        None => {
            // The directory's object id when the store knows the UPN.
            let known = if cfg.database_url.is_some() || cfg.db_path().exists() {
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
    let store = open_store(cfg)?;
    println!(
        "{}",
        audit::verify_store(store.as_ref(), &cfg.audit_anchor())?
    );
    Ok(())
}

/// The configured storages, opened, and the storage -> paired storage map.
pub async fn open_storages(cfg: &Config) -> Result<(Storages, BTreeMap<String, String>)> {
    let mut storages = Storages::default();
    let mut paired = BTreeMap::new();
    for s in cfg.storages()? {
        let opened: Arc<dyn storage::Storage> = match s.kind {
            StorageKind::Local => {
                let path = s.path.clone().unwrap_or_else(|| cfg.storage_root());
                Arc::new(
                    LocalStorage::open(&s.name, &path, s.max_bytes)
                        .with_context(|| format!("storage {}: {}", s.name, path.display()))?,
                )
            }
            StorageKind::Azure => {
                let a = s.azure.as_ref().with_context(|| {
                    format!(
                        "storage {}: kind = \"azure\" needs a [storage.azure] table",
                        s.name
                    )
                })?;
                Arc::new(
                    storage::azure::AzureStorage::open(&s.name, a)
                        .await
                        .with_context(|| format!("storage {}", s.name))?,
                )
            }
        };
        storages.insert(opened);
        if let Some(p) = s.paired {
            paired.insert(s.name.clone(), p);
        }
    }
    Ok((storages, paired))
}

/// The uploader over the configuration's spools and storages.
fn uploader(
    cfg: &Config,
    store: Arc<dyn Store>,
    storages: Storages,
    paired: BTreeMap<String, String>,
    health: Arc<upload::HealthBoard>,
) -> Result<Arc<upload::Uploader>> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let journal = upload::journal::Journal::open(&cfg.journal_path())
        .with_context(|| format!("opening {}", cfg.journal_path().display()))?;
    Ok(upload::Uploader::new(upload::UploaderParts {
        storages,
        paired,
        spools: cfg.spool_dirs.clone(),
        keep_spool_copy: cfg.keep_spool_copy,
        cfg: cfg.upload.clone(),
        alarms: alarms::Alarms::new(store.clone(), &cfg.tenant_id, cfg.alarm_webhook.clone()),
        store,
        journal,
        health,
    }))
}

fn upload_cmd(cfg: Config, once: bool) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store: Arc<dyn Store> = open_store(&cfg)?;
        let (storages, paired) = open_storages(&cfg).await?;
        let up = uploader(&cfg, store, storages, paired, Default::default())?;
        if !once {
            tokio::select! { _ = up.run() => {}, _ = shutdown() => {} }
            return Ok(());
        }
        up.recover().await?;
        let r = up.pass().await?;
        println!(
            "uploaded {}, waiting {}, rejected {}, held {}",
            r.done, r.waiting, r.rejected, r.held
        );
        anyhow::ensure!(
            r.waiting == 0 && r.held == 0,
            "recordings remain in the spool"
        );
        Ok(())
    })
}

fn merger(cfg: &Config, store: Arc<dyn Store>, storages: Storages) -> Arc<merge::Merger> {
    Arc::new(merge::Merger::new(
        store,
        storages,
        cfg.data_dir.join("merge-scratch"),
    ))
}

/// A storage key as a path under the target directory: a key is storage data (a blob name
/// can be `../x` or `/etc/x`), so only plain relative names are taken.
fn plain_relative(key: &str) -> Result<&std::path::Path> {
    let rel = std::path::Path::new(key);
    anyhow::ensure!(
        !key.is_empty()
            && rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
        "key {key:?}: not a plain relative path"
    );
    Ok(rel)
}

fn fetch_cmd(cfg: &Config, name: &str, prefix: &str, out: &std::path::Path) -> Result<()> {
    use futures_util::TryStreamExt;
    use std::io::Write;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (storages, _) = open_storages(cfg).await?;
        let s = storages
            .get(name)
            .with_context(|| format!("no storage named {name:?} in the configuration"))?;
        let objects = s
            .list(prefix)
            .await
            .with_context(|| format!("listing {name}"))?;
        let mut bytes = 0u64;
        for o in &objects {
            let dst = out.join(plain_relative(&o.key)?);
            if let Some(d) = dst.parent() {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            }
            let mut f = std::fs::File::create(&dst)
                .with_context(|| format!("creating {}", dst.display()))?;
            let mut stream = s.get(&o.key, None).await.with_context(|| o.key.clone())?;
            let mut n = 0u64;
            while let Some(chunk) = stream.try_next().await.with_context(|| o.key.clone())? {
                f.write_all(&chunk)?;
                n += chunk.len() as u64;
            }
            anyhow::ensure!(n == o.size, "{}: got {n} bytes, listed {}", o.key, o.size);
            bytes += n;
        }
        println!(
            "fetched {} objects, {bytes} bytes from {name} into {}",
            objects.len(),
            out.display()
        );
        Ok(())
    })
}

fn merge_cmd(cfg: Config, once: bool) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store: Arc<dyn Store> = open_store(&cfg)?;
        let (storages, _) = open_storages(&cfg).await?;
        let m = merger(&cfg, store, storages);
        if !once {
            tokio::select! { _ = m.spawn(merge::MERGE_INTERVAL) => {}, _ = shutdown() => {} }
            return Ok(());
        }
        let r = m.round().await?;
        println!("{}", serde_json::to_string(&r)?);
        anyhow::ensure!(r.waiting == 0, "merges remain pending");
        Ok(())
    })
}

fn retention_run_once(cfg: Config, now: Option<String>) -> Result<()> {
    let now = match now {
        Some(n) => chrono::DateTime::parse_from_rfc3339(&n)
            .with_context(|| format!("--now {n:?} is not RFC 3339"))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    cfg.retention
        .schedule()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let store: Arc<dyn Store> = open_store(&cfg)?;
        let (storages, _) = open_storages(&cfg).await?;
        let r =
            retention::Retention::new(store, storages, Some(cfg.audit_anchor()), &cfg.retention);
        anyhow::Ok(r.run_cycle(now).await?)
    })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The state `serve` runs with.
fn state(
    cfg: &Config,
    public_url: String,
    store: Arc<dyn Store>,
    storages: Storages,
    health: Arc<upload::HealthBoard>,
) -> Result<api::AppState> {
    let root = cfg.storage_root();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let retention = Arc::new(retention::Retention::new(
        store.clone(),
        storages.clone(),
        Some(cfg.audit_anchor()),
        &cfg.retention,
    ));
    Ok(api::AppState::new(
        store,
        auth::TokenKeys::from_config(cfg)?,
        cfg.ingest_key.clone(),
        cfg.global_admins.clone(),
        root,
        Some(cfg.audit_anchor()),
        public_url,
        cfg.body_limit,
    )
    .with_storages(storages, health)
    .with_retention(retention))
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
        let schedule = cfg
            .retention
            .schedule()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let store: Arc<dyn Store> = open_store(&cfg)?;
        let (storages, paired) = open_storages(&cfg).await?;
        let health = Arc::new(upload::HealthBoard::default());
        let up = uploader(
            &cfg,
            store.clone(),
            storages.clone(),
            paired,
            health.clone(),
        )?;
        let merging = merger(&cfg, store.clone(), storages.clone()).spawn(merge::MERGE_INTERVAL);
        let state = state(
            &cfg,
            cfg.public_url.clone().unwrap_or_else(|| url.clone()),
            store,
            storages,
            health,
        )?;
        // The uploader runs beside the API; a crash anywhere in it is the journal's business,
        // so stopping the daemon simply drops it.
        let uploading = tokio::spawn(up.run());
        if !cfg.reconcile.bot_hosts.is_empty() {
            let alarms = alarms::Alarms::new(
                state.store.clone(),
                &cfg.tenant_id,
                cfg.alarm_webhook.clone(),
            );
            let r = reconcile::Reconciler::new(state.store.clone(), alarms, cfg.reconcile.clone());
            tokio::spawn(std::sync::Arc::new(r).run());
        }
        if let Some(r) = state.retention.clone() {
            r.spawn(schedule);
        }
        println!("recorder-daemon serve: {url}");
        axum::serve(listener, api::app(state))
            .with_graceful_shutdown(shutdown())
            .await?;
        uploading.abort();
        merging.abort();
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

#[cfg(test)]
mod tests {
    #[test]
    fn fetch_takes_only_keys_that_stay_under_the_target() {
        for good in ["a.ogg", "2026/03/01/r-1/audio.ogg", "x/./y"] {
            assert!(super::plain_relative(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/../../x", "/etc/passwd", "a/..", ".."] {
            assert!(super::plain_relative(bad).is_err(), "{bad}");
        }
    }
}
