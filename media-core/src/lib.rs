//! media-core: the sans-IO heart of the compliance recorder.
//!
//! Everything here takes bytes and a caller-supplied `now` and returns events and bytes;
//! nothing reads the clock, opens a socket or sleeps, so a whole call can be replayed in
//! memory, deterministically, in milliseconds.
//!
//! The per-packet path, in order:
//! [`srtp`] unprotect in place -> [`rtp`] parse (borrowed, payload not copied) ->
//! [`reorder`] per-SSRC ordering with loss/duplicate/late accounting ->
//! [`timeline`] mapping of RTP time onto the participant's track time ->
//! [`ogg`] Ogg Opus pages built in reused buffers.
//! [`recording`] ties them together per participant track.

#[doc(hidden)]
pub mod fuzz_corpus;
pub mod merge;
pub mod mix;
pub mod ogg;
pub mod opus;
pub mod recording;
pub mod reorder;
pub mod rtcp;
pub mod rtp;
pub mod sdes;
pub mod segments;
pub mod seq;
pub mod srtp;
pub mod time;
pub mod timeline;
pub mod transcode;
pub mod window;

#[cfg(test)]
mod test_util;
