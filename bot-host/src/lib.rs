//! bot-host: the compliance recording bot.
//!
//! For now it records captured calls (`bot-host replay`); the live bot (signaling webhook,
//! sockets, WebRTC) builds on the same [`replay`] driver of media-core.

pub mod capture;
pub mod host;
pub mod live;
pub mod pair;
pub mod replay;
pub mod report;
pub mod signaling;
pub mod simulate;
pub mod whip;
