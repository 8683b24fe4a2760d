//! Calls into the platform: answer, reject, recording status, keep-alive, hang-up.
//!
//! [`CallControl`] is what a real Graph client implements later. [`LocalCallControl`] is the one
//! shipped here: it logs every action and collects the answers and rejects of one webhook
//! request into the response body the forwarder reads (docs/live.md).

use serde::{Deserialize, Serialize};

/// `updateRecordingStatus` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordingStatus {
    /// Media is being recorded (the platform lets the user's call proceed).
    Recording,
    /// Not recording.
    NotRecording,
    /// Recording broke.
    Failed,
}

/// Why a control action failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The platform does not know the call (Graph answers 404, or 8506 for a call the policy
    /// did not invite).
    #[error("call {0} is unknown to the platform")]
    UnknownCall(String),
    /// The action could not be delivered.
    #[error("call control for {call_id}: {message}")]
    Failed {
        /// The call.
        call_id: String,
        /// What went wrong.
        message: String,
    },
}

/// The bot's calls into the platform. Synchronous on purpose: the local implementation only
/// records the action, and a remote client queues the request to its own task, so the
/// signaling path never waits on the network.
pub trait CallControl {
    /// Answers with audio; `sdp_answer` is the bot's media answer (`a=recvonly`, or
    /// `a=inactive` for a call answered but not recorded).
    fn answer(&mut self, call_id: &str, sdp_answer: &str) -> Result<(), ControlError>;
    /// Rejects the invitation.
    fn reject(&mut self, call_id: &str, reason: &str) -> Result<(), ControlError>;
    /// Reports the recording status (media must not be persisted before `recording` is
    /// acknowledged).
    fn update_recording_status(
        &mut self,
        call_id: &str,
        status: RecordingStatus,
    ) -> Result<(), ControlError>;
    /// Keeps the call alive (the platform ends a call after 45 minutes without one).
    fn keep_alive(&mut self, call_id: &str) -> Result<(), ControlError>;
    /// Leaves the call.
    fn hangup(&mut self, call_id: &str) -> Result<(), ControlError>;
}

/// One entry of the webhook response's `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum WebhookAction {
    /// `{"callId","action":"answer","mediaConfig":{"blob"}}`.
    #[serde(rename_all = "camelCase")]
    Answer {
        /// The call.
        call_id: String,
        /// The SDP answer.
        media_config: AnswerMediaConfig,
    },
    /// `{"callId","action":"reject","reason"}`.
    #[serde(rename_all = "camelCase")]
    Reject {
        /// The call.
        call_id: String,
        /// Why.
        reason: String,
    },
}

/// `mediaConfig` of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerMediaConfig {
    /// The SDP answer.
    pub blob: String,
}

/// The webhook response body: `{"value":[...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookResponse {
    /// Answers and rejects, in the order they were made.
    pub value: Vec<WebhookAction>,
}

/// Answers locally: collects the answers and rejects of one webhook request for its response,
/// and logs every action. Keep-alives, recording status and hang-ups have no platform to reach
/// here, so they are logged and counted.
#[derive(Debug, Default)]
pub struct LocalCallControl {
    response: WebhookResponse,
    /// Recording-status reports made, for operators and tests.
    pub status_reports: Vec<(String, RecordingStatus)>,
    /// Keep-alives sent.
    pub keep_alives: u64,
    /// Calls hung up.
    pub hangups: Vec<String>,
}

impl LocalCallControl {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the response of the current request, leaving an empty one for the next.
    pub fn take_response(&mut self) -> WebhookResponse {
        std::mem::take(&mut self.response)
    }

    /// The response body as JSON bytes (`{"value":[]}` when nothing was answered).
    pub fn take_response_body(&mut self) -> Vec<u8> {
        serde_json::to_vec(&self.take_response()).expect("the response serializes")
    }
}

impl CallControl for LocalCallControl {
    fn answer(&mut self, call_id: &str, sdp_answer: &str) -> Result<(), ControlError> {
        tracing::info!(call_id, "answer");
        self.response.value.push(WebhookAction::Answer {
            call_id: call_id.to_string(),
            media_config: AnswerMediaConfig {
                blob: sdp_answer.to_string(),
            },
        });
        Ok(())
    }

    fn reject(&mut self, call_id: &str, reason: &str) -> Result<(), ControlError> {
        tracing::info!(call_id, reason, "reject");
        self.response.value.push(WebhookAction::Reject {
            call_id: call_id.to_string(),
            reason: reason.to_string(),
        });
        Ok(())
    }

    fn update_recording_status(
        &mut self,
        call_id: &str,
        status: RecordingStatus,
    ) -> Result<(), ControlError> {
        tracing::info!(call_id, ?status, "updateRecordingStatus");
        self.status_reports.push((call_id.to_string(), status));
        Ok(())
    }

    fn keep_alive(&mut self, call_id: &str) -> Result<(), ControlError> {
        tracing::debug!(call_id, "keepAlive");
        self.keep_alives += 1;
        Ok(())
    }

    fn hangup(&mut self, call_id: &str) -> Result<(), ControlError> {
        tracing::info!(call_id, "hangup");
        self.hangups.push(call_id.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_body_shape() {
        let mut c = LocalCallControl::new();
        assert_eq!(c.take_response_body(), br#"{"value":[]}"#);
        c.answer("c1", "v=0\r\n").unwrap();
        c.reject("c2", "no media offer").unwrap();
        c.update_recording_status("c1", RecordingStatus::NotRecording)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&c.take_response_body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"value":[
                {"callId":"c1","action":"answer","mediaConfig":{"blob":"v=0\r\n"}},
                {"callId":"c2","action":"reject","reason":"no media offer"}]})
        );
        assert!(c.take_response().value.is_empty());
        assert_eq!(
            c.status_reports,
            vec![("c1".into(), RecordingStatus::NotRecording)]
        );
        assert_eq!(
            serde_json::to_string(&RecordingStatus::NotRecording).unwrap(),
            "\"notRecording\""
        );
    }
}
