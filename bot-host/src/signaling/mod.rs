//! Call signaling and recording policy of the live bot, sans-IO.
//!
//! The host (HTTP webhook, media plane, spool) feeds webhook bodies and clock ticks into
//! [`Signaling`] and executes the [`Command`]s it returns, in order. Nothing here reads the
//! clock, opens a socket or spawns a thread: `now` is an argument, so tests replay hours of
//! call life in microseconds.
//!
//! - [`notify`]: the Graph `commsNotifications` types.
//! - [`classify`]: call facts (type, direction, parties) from an invitation.
//! - [`profiles`]: recording profiles and the per-call decision.
//! - [`call`]: the per-call state machine and the registry of all calls.
//! - [`interaction`]: the interaction metadata record.
//! - [`control`]: the `CallControl` trait and the local implementation that answers in the
//!   webhook response.

pub mod call;
pub mod classify;
pub mod control;
pub mod interaction;
pub mod notify;
pub mod profiles;

pub use call::{CallStatus, Command, RecordingStart, Signaling, SignalingConfig};
pub use classify::{CallFacts, CallKind, Reach};
pub use control::{CallControl, ControlError, LocalCallControl, RecordingStatus};
pub use interaction::{
    BotRole, CallType, Direction, Interaction, MediaStatus, Participant, Party, ReleaseCause,
};
pub use notify::{fuzz_notifications, NotificationError};
pub use profiles::{Decision, ProfileError, Profiles};
