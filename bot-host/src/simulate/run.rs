//! The driver: plays scenarios against one bot-host (or a primary/paired pair) the way the
//! platform does, and checks the outcome of every leg against its expectation.
//!
//! Per leg and recorder: bind a UDP socket, offer it with a fresh SDES key, post the
//! invitation and time the answer against the 5-second deadline, then walk the leg's
//! timeline (notifications and 20 ms media frames, merged in time order), and finally poll
//! `GET /api/calls/{id}` until the recording is settled.
//!
//! Pacing. `Realtime` sleeps until each item's due time. `Fast` runs the same timeline on a
//! virtual clock with no sleeps, except that media is bounded by one packet rate for the whole
//! run ([`SimulateOptions::fast_rate`], packets per second over all calls, with bursts of at
//! most [`FAST_BURST`] of headroom): UDP gives no back-pressure, so "as fast as the host takes
//! it" has to be a bound the operator sets rather than something the simulator can sense, and
//! a per-call window would still multiply by the number of calls and overrun the bot's
//! ingest queues (and the kernel's socket buffer) the moment many calls run at once. Before a
//! leg's end is posted the fast driver waits [`FAST_DRAIN`], because the end travels over HTTP
//! and could otherwise overtake packets still in the bot's socket buffer.

use std::fmt;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rand::RngCore;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::media::{MediaSource, MediaStats, SpeechLibrary, FRAME_MS};
use super::notify::{self, LegIds, NoteKind, Recipient, Role};
use super::scenario::{self, Leg, Scenario};
use super::sdp::{self, AnswerDirection};

/// The platform's answer deadline.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(5);
/// Fast mode: how far the global packet budget may run ahead after an idle spell.
pub const FAST_BURST: Duration = Duration::from_millis(2);
/// Fast mode: pause before posting a leg's end, so media in flight arrives first.
pub const FAST_DRAIN: Duration = Duration::from_millis(50);

/// Real time or as fast as the host takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Notifications and frames at their real times.
    Realtime,
    /// Virtual time, media in bounded windows (see the module documentation).
    Fast,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// The (primary) bot-host's base URL, e.g. `http://127.0.0.1:8080`.
    pub to: String,
    /// The paired bot-host's base URL: every leg is also played to it.
    pub paired_to: Option<String>,
    /// Number of calls; `None` = one per selected scenario.
    pub calls: Option<usize>,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Pacing.
    pub pacing: Pacing,
    /// Scenario names (empty = the whole catalogue); calls cycle through them.
    pub scenarios: Vec<String>,
    /// Seed of the impairments and RTP bases (call ids and keys are always fresh).
    pub seed: u64,
    /// The answer deadline (the platform's is [`ANSWER_DEADLINE`]).
    pub answer_deadline: Duration,
    /// How long to wait for a call's recording to settle after its timeline.
    pub seal_timeout: Duration,
    /// Overrides every scenario's loss percentage.
    pub loss_pct: Option<f64>,
    /// Fast mode: packets per second, all calls together.
    pub fast_rate: u64,
    /// Directory of `speech.A.wav` / `speech.B.wav`.
    pub speech_dir: PathBuf,
    /// The recording profiles the bots run with: a paired bot records only calls of "Pro"
    /// (`double_recording`) profiles, so the paired legs' expectations follow them.
    pub profiles: PathBuf,
}

impl SimulateOptions {
    /// Defaults: one call per scenario, 8 at once, real time, the platform's deadline, 60 s
    /// to seal, fixtures from `fixtures/calls` (or the source tree's).
    pub fn new(to: impl Into<String>) -> Self {
        SimulateOptions {
            to: to.into(),
            paired_to: None,
            calls: None,
            concurrency: 8,
            pacing: Pacing::Realtime,
            scenarios: Vec::new(),
            seed: 1,
            answer_deadline: ANSWER_DEADLINE,
            seal_timeout: Duration::from_secs(60),
            loss_pct: None,
            fast_rate: 50_000,
            speech_dir: default_speech_dir(),
            profiles: default_speech_dir().join("../../bot-host/sim-profiles.toml"),
        }
    }
}

/// `fixtures/calls` under the working directory if it is there, else the source tree's.
pub fn default_speech_dir() -> PathBuf {
    let local = PathBuf::from("fixtures/calls");
    if local.join("speech.A.wav").exists() {
        local
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/calls"))
    }
}

/// `GET /api/info`.
#[derive(Debug, Clone, Deserialize)]
pub struct BotInfo {
    /// `primary` or `paired`.
    pub role: String,
    /// The media address.
    pub media: String,
    /// The HTTP address.
    #[serde(default)]
    pub http: String,
}

/// The outcome of one leg at one recorder.
#[derive(Debug, Clone)]
pub struct LegReport {
    /// Call number in this run (0-based).
    pub call: usize,
    /// Scenario name.
    pub scenario: &'static str,
    /// Leg index within the scenario.
    pub leg: usize,
    /// The recorder.
    pub role: Role,
    /// Graph call id.
    pub call_id: String,
    /// Whether the profiles say it is recorded.
    pub expected: bool,
    /// Why.
    pub expect_reason: String,
    /// Whether it was recorded (`recording: sealed`).
    pub recorded: bool,
    /// What the bot said or did, in words.
    pub observed: String,
    /// Time from posting the invitation to the answer.
    pub answer_latency: Option<Duration>,
    /// The answer missed the deadline (the platform fails the call with 408/1106).
    pub deadline_missed: bool,
    /// Media counters.
    pub media: MediaStats,
    /// Where the bot sealed the recording.
    pub sealed_path: Option<String>,
    /// Problems along the way (failed posts, bad answers, ...).
    pub errors: Vec<String>,
}

impl LegReport {
    /// Whether the leg went as the profiles say.
    pub fn ok(&self) -> bool {
        !self.deadline_missed && self.errors.is_empty() && self.recorded == self.expected
    }
}

/// The run's result.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// The seed used.
    pub seed: u64,
    /// `/api/info` of the primary and (if any) the paired bot.
    pub bots: Vec<(Role, BotInfo)>,
    /// One row per leg and recorder, in call order.
    pub legs: Vec<LegReport>,
    /// Warnings that do not fail a leg (e.g. a role mismatch in `/api/info`).
    pub warnings: Vec<String>,
}

impl SimReport {
    /// Legs that did not go as their profile says.
    pub fn failures(&self) -> usize {
        self.legs.iter().filter(|l| !l.ok()).count()
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>4} {:<22} {:>3} {:<7} {:<36} {:<8} {:<28} {:>8} {:>7} {:>5}  result",
            "call",
            "scenario",
            "leg",
            "bot",
            "call id",
            "expect",
            "observed",
            "answer",
            "packets",
            "lost"
        )?;
        for l in &self.legs {
            let answer = l
                .answer_latency
                .map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "-".into());
            writeln!(
                f,
                "{:>4} {:<22} {:>3} {:<7} {:<36} {:<8} {:<28} {:>8} {:>7} {:>5}  {}",
                l.call,
                l.scenario,
                l.leg,
                l.role.as_str(),
                l.call_id,
                if l.expected { "record" } else { "skip" },
                l.observed,
                answer,
                l.media.sent,
                l.media.lost + l.media.outage_dropped,
                if l.ok() { "ok" } else { "FAIL" }
            )?;
            if !l.ok() {
                writeln!(f, "       expected: {}", l.expect_reason)?;
            }
            for e in &l.errors {
                writeln!(f, "       error: {e}")?;
            }
            if let Some(p) = &l.sealed_path {
                writeln!(f, "       sealed: {p}")?;
            }
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        let failed = self.failures();
        write!(
            f,
            "{} legs, {} ok, {} failed (seed {})",
            self.legs.len(),
            self.legs.len() - failed,
            failed,
            self.seed
        )
    }
}

struct Bot {
    role: Role,
    base: String,
    /// Our address towards its media port.
    local_ip: IpAddr,
}

/// A lock-free global rate limit: each packet takes the next slot of `1/rate` on a shared
/// virtual clock, which may lag real time by at most [`FAST_BURST`].
struct Pacer {
    start: Instant,
    /// Next free slot, ns since `start`.
    next_ns: std::sync::atomic::AtomicU64,
    interval_ns: u64,
}

impl Pacer {
    fn new(rate: u64) -> Self {
        Pacer {
            start: Instant::now(),
            next_ns: std::sync::atomic::AtomicU64::new(0),
            interval_ns: 1_000_000_000 / rate.max(1),
        }
    }

    async fn wait(&self) {
        use std::sync::atomic::Ordering;
        let now = self.start.elapsed().as_nanos() as u64;
        let floor = now.saturating_sub(FAST_BURST.as_nanos() as u64);
        let slot = match self
            .next_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.max(floor) + self.interval_ns)
            }) {
            Ok(prev) | Err(prev) => prev.max(floor),
        };
        if slot > now {
            tokio::time::sleep_until(self.start + Duration::from_nanos(slot)).await;
        }
    }
}

struct Ctx {
    opts: SimulateOptions,
    pacer: Pacer,
    http: reqwest::Client,
    library: SpeechLibrary,
    bots: Vec<Bot>,
    profiles: Option<crate::signaling::Profiles>,
}

/// Runs the simulation. Returns the report whether or not the legs went as expected (see
/// [`SimReport::failures`]); errors are for a run that could not happen at all (a bot-host
/// that does not answer `/api/info`, unreadable fixtures, an unknown scenario).
pub async fn simulate(opts: SimulateOptions) -> anyhow::Result<SimReport> {
    let scenarios = scenario::select(&opts.scenarios).map_err(|e| anyhow!(e))?;
    if opts.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let mut codecs: Vec<_> = scenarios.iter().map(|s| s.codec).collect();
    codecs.dedup();
    let library = SpeechLibrary::load(&opts.speech_dir, &codecs)
        .with_context(|| format!("loading speech from {}", opts.speech_dir.display()))?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("building the HTTP client")?;

    let mut bots = Vec::new();
    let mut infos = Vec::new();
    let mut warnings = Vec::new();
    let targets = std::iter::once((Role::Primary, opts.to.clone()))
        .chain(opts.paired_to.clone().map(|p| (Role::Paired, p)));
    for (role, base) in targets {
        let base = base.trim_end_matches('/').to_string();
        let info: BotInfo = http
            .get(format!("{base}/api/info"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("GET {base}/api/info"))?
            .json()
            .await
            .with_context(|| format!("GET {base}/api/info: not the JSON docs/live.md describes"))?;
        if info.role != role.as_str() {
            warnings.push(format!(
                "{base} says its role is {:?}; it is played as the {} bot",
                info.role,
                role.as_str()
            ));
        }
        let media: SocketAddr = info
            .media
            .parse()
            .with_context(|| format!("{base}/api/info: bad media address {:?}", info.media))?;
        bots.push(Bot {
            role,
            base,
            local_ip: local_ip_towards(media)?,
        });
        infos.push((role, info));
    }

    let calls = opts.calls.unwrap_or(scenarios.len());
    // Only needed to know which profiles are "Pro" when a paired bot is played.
    let profiles = if opts.paired_to.is_some() {
        Some(
            crate::signaling::Profiles::load(&opts.profiles).with_context(|| {
                format!(
                    "cannot read the profiles {} (--profiles)",
                    opts.profiles.display()
                )
            })?,
        )
    } else {
        None
    };
    let ctx = Arc::new(Ctx {
        profiles,
        pacer: Pacer::new(opts.fast_rate),
        opts,
        http,
        library,
        bots,
    });
    let permits = Arc::new(Semaphore::new(ctx.opts.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for call in 0..calls {
        let scenario = Arc::new(scenarios[call % scenarios.len()].clone());
        let ctx = ctx.clone();
        let permit = permits.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let out = run_call(ctx, call, scenario).await;
            drop(permit);
            out
        });
    }
    let mut legs = Vec::new();
    while let Some(r) = tasks.join_next().await {
        legs.extend(r.context("a call task panicked")?);
    }
    legs.sort_by_key(|l| (l.call, l.leg, l.role == Role::Paired));
    Ok(SimReport {
        seed: ctx.opts.seed,
        bots: infos,
        legs,
        warnings,
    })
}

/// The local address the kernel would send from towards `media` (no packet is sent).
fn local_ip_towards(media: SocketAddr) -> anyhow::Result<IpAddr> {
    if media.ip().is_loopback() {
        return Ok(media.ip());
    }
    let any: SocketAddr = if media.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let probe = StdUdpSocket::bind(any)?;
    probe
        .connect(media)
        .with_context(|| format!("no route to the media address {media}"))?;
    Ok(probe.local_addr()?.ip())
}

fn uuid(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// splitmix64: independent, reproducible seeds per call, leg and recorder.
fn mix_seed(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(seed, |acc, &p| {
        let mut z = acc ^ p.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// Leg progress, for fast mode's ordering of a scenario's legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Progress {
    Waiting,
    Invited,
    Finished,
}

async fn run_call(ctx: Arc<Ctx>, call: usize, scenario: Arc<Scenario>) -> Vec<LegReport> {
    // Fresh ids every run, whatever the seed: a rerun against the same bot-host must not
    // collide with calls it already knows.
    let ids = fresh_ids(&scenario);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for bot in 0..ctx.bots.len() {
        let progress: Vec<watch::Sender<Progress>> = scenario
            .legs
            .iter()
            .map(|_| watch::channel(Progress::Waiting).0)
            .collect();
        let progress = Arc::new(progress);
        for (leg, leg_ids) in ids.iter().enumerate() {
            let (ctx, scenario, leg_ids, progress) = (
                ctx.clone(),
                scenario.clone(),
                leg_ids.clone(),
                progress.clone(),
            );
            tasks.spawn(async move {
                run_leg(&ctx, call, &scenario, leg, bot, leg_ids, start, &progress).await
            });
        }
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(l) => out.push(l),
            Err(e) => out.push(LegReport {
                call,
                scenario: scenario.name,
                leg: usize::MAX,
                role: Role::Primary,
                call_id: String::new(),
                expected: false,
                expect_reason: String::new(),
                recorded: false,
                observed: "simulator task failed".into(),
                answer_latency: None,
                deadline_missed: false,
                media: MediaStats::default(),
                sealed_path: None,
                errors: vec![format!("leg task: {e}")],
            }),
        }
    }
    out
}

fn fresh_ids(scenario: &Scenario) -> Vec<LegIds> {
    let mut rng = rand::thread_rng();
    let chain_ids: Vec<String> = (0..4).map(|_| uuid(&mut rng)).collect();
    let thread_id = format!("19:meeting_{}@thread.v2", uuid(&mut rng).replace('-', ""));
    scenario
        .legs
        .iter()
        .map(|leg| LegIds {
            call_id: uuid(&mut rng),
            chain_id: chain_ids[usize::from(leg.chain) % chain_ids.len()].clone(),
            thread_id: leg.is_meeting().then(|| thread_id.clone()),
            policy_participant_id: uuid(&mut rng),
            other_participant_id: uuid(&mut rng),
        })
        .collect()
}

/// Fast mode: a leg that starts after another leg's end waits for that leg to finish; one
/// that overlaps waits until the other has been invited, so the platform's order holds.
async fn wait_for_earlier_legs(
    scenario: &Scenario,
    leg: usize,
    progress: &[watch::Sender<Progress>],
) {
    let me = &scenario.legs[leg];
    for (i, other) in scenario.legs.iter().enumerate().take(leg) {
        let need = if other.start_ms + other.end_ms <= me.start_ms {
            Progress::Finished
        } else {
            Progress::Invited
        };
        let mut rx = progress[i].subscribe();
        // The sender lives in `progress` for the whole call, so this only ends by the value.
        let _ = rx.wait_for(|p| *p >= need).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_leg(
    ctx: &Ctx,
    call: usize,
    scenario: &Scenario,
    leg_no: usize,
    bot_no: usize,
    ids: LegIds,
    scenario_start: Instant,
    progress: &[watch::Sender<Progress>],
) -> LegReport {
    let leg = &scenario.legs[leg_no];
    let bot = &ctx.bots[bot_no];
    let (mut expected, mut expect_reason) = leg.expect.at(chrono::Utc::now());
    if expected && bot.role == Role::Paired {
        let pro = ctx
            .profiles
            .as_ref()
            .and_then(|p| p.profile_for(&[leg.policy_user.id()]))
            .is_some_and(|p| p.double_recording);
        if !pro {
            expected = false;
            expect_reason = "Essentials profile: only the primary bot records".into();
        }
    }
    let mut report = LegReport {
        call,
        scenario: scenario.name,
        leg: leg_no,
        role: bot.role,
        call_id: ids.call_id.clone(),
        expected,
        expect_reason,
        recorded: false,
        observed: String::new(),
        answer_latency: None,
        deadline_missed: false,
        media: MediaStats::default(),
        sealed_path: None,
        errors: Vec::new(),
    };
    let fast = ctx.opts.pacing == Pacing::Fast;
    let leg_start = if fast {
        wait_for_earlier_legs(scenario, leg_no, progress).await;
        Instant::now()
    } else {
        let at = scenario_start + Duration::from_millis(leg.start_ms);
        tokio::time::sleep_until(at).await;
        at
    };
    let played = play_leg(
        ctx,
        scenario,
        leg,
        bot_no,
        &ids,
        leg_start,
        progress,
        leg_no,
        &mut report,
    )
    .await;
    progress[leg_no].send_replace(Progress::Finished);
    match played {
        Ok(true) => settle(ctx, bot, leg, &mut report).await,
        Ok(false) => {}
        Err(e) => {
            report.observed = "simulator error".into();
            report.errors.push(format!("{e:#}"));
        }
    }
    report
}

/// Plays the timeline; `Ok(false)` when the call failed at the invitation (nothing to poll).
#[allow(clippy::too_many_arguments)]
async fn play_leg(
    ctx: &Ctx,
    scenario: &Scenario,
    leg: &Leg,
    bot_no: usize,
    ids: &LegIds,
    leg_start: Instant,
    progress: &[watch::Sender<Progress>],
    leg_no: usize,
    report: &mut LegReport,
) -> anyhow::Result<bool> {
    let bot = &ctx.bots[bot_no];
    let fast = ctx.opts.pacing == Pacing::Fast;
    let socket = UdpSocket::bind(SocketAddr::new(bot.local_ip, 0))
        .await
        .context("binding the media socket")?;
    let local = socket.local_addr()?;
    let mut key = [0u8; 30];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let offer = sdp::offer(local, scenario.codec, &key, rand::random::<u32>().into());
    let to = Recipient {
        role: bot.role,
        paired: ctx.bots.len() > 1,
    };
    let notes = notify::leg_timeline(leg, ids, to, &offer);
    let url = format!("{}/api/calls", bot.base);

    // The invitation and its answer.
    let invite = &notes[0];
    debug_assert_eq!(invite.kind, NoteKind::Incoming);
    let sent_at = Instant::now();
    let response = ctx
        .http
        .post(&url)
        .json(&invite.body)
        .timeout(ctx.opts.answer_deadline)
        .send()
        .await;
    progress[leg_no].send_replace(Progress::Invited);
    let answer = match response {
        Err(e) if e.is_timeout() => {
            report.answer_latency = Some(sent_at.elapsed());
            None
        }
        Err(e) => return Err(anyhow!(e).context(format!("POST {url} (invitation)"))),
        Ok(r) => {
            let status = r.status();
            let body: Result<Value, _> = r.json().await;
            let latency = sent_at.elapsed();
            report.answer_latency = Some(latency);
            if latency > ctx.opts.answer_deadline {
                None
            } else if !status.is_success() {
                bail!("POST {url} (invitation): HTTP {status}");
            } else {
                Some(body.with_context(|| format!("POST {url}: the answer is not JSON"))?)
            }
        }
    };
    let Some(answer) = answer else {
        report.deadline_missed = true;
        report.observed = "no answer in time: 408/1106".into();
        post(
            ctx,
            &url,
            &notify::terminated(&ids.call_id, 408, 1106, "Call was not answered in time"),
            report,
        )
        .await;
        return Ok(false);
    };
    let entry = answer["value"]
        .as_array()
        .and_then(|v| {
            v.iter()
                .find(|e| e["callId"] == ids.call_id.as_str())
                .or_else(|| (v.len() == 1).then(|| &v[0]))
        })
        .cloned();
    let media_to = match entry.as_ref().and_then(|e| e["action"].as_str()) {
        Some("answer") => {
            let blob = entry
                .as_ref()
                .and_then(|e| e["mediaConfig"]["blob"].as_str())
                .ok_or_else(|| anyhow!("answer without mediaConfig.blob"))?;
            let a = sdp::parse_answer(blob).context("the bot's SDP answer")?;
            if a.direction == AnswerDirection::Inactive {
                report.observed = "answered inactive".into();
            }
            (a.direction == AnswerDirection::Receive).then_some(a.media)
        }
        Some("reject") => {
            // The platform sends nothing more to a bot that rejected; only the status is left.
            report.observed = "rejected".into();
            return Ok(true);
        }
        _ => {
            // No answer for this call: the platform fails it when the deadline passes.
            report.deadline_missed = true;
            report.observed = "no answer: 408/1106".into();
            post(
                ctx,
                &url,
                &notify::terminated(&ids.call_id, 408, 1106, "Call was not answered"),
                report,
            )
            .await;
            return Ok(false);
        }
    };

    // The rest of the timeline: notifications and media frames in time order.
    let answered_ms = if fast {
        0
    } else {
        leg_start.elapsed().as_millis() as u64
    };
    let impairments = scenario::Impairments {
        loss_pct: ctx.opts.loss_pct.unwrap_or(scenario.impairments.loss_pct),
        ..scenario.impairments
    };
    let seed = mix_seed(
        ctx.opts.seed,
        &[report.call as u64, leg_no as u64, bot_no as u64],
    );
    let mut media = match media_to {
        Some(_) => Some(MediaSource::new(
            &ctx.library,
            leg,
            scenario.codec,
            &key,
            impairments,
            seed,
        )?),
        None => None,
    };
    let mut next_tick = answered_ms.div_ceil(FRAME_MS) * FRAME_MS;
    let mut notes = notes.into_iter().skip(1).peekable();
    let mut send_errors = 0u64;
    loop {
        let tick_due = (media.is_some() && next_tick < leg.end_ms).then_some(next_tick * 1000);
        let packet_due = media.as_ref().and_then(|m| m.next_due_us());
        let note_due = notes.peek().map(|n| n.at_ms * 1000);
        // At equal times: packets already due, then notifications (a roster names an MSI
        // before its first packet), then the next frame.
        let Some(now_us) = [packet_due, note_due, tick_due].into_iter().flatten().min() else {
            break;
        };
        if !fast {
            tokio::time::sleep_until(leg_start + Duration::from_micros(now_us)).await;
        }
        if packet_due == Some(now_us) {
            let (m, dest) = (
                media.as_mut().expect("packet due implies media"),
                media_to.expect("media"),
            );
            while let Some(p) = m.pop_due(now_us) {
                if socket.send_to(&p, dest).await.is_err() {
                    send_errors += 1;
                }
                if fast {
                    ctx.pacer.wait().await;
                }
            }
        } else if note_due == Some(now_us) {
            let note = notes.next().expect("peeked");
            let ends = note.kind == NoteKind::Terminated
                || (note.kind == NoteKind::Roster && note.at_ms >= leg.end_ms);
            if ends {
                if let Some(m) = media.as_mut() {
                    m.finish(leg.end_ms);
                    // Flush what is still queued (jitter) before the end is announced.
                    while let Some(p) = m.pop_due(u64::MAX) {
                        if socket.send_to(&p, media_to.expect("media")).await.is_err() {
                            send_errors += 1;
                        }
                    }
                }
                if fast {
                    tokio::time::sleep(FAST_DRAIN).await;
                }
            }
            post(ctx, &url, &note.body, report).await;
        } else {
            let m = media.as_mut().expect("tick due implies media");
            m.tick(leg, next_tick)?;
            next_tick += FRAME_MS;
        }
    }
    if let Some(m) = media.as_mut() {
        m.finish(leg.end_ms);
        while let Some(p) = m.pop_due(u64::MAX) {
            if socket.send_to(&p, media_to.expect("media")).await.is_err() {
                send_errors += 1;
            }
        }
        report.media = m.stats();
    }
    if send_errors > 0 {
        report
            .errors
            .push(format!("{send_errors} media packets could not be sent"));
    }
    Ok(true)
}

async fn post(ctx: &Ctx, url: &str, body: &Value, report: &mut LegReport) {
    let r = ctx
        .http
        .post(url)
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match r {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => report.errors.push(format!(
            "POST {url} ({}): HTTP {}",
            body["value"][0]["changeType"].as_str().unwrap_or("?"),
            r.status()
        )),
        Err(e) => report.errors.push(format!("POST {url}: {e}")),
    }
}

/// `GET /api/calls/{id}`.
#[derive(Debug, Deserialize)]
struct CallStatus {
    #[serde(default)]
    state: String,
    #[serde(default)]
    recording: String,
    #[serde(rename = "sealedPath")]
    sealed_path: Option<String>,
}

/// Polls the bot until the leg's recording is settled: `sealed` or `failed`, or `none` once
/// the call is terminated (a call that never ended on the platform's side ends by the bot's
/// own timeouts, so those wait for sealing too).
async fn settle(ctx: &Ctx, bot: &Bot, leg: &Leg, report: &mut LegReport) {
    let url = format!("{}/api/calls/{}", bot.base, report.call_id);
    let deadline = Instant::now() + ctx.opts.seal_timeout;
    let interval = match ctx.opts.pacing {
        Pacing::Fast => Duration::from_millis(50),
        Pacing::Realtime => Duration::from_millis(250),
    };
    let mut last: String;
    loop {
        match ctx
            .http
            .get(&url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
                last = "unknown call (404)".into();
                if !report.expected {
                    report.observed = last;
                    return;
                }
            }
            Ok(r) if r.status().is_success() => match r.json::<CallStatus>().await {
                Ok(s) => {
                    let settled = match s.recording.as_str() {
                        "sealed" | "failed" => true,
                        "none" => s.state == "terminated",
                        _ => false,
                    };
                    last = format!("{} / {}", s.state, s.recording);
                    if settled {
                        report.recorded = s.recording == "sealed";
                        report.sealed_path = s.sealed_path;
                        // Prefixed with how the call was answered when that was not plain.
                        report.observed = if report.observed.is_empty() {
                            s.recording
                        } else {
                            format!("{}, {}", report.observed, s.recording)
                        };
                        return;
                    }
                }
                Err(e) => last = format!("status not JSON: {e}"),
            },
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = format!("{e}"),
        }
        if Instant::now() >= deadline {
            report.observed = format!("not settled: {last}");
            report.errors.push(format!(
                "recording not settled {:?} after the call ({}; ends by {:?})",
                ctx.opts.seal_timeout, last, leg.end
            ));
            return;
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_like_graph_ids() {
        let id = uuid(&mut rand::thread_rng());
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
    }

    #[test]
    fn seeds_differ_per_recorder() {
        assert_ne!(mix_seed(1, &[0, 0, 0]), mix_seed(1, &[0, 0, 1]));
        assert_eq!(mix_seed(7, &[3, 1, 0]), mix_seed(7, &[3, 1, 0]));
    }
}
