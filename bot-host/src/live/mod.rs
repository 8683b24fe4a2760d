//! The live bot's media plane and spool (docs/live.md, "Media plane" and "Spool"):
//! SDP offer/answer for the forwarder's RTP/SRTP, the lock-free socket-to-worker pipeline
//! that drives media-core, the plane's counters, and the spool that seals recordings.

pub mod pipeline;
pub mod sdp;
pub mod spool;
pub mod stats;
pub mod whip_sdp;

pub use pipeline::{
    CallMedia, MediaConfig, MediaPlane, PlaneError, PlaneEvent, RosterEntry, RouteKey, SealTicket,
};
pub use sdp::{answer_sdp, fuzz_sdp, parse_offer, Codec, Direction, MediaOffer, OfferError};
pub use spool::{Sealed, Spool, SpoolError};
pub use stats::{DropReason, PlaneStats};
