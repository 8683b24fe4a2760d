//! Live load: N concurrent two-party SRTP calls sent over loopback UDP to bot-host's media
//! plane (the same `MediaPlane` `bot-host serve` runs), in real time, as the simulator's
//! forwarder sends them: one UDP socket per call (its address in the call's SDP offer, built
//! by the simulator's `offer`), two speakers per call (SSRC = MSI), 20 ms Opus-framed
//! payloads, AES_CM_128_HMAC_SHA1_80.
//!
//! `cargo bench -p benches --bench live [-- N...]` (default 250 500 1000 1500 2000; each step
//! runs `LIVE_SECONDS`, default 8, of traffic after a 2 s warm-up). Per step it prints the
//! ingest drops by reason (queue full, unknown source/SSRC, packets the kernel dropped before
//! the readers, and media-core's undecryptable or malformed counts), the per-packet processing
//! time quantiles from the plane's own histogram (worker time from dequeue to the Ogg page,
//! warm-up excluded), how far the sender fell behind its schedule, and how long closing and
//! sealing every call took (segments, manifest, fsync; the mix too with `LIVE_MIX=1`), and the
//! CPU the plane's own threads (readers, workers, I/O) spent per packet, from /proc: with the
//! load generator on the same two cores, that is the figure that says how many calls a core
//! can record. Not a
//! criterion bench: one step is seconds of wall-clock traffic.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use bot_host::live::pipeline::{CallMedia, MediaConfig, MediaPlane};
use bot_host::live::sdp::parse_offer;
use bot_host::live::spool::Spool;
use bot_host::live::stats::{DropReason, PlaneStats};
use bot_host::simulate::scenario::Codec;
use media_core::srtp::{SrtpKeyMaterial, SrtpProfile, SrtpSession};

/// Sends are spread over this many slices of each 20 ms frame, as independent callers'
/// packets are, instead of one burst per frame.
const SLICES: usize = 10;

struct Call {
    socket: UdpSocket,
    srtp: SrtpSession,
    seq: [u16; 2],
}

fn raise_fd_limit() {
    // One socket per call: 2,000 calls need more than the usual soft limit of 1,024.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a stack value.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// CPU seconds used so far by this process's threads whose name starts with `media-` (the
/// plane's readers, workers, I/O and sealer threads), from /proc (Linux).
fn plane_cpu_seconds() -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0u64;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("media-") || comm.starts_with("media-sealer") {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is 3rd, utime 14th, stime 15th.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
            let st: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
            total += ut + st;
        }
    }
    total as f64 / tick
}

struct Step {
    calls: usize,
    sent: u64,
    received: u64,
    drops: Vec<(&'static str, u64)>,
    p50: Option<u64>,
    p99: Option<u64>,
    p999: Option<u64>,
    behind_ms: f64,
    seal_s: f64,
    warmup_drops: u64,
    cpu_us_per_packet: f64,
}

fn run(n: usize, seconds: u64) -> std::io::Result<Step> {
    // LIVE_SPOOL picks the file system (e.g. /dev/shm to take the disk out of the figures).
    let root = std::env::var_os("LIVE_SPOOL").map_or_else(std::env::temp_dir, Into::into);
    let dir = root.join(format!("live-bench-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Sealing mixes every call (a decode and an encode of the whole call) unless told not to;
    // the mix is measured by `--bench mix`, here it would only hide the ingest figures.
    let spool = Spool::new(&dir)?.with_mix(std::env::var_os("LIVE_MIX").is_some());
    let plane = MediaPlane::start(MediaConfig::new("127.0.0.1:0".parse().unwrap(), spool))?;
    let target = plane.local_addr();
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let mut key = [0u8; 30];
        for (j, b) in key.iter_mut().enumerate() {
            *b = (i * 31 + j * 7) as u8;
        }
        let sdp = bot_host::simulate::sdp::offer(socket.local_addr()?, Codec::Opus, &key, i as u64);
        let offer = parse_offer(&sdp).expect("the simulator's offer parses");
        plane
            .open_call(CallMedia {
                call_id: format!("load-{i}"),
                recording_id: format!("load-{n}-{i}"),
                offer,
                targeted: None,
                meta: serde_json::json!({}),
            })
            .expect("call opens");
        let material =
            SrtpKeyMaterial::new(SrtpProfile::AesCm128HmacSha1_80, &key[..16], &key[16..]).unwrap();
        calls.push(Call {
            socket,
            srtp: SrtpSession::new(material),
            seq: [i as u16, (i as u16).wrapping_mul(7)],
        });
    }
    let frames = (seconds + 2) * 50;
    let warmup_frames = 100;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut behind = Duration::ZERO;
    let mut warm: Option<PlaneStats> = None;
    let mut cpu_at_warm = 0.0;
    for frame in 0..frames {
        if frame == warmup_frames {
            warm = Some(plane.stats());
            cpu_at_warm = plane_cpu_seconds();
        }
        for slice in 0..SLICES {
            let due =
                start + Duration::from_micros(frame * 20_000 + (slice * 20_000 / SLICES) as u64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            } else {
                behind = behind.max(now - due);
            }
            for (i, call) in calls.iter_mut().enumerate().skip(slice).step_by(SLICES) {
                for s in 0..2 {
                    let ssrc = 0x10_0000 + (i as u32) * 2 + s as u32;
                    let seq = call.seq[s].wrapping_add(frame as u16);
                    let ts = (frame as u32).wrapping_mul(960).wrapping_add(ssrc);
                    let len = 60 + (frame as usize * 7 + i * 13 + s) % 41;
                    let mut p = benches::rtp_packet(ssrc, seq, ts, len);
                    call.srtp.protect_rtp(&mut p).unwrap();
                    if call.socket.send_to(&p, target).is_ok() {
                        sent += 1;
                    }
                }
            }
        }
    }
    // Let the queues drain.
    std::thread::sleep(Duration::from_millis(500));
    let s = plane.stats();
    let measured_packets = s.packets - warm.as_ref().map_or(0, |w| w.packets);
    let cpu_us_per_packet =
        (plane_cpu_seconds() - cpu_at_warm) * 1e6 / measured_packets.max(1) as f64;
    // Drops during the measured window, and during the warm-up (every call's tracks and files
    // are created within the first 20 ms frame, a burst no real host sees).
    let warm_drop = |r: DropReason| warm.as_ref().map_or(0, |w| w.dropped(r));
    let mut drops: Vec<(&'static str, u64)> = DropReason::ALL
        .iter()
        .map(|&r| (r.label(), s.dropped(r) - warm_drop(r)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let warmup_drops: u64 = DropReason::ALL.iter().map(|&r| warm_drop(r)).sum();
    let mut measured = s.clone();
    if let Some(w) = &warm {
        for (b, a) in measured.latency_buckets.iter_mut().zip(w.latency_buckets) {
            *b -= a;
        }
    }
    let t = Instant::now();
    drop(calls);
    let tickets: Vec<_> = (0..n)
        .map(|i| {
            plane
                .close_call(&format!("load-{n}-{i}"), serde_json::json!({}))
                .expect("call closes")
        })
        .collect();
    for ticket in tickets {
        ticket.wait().expect("recording seals");
    }
    let seal_s = t.elapsed().as_secs_f64();
    // media-core's own drops are counted as the recordings are sealed.
    for (name, v) in plane.stats().track_counters {
        if matches!(name, "undecryptable" | "malformed") && v > 0 {
            drops.push((name, v));
        }
    }
    plane.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Step {
        calls: n,
        sent,
        received: s.packets,
        drops,
        p50: measured.latency_quantile_us(0.50),
        p99: measured.latency_quantile_us(0.99),
        p999: measured.latency_quantile_us(0.999),
        behind_ms: behind.as_secs_f64() * 1e3,
        seal_s,
        warmup_drops,
        cpu_us_per_packet,
    })
}

fn main() {
    raise_fd_limit();
    let steps: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let steps = if steps.is_empty() {
        vec![250, 500, 1000, 1500, 2000]
    } else {
        steps
    };
    let seconds: u64 = std::env::var("LIVE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    println!(
        "live load, {seconds} s per step after 2 s warm-up; {} cores; quantiles are histogram bucket upper bounds",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    println!(
        "| calls | packets/s | sent | received | drops (measured) | drops (warm-up) | p50 | p99 | p99.9 | plane CPU per packet | sender late by | close + seal all |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let us = |v: Option<u64>| v.map_or("> max".to_string(), |v| format!("{v} us"));
    for n in steps {
        match run(n, seconds) {
            Ok(r) => {
                let mut d: Vec<String> = r.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
                if r.received < r.sent {
                    d.push(format!("lost before the readers {}", r.sent - r.received));
                }
                let drops = if d.is_empty() {
                    "0".into()
                } else {
                    d.join(", ")
                };
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} us | {:.1} ms | {:.1} s |",
                    r.calls,
                    r.calls * 100,
                    r.sent,
                    r.received,
                    drops,
                    r.warmup_drops,
                    us(r.p50),
                    us(r.p99),
                    us(r.p999),
                    r.cpu_us_per_packet,
                    r.behind_ms,
                    r.seal_s
                );
            }
            Err(e) => println!("| {n} | error: {e} |"),
        }
    }
}
