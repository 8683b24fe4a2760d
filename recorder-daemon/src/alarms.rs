//! Alarms with the product's fields (docs/storage.md, "Alarms"): raised once per condition,
//! cleared on recovery, kept in the store (active alarms and the system activity log), written
//! to the log and POSTed to a webhook. A sink that fails is logged; it never holds up the
//! uploader.

use std::sync::Arc;
use std::time::Duration;

use crate::store::activity::{Alarm, NewAlarm};
use crate::store::Store;

/// The alarms the daemon raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmKind {
    /// A storage cannot be reached, refuses the credentials (expired SAS) or is full.
    ConnectionFailed,
    /// A sealed recording failed verification and was set aside in `rejected/`.
    RecordingRejected,
    /// A recording names a storage that is not configured; it is held in the spool.
    UnknownStorage,
    /// A call a recording profile said to record was refused by its bot-host (reconciler).
    CallNotRecorded,
    /// A recorded call ended but its recording is not (or no longer) available in the store
    /// within the grace period (reconciler).
    RecordingMissing,
    /// A configured bot-host cannot be asked for its calls (reconciler).
    BotHostUnreachable,
}

impl AlarmKind {
    /// The alarm's name.
    pub fn name(self) -> &'static str {
        match self {
            AlarmKind::ConnectionFailed => "ConnectionFailed",
            AlarmKind::RecordingRejected => "RecordingRejected",
            AlarmKind::UnknownStorage => "UnknownStorage",
            AlarmKind::CallNotRecorded => "CallNotRecorded",
            AlarmKind::RecordingMissing => "RecordingMissing",
            AlarmKind::BotHostUnreachable => "BotHostUnreachable",
        }
    }

    /// SNMP OID. ConnectionFailed's is the product's; the other two are numbered next to it
    /// by this project (the product's MIB has no equivalent we know of).
    pub fn oid(self) -> &'static str {
        match self {
            AlarmKind::ConnectionFailed => ".1.3.6.1.4.1.5003.9.40.3.2.0.101",
            AlarmKind::RecordingRejected => ".1.3.6.1.4.1.5003.9.40.3.2.0.102",
            AlarmKind::UnknownStorage => ".1.3.6.1.4.1.5003.9.40.3.2.0.103",
            AlarmKind::CallNotRecorded => ".1.3.6.1.4.1.5003.9.40.3.2.0.104",
            AlarmKind::RecordingMissing => ".1.3.6.1.4.1.5003.9.40.3.2.0.105",
            AlarmKind::BotHostUnreachable => ".1.3.6.1.4.1.5003.9.40.3.2.0.106",
        }
    }

    /// Severity.
    pub fn severity(self) -> &'static str {
        match self {
            AlarmKind::ConnectionFailed => "major",
            AlarmKind::RecordingRejected => "major",
            AlarmKind::UnknownStorage => "major",
            AlarmKind::CallNotRecorded => "critical",
            AlarmKind::RecordingMissing => "critical",
            AlarmKind::BotHostUnreachable => "major",
        }
    }

    /// What the operator should do.
    pub fn corrective_action(self) -> &'static str {
        match self {
            AlarmKind::ConnectionFailed => {
                "Check the storage: network path, credentials or SAS expiry, free space or \
                 quota. Recordings wait in the spool and upload once it recovers."
            }
            AlarmKind::RecordingRejected => {
                "Inspect the recording under the spool's rejected/ directory and its reason \
                 file; move it back to sealed/ once repaired, or archive it. The alarm clears \
                 when it leaves rejected/."
            }
            AlarmKind::UnknownStorage => {
                "Configure a [[storage]] with this name or correct the recording profile; \
                 held recordings upload once the storage exists."
            }
            AlarmKind::CallNotRecorded => {
                "The bot-host refused a call it should have recorded (capacity or disk space): \
                 add bot-host capacity or free space, and record the regulatory gap."
            }
            AlarmKind::RecordingMissing => {
                "Check the bot-host's spool (active/, sealed/, rejected/) and the uploader's \
                 alarms for this recording; the alarm clears when it becomes available."
            }
            AlarmKind::BotHostUnreachable => {
                "Check that the bot-host runs and that its address in reconcile.bot_hosts is \
                 reachable from the daemon."
            }
        }
    }
}

/// Raises and clears alarms.
#[derive(Clone)]
pub struct Alarms {
    store: Arc<dyn Store>,
    tenant: String,
    webhook: Option<(reqwest::Client, String)>,
}

impl Alarms {
    /// Alarms of `tenant`, kept in `store`, POSTed to `webhook` when set.
    pub fn new(store: Arc<dyn Store>, tenant: &str, webhook: Option<String>) -> Self {
        let webhook = webhook.and_then(|url| {
            match reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
            {
                Ok(c) => Some((c, url)),
                Err(e) => {
                    eprintln!("recorder-daemon: alarm webhook disabled: {e}");
                    None
                }
            }
        });
        Self {
            store,
            tenant: tenant.to_string(),
            webhook,
        }
    }

    /// `<tenant>/<subject>`.
    pub fn source(&self, subject: &str) -> String {
        format!("{}/{subject}", self.tenant)
    }

    /// Raises `kind` for `subject` unless it is active; returns whether it was raised now.
    pub async fn raise(&self, kind: AlarmKind, subject: &str, text: &str) -> bool {
        let new = NewAlarm {
            name: kind.name().into(),
            oid: kind.oid().into(),
            source: self.source(subject),
            severity: kind.severity().into(),
            text: text.to_string(),
            corrective_action: kind.corrective_action().into(),
        };
        let store = self.store.clone();
        let r = tokio::task::spawn_blocking(move || store.alarm_raise(&new)).await;
        match r {
            Ok(Ok(Some(a))) => {
                eprintln!(
                    "recorder-daemon: ALARM RAISED {} [{}] {} ({}): {} | action: {}",
                    a.name, a.oid, a.source, a.severity, a.text, a.corrective_action
                );
                self.notify("raised", a);
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                eprintln!(
                    "recorder-daemon: alarm {} for {subject} not recorded: {e}",
                    kind.name()
                );
                false
            }
            Err(e) => {
                eprintln!("recorder-daemon: alarm task: {e}");
                false
            }
        }
    }

    /// Clears `kind` for `subject` when active; returns whether it was cleared now.
    pub async fn clear(&self, kind: AlarmKind, subject: &str) -> bool {
        let store = self.store.clone();
        let source = self.source(subject);
        let r = tokio::task::spawn_blocking(move || store.alarm_clear(kind.name(), &source)).await;
        match r {
            Ok(Ok(Some(a))) => {
                eprintln!(
                    "recorder-daemon: ALARM CLEARED {} [{}] {}",
                    a.name, a.oid, a.source
                );
                self.notify("cleared", a);
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                eprintln!(
                    "recorder-daemon: clearing alarm {} for {subject}: {e}",
                    kind.name()
                );
                false
            }
            Err(e) => {
                eprintln!("recorder-daemon: alarm task: {e}");
                false
            }
        }
    }

    /// The active alarms of `kind` (their subjects, without the tenant prefix).
    pub async fn active_subjects(&self, kind: AlarmKind) -> Vec<String> {
        let store = self.store.clone();
        let prefix = self.source("");
        match tokio::task::spawn_blocking(move || store.alarms_active()).await {
            Ok(Ok(list)) => list
                .into_iter()
                .filter(|a| a.name == kind.name())
                .filter_map(|a| a.source.strip_prefix(&prefix).map(str::to_string))
                .collect(),
            Ok(Err(e)) => {
                eprintln!("recorder-daemon: reading active alarms: {e}");
                Vec::new()
            }
            Err(e) => {
                eprintln!("recorder-daemon: alarm task: {e}");
                Vec::new()
            }
        }
    }

    /// Appends a non-alarm event to the system activity log (failures are logged).
    pub async fn activity(&self, kind: &str, subject: &str, text: &str) {
        let store = self.store.clone();
        let (kind, source, text) = (kind.to_string(), self.source(subject), text.to_string());
        match tokio::task::spawn_blocking(move || store.activity_append(&kind, &source, &text))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("recorder-daemon: activity log: {e}"),
            Err(e) => eprintln!("recorder-daemon: activity task: {e}"),
        }
    }

    /// POSTs `{"event": ..., "alarm": ...}` in the background.
    fn notify(&self, event: &'static str, alarm: Alarm) {
        let Some((client, url)) = self.webhook.clone() else {
            return;
        };
        tokio::spawn(async move {
            let body = serde_json::json!({ "event": event, "alarm": alarm });
            match client.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => eprintln!(
                    "recorder-daemon: alarm webhook {url}: HTTP {} for {} {event}",
                    r.status(),
                    alarm.name
                ),
                Err(e) => eprintln!(
                    "recorder-daemon: alarm webhook {url}: {e} ({} {event} not delivered)",
                    alarm.name
                ),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn raised_once_posted_to_the_webhook_and_cleared() {
        use axum::routing::post;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
        let app = axum::Router::new().route(
            "/hook",
            post(move |axum::Json(v): axum::Json<serde_json::Value>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(v);
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(l, app).await });
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let alarms = Alarms::new(store.clone(), "tenant", Some(url));
        assert!(
            alarms
                .raise(AlarmKind::ConnectionFailed, "local", "disk full")
                .await
        );
        assert!(
            !alarms
                .raise(AlarmKind::ConnectionFailed, "local", "disk full")
                .await
        );
        let got = rx.recv().await.unwrap();
        assert_eq!(got["event"], "raised");
        assert_eq!(got["alarm"]["name"], "ConnectionFailed");
        assert_eq!(got["alarm"]["oid"], ".1.3.6.1.4.1.5003.9.40.3.2.0.101");
        assert_eq!(got["alarm"]["source"], "tenant/local");
        assert_eq!(
            alarms.active_subjects(AlarmKind::ConnectionFailed).await,
            ["local"]
        );
        assert!(alarms.clear(AlarmKind::ConnectionFailed, "local").await);
        assert!(!alarms.clear(AlarmKind::ConnectionFailed, "local").await);
        assert_eq!(rx.recv().await.unwrap()["event"], "cleared");
        server.abort();
        // An unreachable webhook does not hold anything up.
        let dead = Alarms::new(store, "tenant", Some("http://127.0.0.1:9/x".into()));
        assert!(dead.raise(AlarmKind::UnknownStorage, "nowhere", "x").await);
    }
}
