//! The `bot-host` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use bot_host::pair::{replay_pair, PairOptions};
use bot_host::replay::{replay, KeySpec, ReplayOptions, ReplaySummary};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bot-host", version, about = "The compliance recording bot")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
