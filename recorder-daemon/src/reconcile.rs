//! The reconciler: every call a recording profile said to record ends as a recording in the
//! store, or an alarm names it (docs/operations.md, "Missing recordings").
//!
//! The commonest complaint about recorders is calls that silently produce nothing. Each round
//! asks every configured bot-host for the calls it was notified of (`GET /api/calls`, which
//! lists live calls and ended ones for 15 minutes) and compares them with the store:
//!
//! - a call the profile said to record that the bot refused (capacity, disk): `CallNotRecorded`;
//! - a recorded call that ended more than `grace_secs` ago (or was answered that long ago and
//!   was never reported) whose leg is not Available in the store: `RecordingMissing`, cleared
//!   when it becomes Available (or is deleted by retention);
//! - a bot-host that cannot be asked: `BotHostUnreachable`, cleared when it answers again.
//!
//! Alarms are raised once per call or recording (subject `call/<call id>` for a refusal,
//! `recording/<recording id>` for a missing recording), so a round every 30 s does not repeat
//! them; an unresolved `RecordingMissing` stays active after the bot forgets the call,
//! which is the point: someone must look.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alarms::{AlarmKind, Alarms};
use crate::model::MediaStatus;
use crate::store::Store;

/// `[reconcile]` in the daemon's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileConfig {
    /// bot-host HTTP base URLs (e.g. `http://10.0.0.5:8080`); none: the reconciler is off.
    pub bot_hosts: Vec<String>,
    /// Seconds between rounds.
    pub interval_secs: u64,
    /// Seconds a recorded call's recording may take to become Available after the call
    /// ended (sealing, upload, verification) before it is reported missing. Keep it under
    /// bot-host's `ended_retention` (15 minutes), after which the bot forgets the call.
    pub grace_secs: u64,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            bot_hosts: Vec::new(),
            interval_secs: 30,
            grace_secs: 300,
        }
    }
}

/// A call as bot-host's `GET /api/calls` lists it (docs/live.md, "Call status").
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BotCall {
    call_id: String,
    decision: Decision,
    #[serde(default)]
    recording_id: Option<String>,
    answer: String,
    invited_at: DateTime<Utc>,
    #[serde(default)]
    ended_at: Option<DateTime<Utc>>,
    /// `none|recording|sealed|failed`, what the host knows of the recording.
    #[serde(default)]
    recording: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Decision {
    record: bool,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
struct CallList {
    calls: Vec<BotCall>,
}

/// What one round found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundReport {
    /// Calls listed by the bot-hosts that answered.
    pub calls: usize,
    /// Of those, calls a profile said to record.
    pub to_record: usize,
    /// Recorded calls whose recording is Available (or was deleted by retention).
    pub available: usize,
    /// Recorded calls still inside the grace period.
    pub in_grace: usize,
    /// Calls reported missing (alarm active), by call id.
    pub missing: Vec<String>,
    /// Calls the bots refused although a profile said to record them.
    pub refused: Vec<String>,
    /// bot-hosts that did not answer.
    pub unreachable: Vec<String>,
}

/// Compares bot-hosts' calls with the store.
pub struct Reconciler {
    store: Arc<dyn Store>,
    alarms: Alarms,
    client: reqwest::Client,
    cfg: ReconcileConfig,
}

impl Reconciler {
    /// A reconciler over `cfg.bot_hosts`.
    pub fn new(store: Arc<dyn Store>, alarms: Alarms, cfg: ReconcileConfig) -> Self {
        Self {
            store,
            alarms,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            cfg,
        }
    }

    /// Runs a round every `interval_secs`, forever.
    pub async fn run(self: Arc<Self>) {
        // The first round waits one interval: bot-hosts started with the daemon are not
        // reported unreachable for the seconds they take to come up.
        let every = Duration::from_secs(self.cfg.interval_secs.max(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            let r = self.round(Utc::now()).await;
            if !r.missing.is_empty() || !r.refused.is_empty() || !r.unreachable.is_empty() {
                eprintln!(
                    "recorder-daemon: reconcile: {} calls, {} to record, missing {:?}, refused {:?}, unreachable {:?}",
                    r.calls, r.to_record, r.missing, r.refused, r.unreachable
                );
            }
        }
    }

    /// One comparison at `now`.
    pub async fn round(&self, now: DateTime<Utc>) -> RoundReport {
        let mut report = RoundReport::default();
        for host in &self.cfg.bot_hosts {
            let subject = format!("bot-host/{host}");
            let calls = match self.calls_of(host).await {
                Ok(c) => {
                    self.alarms
                        .clear(AlarmKind::BotHostUnreachable, &subject)
                        .await;
                    c
                }
                Err(e) => {
                    self.alarms
                        .raise(
                            AlarmKind::BotHostUnreachable,
                            &subject,
                            &format!("Cannot list the calls of bot-host {host}: {e:#}"),
                        )
                        .await;
                    report.unreachable.push(host.clone());
                    continue;
                }
            };
            report.calls += calls.len();
            for c in calls {
                self.check(host, &c, now, &mut report).await;
            }
        }
        report
    }

    async fn calls_of(&self, host: &str) -> anyhow::Result<Vec<BotCall>> {
        let url = format!("{}/api/calls", host.trim_end_matches('/'));
        let r = self.client.get(&url).send().await?.error_for_status()?;
        let list: CallList = r.json().await?;
        Ok(list.calls)
    }

    async fn check(&self, host: &str, c: &BotCall, now: DateTime<Utc>, report: &mut RoundReport) {
        if !c.decision.record {
            return;
        }
        report.to_record += 1;
        // Refusals are per call; a missing recording per recording (two bots can be handed the
        // same call id).
        let subject = format!("call/{}", c.call_id);
        let profile = c.decision.profile.as_deref().unwrap_or("(none)");
        match c.answer.as_str() {
            "rejected" => {
                self.alarms
                    .raise(
                        AlarmKind::CallNotRecorded,
                        &subject,
                        &format!(
                            "Call {} (invited {}) should have been recorded by profile {profile} \
                             but bot-host {host} refused it: {}",
                            c.call_id,
                            c.invited_at.to_rfc3339(),
                            c.decision.reason
                        ),
                    )
                    .await;
                report.refused.push(c.call_id.clone());
                return;
            }
            "recording" => {}
            // A meeting member or forked duplicate: another call owns the recording.
            _ => return,
        }
        let Some(rec) = &c.recording_id else {
            return;
        };
        let subject = format!("recording/{rec}");
        let store = self.store.clone();
        let id = rec.clone();
        let status = match tokio::task::spawn_blocking(move || store.leg_status(&id)).await {
            Ok(Ok(s)) => s.map(|(_, st)| st),
            Ok(Err(e)) => {
                eprintln!("recorder-daemon: reconcile: store: {e}");
                return;
            }
            Err(e) => {
                eprintln!("recorder-daemon: reconcile: {e}");
                return;
            }
        };
        if matches!(status, Some(MediaStatus::Available | MediaStatus::Deleted)) {
            self.alarms
                .clear(AlarmKind::RecordingMissing, &subject)
                .await;
            report.available += 1;
            return;
        }
        let grace = chrono::Duration::seconds(self.cfg.grace_secs as i64);
        // An ended call has `grace` to be sealed, uploaded and verified; a live call must at
        // least have been reported to the store by then.
        let due = match c.ended_at {
            Some(end) => now - end > grace,
            None => status.is_none() && now - c.invited_at > grace,
        };
        if !due {
            report.in_grace += 1;
            return;
        }
        let what = match status {
            None => "the store has no interaction for it".to_string(),
            Some(s) => format!("its media status is {}", s.as_str()),
        };
        let when = match c.ended_at {
            Some(end) => format!("ended {}", end.to_rfc3339()),
            None => format!("invited {} and still live", c.invited_at.to_rfc3339()),
        };
        self.alarms
            .raise(
                AlarmKind::RecordingMissing,
                &subject,
                &format!(
                    "Call {} ({when}, profile {profile}) was recorded by bot-host {host} as \
                     {rec}, but {what} after {} s; the bot reports the recording as {:?}",
                    c.call_id, self.cfg.grace_secs, c.recording
                ),
            )
            .await;
        report.missing.push(c.call_id.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LegUpdate;
    use crate::store::sqlite::SqliteStore;
    use serde_json::json;
    use std::sync::Mutex;

    fn call(
        id: &str,
        answer: &str,
        rec: Option<&str>,
        invited: &str,
        ended: Option<&str>,
    ) -> serde_json::Value {
        json!({
            "callId": id, "state": if ended.is_some() { "terminated" } else { "established" },
            "decision": {"record": answer != "inactive-policy", "profile": "Traders", "reason": "user alice in profile Traders"},
            "recordingId": rec, "answer": if answer == "inactive-policy" { "inactive" } else { answer },
            "invitedAt": invited, "endedAt": ended, "recording": "sealed",
        })
    }

    async fn fake_bot(calls: Arc<Mutex<serde_json::Value>>) -> String {
        let app = axum::Router::new().route(
            "/api/calls",
            axum::routing::get(move || {
                let calls = calls.clone();
                async move { axum::Json(calls.lock().unwrap().clone()) }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn leg(rec: &str, status: &str) -> LegUpdate {
        serde_json::from_value(json!({
            "callId": rec, "recordingId": rec, "botRole": "primary", "pairingKey": rec,
            "startTime": "2026-11-26T10:00:00Z", "direction": "Incoming",
            "callType": "Internal p2p", "mediaStatus": status,
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn every_call_to_record_ends_as_a_recording_or_an_alarm_that_names_it() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let alarms = Alarms::new(store.clone(), "t1", None);
        let t = |s: &str| format!("2026-11-26T10:{s}Z");
        let calls = Arc::new(Mutex::new(json!({"role": "primary", "calls": [
            // Recorded, uploaded: fine.
            call("ok", "recording", Some("rec-ok"), &t("00:00"), Some(&t("01:00"))),
            // Recorded, ended 10 minutes before "now", still Pending in the store: missing.
            call("stuck", "recording", Some("rec-stuck"), &t("00:00"), Some(&t("01:00"))),
            // Recorded, ended 10 minutes ago, never reported: missing.
            call("lost", "recording", Some("rec-lost"), &t("00:00"), Some(&t("01:00"))),
            // Ended a minute ago: inside the grace period.
            call("fresh", "recording", Some("rec-fresh"), &t("09:00"), Some(&t("10:00"))),
            // Refused by the bot although the profile said record.
            call("refused", "rejected", None, &t("05:00"), Some(&t("05:01"))),
            // Not to be recorded: nothing to check.
            call("policy", "inactive-policy", None, &t("05:00"), None),
        ]})));
        let bot = fake_bot(calls.clone()).await;
        store.upsert_leg(&leg("rec-ok", "Available")).unwrap();
        store.upsert_leg(&leg("rec-stuck", "Pending")).unwrap();
        let r = Reconciler::new(
            store.clone(),
            alarms.clone(),
            ReconcileConfig {
                bot_hosts: vec![bot.clone(), "http://127.0.0.1:9".into()],
                interval_secs: 30,
                grace_secs: 300,
            },
        );
        let now = DateTime::parse_from_rfc3339(&t("11:00"))
            .unwrap()
            .with_timezone(&Utc);
        let report = r.round(now).await;
        assert_eq!(report.calls, 6);
        assert_eq!(report.to_record, 5);
        assert_eq!(report.available, 1);
        assert_eq!(report.in_grace, 1);
        assert_eq!(report.missing, ["stuck", "lost"]);
        assert_eq!(report.refused, ["refused"]);
        assert_eq!(report.unreachable, ["http://127.0.0.1:9"]);
        let mut missing = alarms.active_subjects(AlarmKind::RecordingMissing).await;
        missing.sort();
        assert_eq!(missing, ["recording/rec-lost", "recording/rec-stuck"]);
        assert_eq!(
            alarms.active_subjects(AlarmKind::CallNotRecorded).await,
            ["call/refused"]
        );
        assert_eq!(
            alarms.active_subjects(AlarmKind::BotHostUnreachable).await,
            ["bot-host/http://127.0.0.1:9"]
        );
        let texts: Vec<String> = store
            .alarms_active()
            .unwrap()
            .into_iter()
            .map(|a| a.text)
            .collect();
        assert!(
            texts
                .iter()
                .any(|t| t.contains("rec-lost") && t.contains("no interaction")),
            "{texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.contains("rec-stuck") && t.contains("Pending")),
            "{texts:?}"
        );

        // A second round raises nothing new; the stuck recording arriving clears its alarm.
        let before = store.alarms_active().unwrap().len();
        store.upsert_leg(&leg("rec-stuck", "Available")).unwrap();
        let report = r.round(now).await;
        assert_eq!(report.missing, ["lost"]);
        assert_eq!(store.alarms_active().unwrap().len(), before - 1);
        assert_eq!(
            alarms.active_subjects(AlarmKind::RecordingMissing).await,
            ["recording/rec-lost"]
        );
    }
}
