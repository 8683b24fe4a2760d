//! `recorder-daemon bench-store`: fills a store through the `Store` trait with synthetic
//! interactions (deterministic), then times representative searches. Figures go to
//! docs/store.md ("Load") and, with `--database-url`, docs/postgres.md.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{TimeZone, Utc};
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::model::{CallType, Direction, LegUpdate, MediaStatus};
use crate::rbac::Scope;
use crate::store::postgres::scratch::ScratchDb;
use crate::store::sqlite::SqliteStore;
use crate::store::{Actor, SearchQuery, Store, TOTAL_CAP};

const WORDS: &[&str] = &[
    "escalation",
    "complaint",
    "trade",
    "confirm",
    "price",
    "client",
    "review",
    "refund",
    "order",
    "limit",
    "urgent",
    "follow",
    "up",
    "compliance",
    "check",
];

/// Milliseconds between the starts of consecutive synthetic calls: a million calls in 30 days.
const CALL_EVERY_MS: u64 = 2_592;

/// The synthetic leg number `i`: 1000 users, PSTN numbers, a few call types; calls start in
/// the order they are posted, a million in 30 days, each posted up to two minutes after the
/// next one started (bots post as calls happen, out of order by the length of a setup). Runs
/// before 2026-11 drew every start at random in the 30 days, which no live system posts and
/// which made each index keyed by time (start, status, expiration) take a random page write.
/// `random_starts` draws each start at random in the 30 days instead (`--random-starts`, to
/// compare with those runs).
fn leg(i: u64, rng: &mut rand::rngs::StdRng, random_starts: bool) -> Result<LegUpdate> {
    let user = rng.gen_range(0..1000);
    let epoch = Utc
        .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let start = if random_starts {
        epoch + chrono::Duration::seconds(rng.gen_range(0..30 * 86_400))
    } else {
        epoch + chrono::Duration::milliseconds((i * CALL_EVERY_MS) as i64)
            - chrono::Duration::seconds(rng.gen_range(0..120))
    };
    let number = format!("44{:09}", rng.gen_range(0..1_000_000_000u64));
    let incoming = rng.gen_bool(0.5);
    let me = json!({"kind": "user", "id": format!("u-{user}"), "displayName": format!("User {user}"),
                    "upn": format!("user{user}@contoso.example")});
    let other = json!({"kind": "phone", "id": format!("+{number}"), "number": number,
                       "displayName": format!("Caller {}", rng.gen_range(0..100_000))});
    let (calling, called) = if incoming {
        (other, me.clone())
    } else {
        (me.clone(), other)
    };
    let call_types = [
        CallType::PstnP2p,
        CallType::InternalP2p,
        CallType::InternalMeeting,
    ];
    let statuses = [
        MediaStatus::Available,
        MediaStatus::Available,
        MediaStatus::Failed,
    ];
    let v = json!({
        "callId": format!("call-{i}"), "recordingId": format!("rec-{i}"), "botRole": "primary",
        "pairingKey": format!("chain:{i}/u-{user}"), "targets": [me],
        "callingParty": calling, "calledParty": called, "answeredBy": me,
        "startTime": start, "releaseTime": start + chrono::Duration::seconds(rng.gen_range(5..3600)),
        "direction": if incoming { Direction::Incoming } else { Direction::Outgoing },
        "callType": call_types[rng.gen_range(0..call_types.len())],
        "releaseCause": "Normal", "participants": [], "profile": "Traders", "retentionDays": 365,
        "storage": "local", "doubleRecordingType": "Essentials", "notification": "silent",
        "pairedRecorders": [], "mediaStatus": statuses[rng.gen_range(0..statuses.len())],
        "holdTimeMs": 0
    });
    Ok(serde_json::from_value(v)?)
}

/// Draws one search of a kind.
type MakeQuery<'a> = Box<dyn Fn(&mut rand::rngs::StdRng) -> SearchQuery + 'a>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The store a benchmark fills: a new SQLite file, or a scratch database on a PostgreSQL
/// server (dropped at the end).
enum BenchStore {
    Sqlite(std::path::PathBuf),
    Postgres(Box<ScratchDb>),
}

impl BenchStore {
    fn open(&self) -> Result<Arc<dyn Store>> {
        Ok(match self {
            BenchStore::Sqlite(db) => Arc::new(SqliteStore::open(db)?),
            BenchStore::Postgres(db) => Arc::new(db.store()?),
        })
    }

    /// As after a restart of the daemon: planner statistics gathered (SQLite gathers them on
    /// open; PostgreSQL's autovacuum would, later).
    fn reopen(&self, store: Arc<dyn Store>) -> Result<Arc<dyn Store>> {
        drop(store);
        if let BenchStore::Postgres(db) = self {
            let s = db.store()?;
            s.analyze()?;
            return Ok(Arc::new(s));
        }
        self.open()
    }
}

/// Posts `count` legs numbered from `first` from `posters` threads at once, each post on its
/// own (`upsert_leg`, as the HTTP handler calls it from the blocking pool): the rate of a busy
/// ingest, where the store may commit concurrent posts together.
fn post_concurrently(
    store: &Arc<dyn Store>,
    first: u64,
    count: u64,
    posters: u64,
    random_starts: bool,
) -> Result<()> {
    let per = count.div_ceil(posters.max(1));
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..posters.max(1))
            .map(|t| {
                let store = store.clone();
                sc.spawn(move || -> Result<()> {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(1_000 + t);
                    let from = first + t * per;
                    for i in from..(from + per).min(first + count) {
                        store.upsert_leg(&leg(i, &mut rng, random_starts)?)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("a poster panicked"))?)
    })
}

/// Inserts `n` interactions into a new store (under `dir`, or in a scratch database on the
/// PostgreSQL server of `database_url`): a tenth one post at a time, a tenth from `posters`
/// concurrent posters, the rest in batches of 1000; tags 1 in 10 `vip`, notes 1 in 20, then
/// runs each search `runs` times and prints the figures.
pub fn run(
    dir: &Path,
    n: u64,
    runs: usize,
    posters: u64,
    database_url: Option<&str>,
    append: bool,
    random_starts: bool,
) -> Result<()> {
    let target = match database_url {
        Some(url) => {
            let db = ScratchDb::create(url, "bench")?;
            println!("PostgreSQL, scratch database {}", db.name());
            BenchStore::Postgres(Box::new(db))
        }
        None => {
            std::fs::create_dir_all(dir)?;
            let db = dir.join("bench.db");
            if !append {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
                }
            }
            println!("SQLite, {}", db.display());
            BenchStore::Sqlite(db)
        }
    };
    let store = target.open()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let vip = match store.tags()?.into_iter().find(|t| t.name == "vip") {
        Some(t) => t.id,
        None => store.create_tag("vip", "")?.id,
    };
    // Calls already stored (`--append`): the new ones are numbered after them.
    let base = match &target {
        BenchStore::Sqlite(db) if append => {
            rusqlite::Connection::open(db)?
                .query_row("SELECT COUNT(*) FROM legs", [], |r| r.get::<_, i64>(0))?
                as u64
        }
        _ => 0,
    };
    if base > 0 {
        println!("appending to the {base} calls stored");
    }
    let author = Actor {
        oid: "bench".into(),
        upn: "bench@contoso.example".into(),
    };
    // One transaction per post (as bot-host posts them) for the first tenth, then batches of
    // 1000 per transaction (a bulk load); both rates are reported.
    let single = (n / 10).max(1).min(n);
    // The WAL's size after each phase: a checkpointing that cannot keep up shows here first.
    let wal = |phase: &str| {
        if let BenchStore::Sqlite(db) = &target {
            let len = std::fs::metadata(format!("{}-wal", db.display()))
                .map(|m| m.len())
                .unwrap_or(0);
            println!("  WAL after {phase}: {:.1} MB", len as f64 / 1e6);
        }
    };
    let t0 = Instant::now();
    for i in base..base + single {
        let l = leg(i, &mut rng, random_starts)?;
        store.upsert_leg(&l)?;
    }
    let d = t0.elapsed();
    println!(
        "inserted {single} interactions one transaction each in {:.1} s: {:.0} inserts/s",
        d.as_secs_f64(),
        single as f64 / d.as_secs_f64()
    );
    wal("single posts");
    let concurrent = (n / 10).min(n - single);
    let t0 = Instant::now();
    post_concurrently(&store, base + single, concurrent, posters, random_starts)?;
    let d = t0.elapsed();
    println!(
        "inserted {concurrent} interactions from {posters} concurrent posters, one post each, \
         in {:.1} s: {:.0} inserts/s",
        d.as_secs_f64(),
        concurrent as f64 / d.as_secs_f64()
    );
    wal("concurrent posts");
    let t0 = Instant::now();
    let mut i = base + single + concurrent;
    while i < base + n {
        let batch = (i..(i + 1000).min(base + n))
            .map(|k| leg(k, &mut rng, random_starts))
            .collect::<Result<Vec<_>>>()?;
        store.upsert_legs(&batch)?;
        i += batch.len() as u64;
    }
    let d = t0.elapsed();
    let batched = n - single - concurrent;
    println!(
        "inserted {batched} interactions in batches of 1000 in {:.1} s: {:.0} inserts/s",
        d.as_secs_f64(),
        batched as f64 / d.as_secs_f64()
    );
    wal("batches");
    let t1 = Instant::now();
    let (first_id, last_id) = (base as i64 + 1, (base + n) as i64);
    let ids: Vec<i64> = (first_id..=last_id).step_by(10).collect();
    for chunk in ids.chunks(1000) {
        store.set_tags(chunk, &[vip], &Scope::All)?;
    }
    for id in (first_id..=last_id).step_by(20) {
        let text = (0..6)
            .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ");
        store.add_note(id, &author, &text, &Scope::All)?;
    }
    println!("tags and notes in {:.1} s", t1.elapsed().as_secs_f64());
    let store = target.reopen(store)?;

    let base = SearchQuery {
        sort: "startTime".into(),
        descending: true,
        page: 1,
        page_size: 50,
        ..Default::default()
    };
    let searches: Vec<(&str, MakeQuery<'_>)> = vec![
        (
            "date range (7 days) + user + tag",
            Box::new(|r| {
                let day = r.gen_range(0..23);
                let from = Utc
                    .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
                    .single()
                    .unwrap_or_default()
                    + chrono::Duration::days(day);
                SearchQuery {
                    from: Some(from),
                    to: Some(from + chrono::Duration::days(7)),
                    users: vec![format!("user{}@contoso.example", r.gen_range(0..1000))],
                    tags: vec!["vip".into()],
                    ..base.clone()
                }
            }),
        ),
        (
            "calling party starts with (44123*)",
            Box::new(|r| SearchQuery {
                calling: Some(format!("44{:03}*", r.gen_range(0..1000))),
                ..base.clone()
            }),
        ),
        (
            "called party contains (5 digits)",
            Box::new(|r| SearchQuery {
                called: Some(format!("{:05}", r.gen_range(0..100_000))),
                ..base.clone()
            }),
        ),
        (
            "notes word",
            Box::new(|r| SearchQuery {
                notes: Some(WORDS[r.gen_range(0..WORDS.len())].into()),
                ..base.clone()
            }),
        ),
    ];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (name, make) in &searches {
        let mut times = Vec::with_capacity(runs);
        let mut total = 0;
        let mut capped = 0;
        for _ in 0..runs {
            let q = make(&mut rng);
            let t = Instant::now();
            let page = store.search(&q, &Scope::All)?;
            times.push(t.elapsed());
            total += page.total;
            capped += usize::from(page.total_is_lower_bound);
        }
        // The first run of a kind reads its index cold; said apart, so that one slow run is
        // told from a slow kind.
        let first = times.first().copied().unwrap_or_default();
        times.sort();
        println!(
            "{name}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, first {:.1} ms over {runs} runs \
             (mean total {}; {capped} of the runs counted only up to the cap, {TOTAL_CAP})",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(times.last().copied().unwrap_or_default()),
            ms(first),
            total / runs.max(1) as u64
        );
    }
    // A supervisor searching while the bots post: the first search kind again, while
    // `posters` threads post another twentieth of the calls.
    let during = (n / 20).max(1);
    let next = last_id as u64;
    let (name, make) = &searches[0];
    let mut times = Vec::new();
    let t0 = Instant::now();
    std::thread::scope(|sc| -> Result<()> {
        let ingest = sc.spawn(|| post_concurrently(&store, next, during, posters, random_starts));
        while !ingest.is_finished() {
            let q = make(&mut rng);
            let t = Instant::now();
            store.search(&q, &Scope::All)?;
            times.push(t.elapsed());
        }
        ingest
            .join()
            .map_err(|_| anyhow::anyhow!("the posters panicked"))?
    })?;
    let d = t0.elapsed();
    times.sort();
    println!(
        "{name}, while {posters} posters insert {during} more ({:.0} inserts/s): p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms over {} runs",
        during as f64 / d.as_secs_f64(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
        times.len()
    );
    Ok(())
}

/// `bench-upload`: `recordings` synthetic sealed recordings of `size` bytes each, uploaded in
/// one pass to a local storage under `dir` (verified, journaled, indexed, spool emptied: the
/// whole path, not only the copy). Prints recordings/s and MB/s.
pub fn upload(dir: &Path, recordings: usize, size: usize, concurrency: usize) -> Result<()> {
    use crate::upload::sealed::{write_sealed, SealedSpec};
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let spool = dir.join("spool");
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let mut payload = vec![0u8; size];
    let t = Instant::now();
    for i in 0..recordings {
        rng.fill(&mut payload[..]);
        write_sealed(
            &spool,
            &SealedSpec {
                id: &format!("bench-{i:06}"),
                storage: "local",
                double_recording_type: "Essentials",
                start_time: "2026-11-26T10:00:00Z",
                mixed: &payload,
                track: None,
                partial: false,
            },
        )?;
    }
    println!(
        "bench-upload: {recordings} recordings of {size} bytes written to the spool in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("store.db"))?);
    let mut storages = crate::storage::Storages::default();
    storages.insert(Arc::new(crate::storage::local::LocalStorage::open(
        "local",
        &dir.join("storage"),
        None,
    )?));
    let cfg = crate::config::UploadConfig {
        concurrency,
        ..Default::default()
    };
    let up = crate::upload::Uploader::new(crate::upload::UploaderParts {
        storages,
        paired: Default::default(),
        spools: vec![spool],
        keep_spool_copy: false,
        cfg,
        alarms: crate::alarms::Alarms::new(store.clone(), "bench", None),
        store,
        journal: crate::upload::journal::Journal::open(&dir.join("upload-journal.db"))?,
        health: Default::default(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let t = Instant::now();
    let report = rt.block_on(up.pass())?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.done == recordings,
        "only {} of {recordings} uploaded: {report:?}",
        report.done
    );
    println!(
        "bench-upload: {recordings} recordings in {secs:.2} s: {:.0} recordings/s, {:.1} MB/s \
         (concurrency {concurrency}; verify + MD5 + put + fsync + read-back + journal + store)",
        recordings as f64 / secs,
        (recordings * size) as f64 / secs / 1e6
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_small_run_completes() {
        let dir = tempfile::tempdir().unwrap();
        super::run(dir.path(), 200, 3, 4, None, false, false).unwrap();
        // Appended (numbered after the stored calls), starts drawn at random: each run stores
        // its 200 calls and the twentieth more posted while searching, none overwriting another.
        super::run(dir.path(), 200, 3, 4, None, true, true).unwrap();
        let legs: i64 = rusqlite::Connection::open(dir.path().join("bench.db"))
            .unwrap()
            .query_row("SELECT COUNT(*) FROM legs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(legs, 2 * 210);
    }

    #[test]
    fn a_small_upload_run_stores_every_recording() {
        let dir = tempfile::tempdir().unwrap();
        super::upload(dir.path(), 20, 1000, 4).unwrap();
        let day = dir.path().join("storage/2026/11/26");
        assert_eq!(std::fs::read_dir(day).unwrap().count(), 20);
        assert_eq!(
            std::fs::read_dir(dir.path().join("spool/sealed"))
                .unwrap()
                .count(),
            0
        );
    }
}
