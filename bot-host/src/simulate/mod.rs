//! `bot-host simulate`: plays the Teams platform's side of compliance-recorded calls against a
//! running bot-host (docs/live.md is the contract).
//!
//! - [`scenario`]: the catalogue of call situations and their expected outcome under
//!   `bot-host/sim-profiles.toml`;
//! - [`notify`]: the Graph-style notifications;
//! - [`sdp`]: the offer the simulator makes and the answer it reads;
//! - [`media`]: the RTP/SRTP streams, one per speaker, and network impairments;
//! - [`run`]: the driver ([`simulate`]).

pub mod media;
pub mod notify;
pub mod run;
pub mod scenario;
pub mod sdp;

pub use run::{simulate, Pacing, SimReport, SimulateOptions};
