//! The `bot-host` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use bot_host::pair::{replay_pair, PairOptions};
use bot_host::replay::{replay, KeySpec, ReplayOptions, ReplaySummary};
use bot_host::simulate::{self, Pacing, SimulateOptions};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bot-host", version, about = "The compliance recording bot")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The live compliance bot: the notification webhook, recording profiles, RTP/SRTP media
    /// on UDP, WebRTC through WHIP, the spool, /metrics. Runs until Ctrl-C or SIGTERM, then
    /// seals every active recording. SIGHUP reloads the recording profiles.
    Serve {
        /// TOML config file (see docs/live.md); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (spool, outbox, profiles.toml). Default ./data.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// HTTP address (default 127.0.0.1:0, printed).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// UDP media address (default 127.0.0.1:0, printed).
        #[arg(long)]
        media_listen: Option<std::net::SocketAddr>,
        /// Recording profiles file (TOML or JSON).
        #[arg(long)]
        profiles: Option<PathBuf>,
        /// primary or paired.
        #[arg(long)]
        role: Option<String>,
        /// The metadata store's interactions URL.
        #[arg(long)]
        store_url: Option<String>,
    },
    /// Record a captured call (pcap/pcapng of RTP or SRTP over UDP): one Ogg Opus file per
    /// participant (= UDP flow) and a meta.json, written into --out.
    Replay {
        /// The capture file.
        capture: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// SRTP key as in an SDP a=crypto line: [PORT=]SUITE:BASE64 (PORT: only the flow to
        /// that UDP port). Suites: AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32,
        /// AEAD_AES_128_GCM. Repeatable.
        #[arg(long = "srtp-key", value_name = "[PORT=]SUITE:BASE64")]
        srtp_keys: Vec<KeySpec>,
        /// Call id written into the files' tags and meta.json (default: capture file stem).
        #[arg(long)]
        call_id: Option<String>,
        /// The paired bot's capture of the same call ("Pro" double recording): writes
        /// <out>/primary/, <out>/paired/ and <out>/merged/.
        #[arg(long, value_name = "CAPTURE")]
        paired: Option<PathBuf>,
        /// The targeted user's participant name (e.g. participant-1): mixed.ogg becomes
        /// stereo, that participant left and everyone else right.
        #[arg(long, value_name = "PARTICIPANT")]
        targeted: Option<String>,
        /// SRTP key of the paired capture, as --srtp-key (default: the same keys).
        #[arg(long = "paired-srtp-key", value_name = "[PORT=]SUITE:BASE64")]
        paired_srtp_keys: Vec<KeySpec>,
    },
    /// Play the Teams platform's side of calls against a running bot-host: post the call
    /// notifications, send each speaker's SRTP media, enforce the 5 s answer deadline, wait
    /// until the recordings are sealed and check them against bot-host/sim-profiles.toml.
    /// Exits 1 if any call was not recorded as its profile says.
    Simulate {
        /// The bot-host's base URL (e.g. http://127.0.0.1:8080).
        #[arg(long, required_unless_present = "list")]
        to: Option<String>,
        /// Number of calls (default: one per selected scenario); calls cycle through the
        /// scenarios.
        #[arg(long)]
        calls: Option<usize>,
        /// Calls in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Notifications and media at their real times (the default).
        #[arg(long, conflicts_with = "fast")]
        realtime: bool,
        /// As fast as the host takes it: virtual time, media bounded by --fast-rate.
        #[arg(long)]
        fast: bool,
        /// With --fast: media packets per second, all calls together (UDP has no
        /// back-pressure, so this is the bound that keeps the bot's queues from overrunning).
        #[arg(long, default_value_t = 50_000)]
        fast_rate: u64,
        /// Also play every call to a paired bot-host ("Pro" double recording): same call
        /// ids, the paired role, independent impairments. Needs --paired-to.
        #[arg(long, requires = "paired_to")]
        paired: bool,
        /// The paired bot-host's base URL (implies --paired).
        #[arg(long)]
        paired_to: Option<String>,
        /// Scenario to play (repeatable; default: all). See --list.
        #[arg(long = "scenario", value_name = "NAME")]
        scenarios: Vec<String>,
        /// Seed of impairments and RTP bases.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Loss percentage for every stream, overriding the scenarios'.
        #[arg(long, value_name = "PCT")]
        loss: Option<f64>,
        /// Seconds to wait for a recording to be sealed after its call.
        #[arg(long, default_value_t = 60)]
        seal_timeout: u64,
        /// Directory of speech.A.wav and speech.B.wav (default: fixtures/calls).
        #[arg(long)]
        speech_dir: Option<PathBuf>,
        /// The recording profiles the bots run with (default bot-host/sim-profiles.toml): with
        /// a paired bot, only "Pro" profiles' calls are expected on both legs.
        #[arg(long)]
        profiles: Option<PathBuf>,
        /// List the scenarios and exit.
        #[arg(long)]
        list: bool,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    match Cli::parse().command {
        Command::Serve {
            config,
            data_dir,
            listen,
            media_listen,
            profiles,
            role,
            store_url,
        } => {
            // Structured logs: key=value text by default, one JSON object per line with
            // BOT_HOST_LOG_FORMAT=json (for log shippers); RUST_LOG filters as usual. Logs go to
            // stderr; stdout carries only the start-up line with the addresses.
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".into());
            if std::env::var("BOT_HOST_LOG_FORMAT").is_ok_and(|v| v == "json") {
                tracing_subscriber::fmt()
                    .json()
                    .with_env_filter(filter)
                    .with_writer(std::io::stderr)
                    .init();
            } else {
                tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .with_writer(std::io::stderr)
                    .init();
            }
            let mut cfg = match config {
                Some(p) => bot_host::host::HostConfig::load(&p)?,
                None => bot_host::host::HostConfig::default(),
            };
            if let Some(v) = data_dir {
                cfg.data_dir = v;
            }
            if let Some(v) = listen {
                cfg.listen = v;
            }
            if let Some(v) = media_listen {
                cfg.media_listen = v;
            }
            if let Some(v) = profiles {
                cfg.profiles = Some(v);
            }
            if let Some(v) = role {
                cfg.role = v;
            }
            if let Some(v) = store_url {
                cfg.store_url = Some(v);
            }
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(bot_host::host::serve(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            to,
            calls,
            concurrency,
            realtime: _,
            fast,
            fast_rate,
            paired: _,
            paired_to,
            scenarios,
            seed,
            loss,
            seal_timeout,
            speech_dir,
            profiles,
            list,
        } => {
            if list {
                for s in simulate::scenario::catalogue() {
                    println!(
                        "{:<24} {:?} {} leg(s)  {}",
                        s.name,
                        s.codec,
                        s.legs.len(),
                        s.about
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut opts = SimulateOptions::new(to.unwrap_or_default());
            opts.paired_to = paired_to;
            opts.calls = calls;
            opts.concurrency = concurrency;
            opts.pacing = if fast { Pacing::Fast } else { Pacing::Realtime };
            opts.fast_rate = fast_rate.max(1);
            opts.scenarios = scenarios;
            opts.seed = seed;
            opts.loss_pct = loss;
            opts.seal_timeout = std::time::Duration::from_secs(seal_timeout);
            if let Some(d) = speech_dir {
                opts.speech_dir = d;
            }
            if let Some(p) = profiles {
                opts.profiles = p;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(simulate::simulate(opts))?;
            println!("{report}");
            Ok(if report.failures() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Replay {
            capture,
            out,
            srtp_keys,
            call_id,
            paired: Some(paired),
            paired_srtp_keys,
            targeted,
        } => {
            let summary = replay_pair(&PairOptions {
                primary: capture,
                paired,
                out: out.clone(),
                keys: srtp_keys,
                paired_keys: paired_srtp_keys,
                call_id,
                targeted,
            })?;
            for (leg, s) in [("primary", &summary.primary), ("paired", &summary.paired)] {
                println!("{leg}:");
                print_tracks(s, &out.join(leg));
            }
            for m in &summary.merged {
                let s = &m.stats;
                println!(
                    "merged {:<16} with {:<16} frames: {} primary + {} paired, {} lost by both; paired clock {:+.1} ms, {:+.1} ppm",
                    m.participant,
                    m.paired_with.as_deref().unwrap_or("(nobody)"),
                    s.frames_primary,
                    s.frames_paired,
                    s.frames_lost_both,
                    s.offset_ms,
                    s.drift_ppm
                );
            }
            let problems: Vec<&String> = summary
                .problems
                .iter()
                .chain(&summary.primary.problems)
                .chain(&summary.paired.problems)
                .collect();
            for p in &problems {
                eprintln!("error: {p}");
            }
            if summary.merged.is_empty() {
                eprintln!(
                    "error: nothing merged; {}/merged/ not written",
                    out.display()
                );
                return Ok(ExitCode::from(2));
            }
            println!("merged recording: {}", out.join("merged").display());
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Replay {
            capture,
            out,
            srtp_keys,
            call_id,
            paired: None,
            targeted,
            ..
        } => {
            let summary = replay(&ReplayOptions {
                capture,
                out: out.clone(),
                keys: srtp_keys,
                call_id,
                targeted,
            })?;
            print_tracks(&summary, &out);
            println!("metadata: {}", summary.meta_path.display());
            if summary.capture.truncated {
                eprintln!("warning: the capture ends in the middle of a record (truncated)");
            }
            for p in &summary.problems {
                eprintln!("error: {p}");
            }
            Ok(if summary.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

/// One line per participant track of a recording.
fn print_tracks(summary: &ReplaySummary, out: &std::path::Path) {
    for t in &summary.tracks {
        let s = &t.stats;
        println!(
            "{:<16} {:>21} -> {:<21} {:>9.2} s  recv {:>6} lost {:>4} dup {:>3} late {:>3} undecryptable {:>5}  {}",
            t.participant,
            t.flow.src.to_string(),
            t.flow.dst.to_string(),
            s.samples.saturating_sub(media_core::recording::PRE_SKIP as u64) as f64 / 48_000.0,
            s.received,
            s.lost,
            s.duplicated,
            s.late,
            s.undecryptable,
            t.file
        .as_ref()
        .map(|f| out.join(f).display().to_string())
        .unwrap_or_else(|| "(no audio)".into()),
        );
    }
}
