//! bot-host: the compliance recording bot.
//!
//! The core (always built): [`capture`] and [`replay`] (a captured call), [`pair`] (the
//! dual-bot merge of captures), [`live`] (the lock-free media plane and the spool) and
//! [`signaling`] (notifications, recording profiles, the call state machine; sans-IO).
//! The `server` feature (default) adds the service: `host` (`bot-host serve`), `whip`
//! (WebRTC ingest), `report` (metadata to the store) and `simulate` (the platform's side).

pub mod capture;
#[cfg(feature = "server")]
pub mod host;
pub mod live;
pub mod pair;
#[cfg(feature = "server")]
pub mod profile_sync;
pub mod replay;
#[cfg(feature = "server")]
pub mod report;
pub mod signaling;
#[cfg(feature = "server")]
pub mod simulate;
#[cfg(feature = "server")]
pub mod whip;
