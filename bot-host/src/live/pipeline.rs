//! The live media plane: UDP sockets -> bounded lock-free queues -> sharded workers ->
//! media-core -> spool (docs/live.md, "Media plane").
//!
//! N reader threads receive on `SO_REUSEPORT` sockets of one port and push each datagram,
//! with its arrival time, into the queue of worker `hash(source) % workers` without ever
//! blocking: a full queue is a counted drop. A call is owned by the worker its source address
//! hashes to, and its control messages (open, roster, close) travel on that same queue, so
//! they are ordered with its packets and the per-packet path takes no lock: every map a
//! worker touches is its own. Closing a call finishes its tracks on the worker and hands the
//! directory to a sealer thread, so mixing a long call never stalls other calls' packets.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use media_core::recording::{ParticipantTrack, TrackConfig, TrackStats, PRE_SKIP};
use media_core::rtp;
use media_core::time::{format_rfc3339, samples48_to_ms, Micros};
use rustc_hash::{FxBuildHasher, FxHashMap};
use serde_json::{json, Value};

use super::sdp::{Codec, MediaOffer};
use super::spool::{SealTrack, Sealed, Spool, SpoolError};
use super::stats::{Counters, DropReason, PlaneStats, TRACK_COUNTERS};
use crate::replay::write_json;

/// How the plane runs.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// UDP address to receive media on (port 0 = any free port).
    pub listen: SocketAddr,
    /// Reader threads (each with its own `SO_REUSEPORT` socket).
    pub readers: usize,
    /// Worker threads; calls are sharded over them by source address.
    pub workers: usize,
    /// Capacity of each worker's queue, in messages.
    pub queue_capacity: usize,
    /// Where recordings are written.
    pub spool: Spool,
    /// A call that receives nothing for this long is reported ([`PlaneEvent::MediaTimeout`]).
    pub media_timeout: Duration,
    /// Tracks per call for SSRCs not in the roster; packets of further unlisted SSRCs are
    /// dropped as `unknown_ssrc`, so a flood of SSRCs can neither exhaust memory nor take
    /// the place of a listed speaker who starts late.
    pub max_tracks_per_call: usize,
    /// Longest time written audio stays in memory (open Ogg page, then file buffer): a
    /// killed process loses at most about this much.
    pub flush_interval: Duration,
    /// Kernel receive buffer per socket, bytes.
    pub socket_buffer: usize,
}

impl MediaConfig {
    /// Defaults: 2 readers, 2 workers, 8192-message queues, 30 s media timeout, 64 tracks
    /// per call, 500 ms flushes.
    pub fn new(listen: SocketAddr, spool: Spool) -> Self {
        MediaConfig {
            listen,
            readers: 2,
            workers: 2,
            queue_capacity: 8192,
            spool,
            media_timeout: Duration::from_secs(30),
            max_tracks_per_call: 64,
            flush_interval: Duration::from_millis(500),
            socket_buffer: 4 << 20,
        }
    }
}

/// Routes packets to a call: the source address UDP packets come from, or a synthetic key
/// for packets injected by another transport (WebRTC), which must not collide with a real
/// forwarder address (e.g. an address in 0.0.0.0/8 with a per-session port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteKey(pub SocketAddr);

/// One participant of the call's roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    /// Media source id of the participant's audio (= RTP SSRC).
    pub msi: u32,
    /// Display name or id, written into meta.json.
    pub participant: String,
    /// Whether the participant is muted.
    pub muted: bool,
}

/// A call to record.
#[derive(Debug, Clone)]
pub struct CallMedia {
    /// The platform's call id.
    pub call_id: String,
    /// The recording's id: the spool directory name (A-Z a-z 0-9 . _ -).
    pub recording_id: String,
    /// The forwarder's offer (its `remote` is the route key).
    pub offer: MediaOffer,
    /// The targeted user's participant name: the mixed download is then stereo.
    pub targeted: Option<String>,
    /// Whatever the host wants in meta.json (an object; its keys go to the top level).
    pub meta: Value,
}

/// What the plane reports.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaneEvent {
    /// A recording is in `sealed/` (closed, shut down or recovered at start).
    Sealed {
        /// The recording.
        recording_id: String,
        /// The call (empty for a recovered recording whose meta.json was lost).
        call_id: String,
        /// `sealed/<id>`.
        path: PathBuf,
        /// Recovered after a crash, or a write failed while recording.
        partial: bool,
    },
    /// No packet for the configured media timeout.
    MediaTimeout {
        /// The call.
        call_id: String,
        /// Its recording.
        recording_id: String,
    },
    /// Writing or sealing a recording failed.
    Failed {
        /// The call.
        call_id: String,
        /// Its recording.
        recording_id: String,
        /// What failed.
        error: String,
    },
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// The spool refused the recording (bad or duplicate id, disk error).
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Another open call already receives from this address.
    #[error("a call already receives media from {0}")]
    SourceInUse(SocketAddr),
    /// Another open call already has this recording id.
    #[error("recording {0} is already open")]
    RecordingOpen(String),
    /// No open call has this recording id.
    #[error("no open recording {0}")]
    UnknownRecording(String),
    /// The worker's queue stayed full: the host cannot take the call now
    /// (`RecordingResourceUnavailable`).
    #[error("media plane busy: worker queue full")]
    Busy,
    /// The plane is shut down.
    #[error("media plane stopped")]
    Stopped,
}

/// How long a control request may wait for room in a full queue.
const CONTROL_WAIT: Duration = Duration::from_secs(2);

/// Largest datagram read; RTP audio is far smaller, and anything cut would fail SRTP anyway.
const MAX_DATAGRAM: usize = 2048;

/// Receive buffer chunk: datagrams are sliced out of it, so a reader allocates once per
/// chunk, not per packet.
const CHUNK: usize = 256 * 1024;

/// How often a reader with no traffic checks for shutdown.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// Absolute limit on tracks per call, roster members included.
const HARD_TRACK_LIMIT: usize = 1024;

/// The live clock shared by readers and workers: monotonic, counted from the Unix time at
/// start, so arrival times never step back and still read as wall-clock time in files.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    unix_at_start: u64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            start: Instant::now(),
            unix_at_start: super::spool::unix_micros(),
        }
    }

    fn now(&self) -> Micros {
        Micros(self.unix_at_start + self.start.elapsed().as_micros() as u64)
    }
}

/// An IPv4-mapped IPv6 source (a dual-stack socket) as the IPv4 address an offer names.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

fn shard(key: &SocketAddr, workers: usize) -> usize {
    (FxBuildHasher.hash_one(key) % workers as u64) as usize
}

enum CloseReply {
    NotHere,
    Done(Result<Sealed, SpoolError>),
}

enum Msg {
    Packet {
        src: SocketAddr,
        data: Bytes,
        arrival: Micros,
    },
    /// Datagrams one `recvmmsg` read for this worker: one queue operation (and at most one
    /// wake-up) for up to [`BATCH`] packets instead of one each.
    Batch {
        packets: Vec<(SocketAddr, Bytes)>,
        arrival: Micros,
    },
    Open {
        call: Box<CallMedia>,
        reply: Sender<Result<(), PlaneError>>,
    },
    Roster {
        recording_id: Arc<str>,
        roster: Arc<Vec<RosterEntry>>,
    },
    Close {
        recording_id: Arc<str>,
        meta: Arc<Value>,
        reply: Sender<CloseReply>,
    },
    Shutdown,
}

/// Learns when a closed recording is sealed.
pub struct SealTicket {
    recording_id: String,
    rx: Receiver<CloseReply>,
    workers: usize,
}

impl SealTicket {
    /// Blocks until the recording is sealed (or sealing failed).
    pub fn wait(self) -> Result<Sealed, PlaneError> {
        let mut not_here = 0;
        while let Ok(reply) = self.rx.recv() {
            match reply {
                CloseReply::NotHere => {
                    not_here += 1;
                    if not_here == self.workers {
                        return Err(PlaneError::UnknownRecording(self.recording_id));
                    }
                }
                CloseReply::Done(r) => return r.map_err(PlaneError::from),
            }
        }
        Err(PlaneError::Stopped)
    }

    /// The recording this ticket is for.
    pub fn recording_id(&self) -> &str {
        &self.recording_id
    }
}

/// Work for the I/O thread. Workers never touch the disk on their packet path: a file system
/// that stalls (ext4 writeback, a busy disk) would stall every call of the worker and overflow
/// its queue. Messages are handled in order, so a call's last pages and live meta.json are on
/// disk before its [`IoMsg::Seal`] reaches the sealer.
enum IoMsg {
    /// Append Ogg pages to a track file (created on first write).
    Write {
        path: PathBuf,
        data: Vec<u8>,
        recording_id: Arc<str>,
        call_id: Arc<str>,
    },
    /// Replace a recording's live meta.json.
    Meta {
        path: PathBuf,
        value: Value,
        recording_id: Arc<str>,
        call_id: Arc<str>,
    },
    /// Close the recording's files and pass it to the sealer.
    Seal(SealJob),
}

fn io_loop(
    rx: Receiver<IoMsg>,
    sealer: Sender<SealJob>,
    counters: Arc<Counters>,
    events: Sender<PlaneEvent>,
) {
    let mut files: FxHashMap<PathBuf, File> = FxHashMap::default();
    let mut errors: FxHashMap<Arc<str>, String> = FxHashMap::default();
    let fail = |errors: &mut FxHashMap<Arc<str>, String>,
                recording_id: &Arc<str>,
                call_id: &Arc<str>,
                error: String| {
        counters.write_errors.fetch_add(1, Relaxed);
        if !errors.contains_key(recording_id) {
            let _ = events.send(PlaneEvent::Failed {
                call_id: call_id.to_string(),
                recording_id: recording_id.to_string(),
                error: error.clone(),
            });
            errors.insert(recording_id.clone(), error);
        }
    };
    for msg in rx {
        match msg {
            IoMsg::Write {
                path,
                data,
                recording_id,
                call_id,
            } => {
                let file = match files.entry(path) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        match File::options().create(true).append(true).open(e.key()) {
                            Ok(f) => e.insert(f),
                            Err(err) => {
                                let m = format!("{}: {err}", e.key().display());
                                fail(&mut errors, &recording_id, &call_id, m);
                                continue;
                            }
                        }
                    }
                };
                // On error the pages are dropped, not retried forever: the recording is
                // marked partial when sealed.
                if let Err(err) = file.write_all(&data) {
                    fail(
                        &mut errors,
                        &recording_id,
                        &call_id,
                        format!("write: {err}"),
                    );
                }
            }
            IoMsg::Meta {
                path,
                value,
                recording_id,
                call_id,
            } => {
                if let Err(e) = write_json(&path, &value) {
                    fail(&mut errors, &recording_id, &call_id, format!("{e:#}"));
                }
            }
            IoMsg::Seal(mut job) => {
                let dir = job.dir.clone();
                files.retain(|p, _| !p.starts_with(&dir));
                for t in &mut job.tracks {
                    if t.file.as_ref().is_some_and(|f| !dir.join(f).exists()) {
                        t.file = None;
                    }
                }
                let key: Arc<str> = job.recording_id.as_str().into();
                if let Some(e) = errors.remove(&key) {
                    job.partial = true;
                    if let Value::Object(m) = &mut job.meta {
                        m.entry("write_error").or_insert(json!(e));
                    }
                }
                if let Err(e) = sealer.send(job) {
                    if let Some(reply) = e.0.reply {
                        let _ = reply.send(CloseReply::Done(Err(SpoolError::NotActive(
                            e.0.recording_id,
                        ))));
                    }
                }
            }
        }
    }
}

struct SealJob {
    recording_id: String,
    /// `active/<recording id>`.
    dir: PathBuf,
    call_id: String,
    tracks: Vec<SealTrack>,
    meta: Value,
    partial: bool,
    /// The close request's reply; `None` when the shutdown seals the call, which then
    /// collects the result.
    reply: Option<Sender<CloseReply>>,
}

/// The running media plane. Every method may be called from any thread.
pub struct MediaPlane {
    local: SocketAddr,
    queues: Vec<Sender<Msg>>,
    counters: Arc<Counters>,
    events_rx: Receiver<PlaneEvent>,
    stop: Arc<AtomicBool>,
    readers: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    io: Option<JoinHandle<()>>,
    sealer: Option<JoinHandle<Vec<Sealed>>>,
    clock: Clock,
}

impl MediaPlane {
    /// Recovers what a previous run left in the spool's `active/` (each reported as a
    /// [`PlaneEvent::Sealed`] with `partial`, or [`PlaneEvent::Failed`]), binds the media
    /// port and starts the threads.
    pub fn start(config: MediaConfig) -> io::Result<MediaPlane> {
        let readers = config.readers.max(1);
        let workers = config.workers.max(1);
        let (events_tx, events_rx) = unbounded();
        for (id, result) in config.spool.recover() {
            let _ = events_tx.send(match result {
                Ok(s) => PlaneEvent::Sealed {
                    call_id: sealed_call_id(&s),
                    recording_id: s.recording_id,
                    path: s.path,
                    partial: s.partial,
                },
                Err(e) => PlaneEvent::Failed {
                    call_id: String::new(),
                    recording_id: id,
                    error: e.to_string(),
                },
            });
        }

        let mut sockets = Vec::with_capacity(readers);
        let first = bind_reuseport(config.listen, config.socket_buffer)?;
        let local = first.local_addr()?;
        sockets.push(first);
        for _ in 1..readers {
            sockets.push(bind_reuseport(local, config.socket_buffer)?);
        }

        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let clock = Clock::new();
        let (seal_tx, seal_rx) = unbounded::<SealJob>();
        let sealer = {
            let spool = config.spool.clone();
            let events = events_tx.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("media-sealer".into())
                .spawn(move || sealer_loop(spool, seal_rx, events, counters))?
        };

        let (io_tx, io_rx) = unbounded::<IoMsg>();
        let io = {
            let seal_tx = seal_tx.clone();
            let events = events_tx.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("media-io".into())
                .spawn(move || io_loop(io_rx, seal_tx, counters, events))?
        };

        let mut queues = Vec::with_capacity(workers);
        let mut worker_handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = bounded::<Msg>(config.queue_capacity.max(1));
            queues.push(tx);
            let mut w = Worker {
                rx,
                counters: counters.clone(),
                events: events_tx.clone(),
                io: io_tx.clone(),
                spool: config.spool.clone(),
                config: config.clone(),
                clock,
                calls: FxHashMap::default(),
                by_source: FxHashMap::default(),
                by_recording: FxHashMap::default(),
                timers: BinaryHeap::new(),
                next_call: 0,
                buf: Vec::with_capacity(MAX_DATAGRAM),
            };
            worker_handles.push(
                std::thread::Builder::new()
                    .name(format!("media-worker-{i}"))
                    .spawn(move || w.run())?,
            );
        }
        drop(seal_tx);
        drop(io_tx);

        let mut reader_handles = Vec::with_capacity(readers);
        for (i, socket) in sockets.into_iter().enumerate() {
            let queues = queues.clone();
            let counters = counters.clone();
            let stop = stop.clone();
            reader_handles.push(
                std::thread::Builder::new()
                    .name(format!("media-reader-{i}"))
                    .spawn(move || reader_loop(socket, queues, counters, stop, clock))?,
            );
        }
        Ok(MediaPlane {
            local,
            queues,
            counters,
            events_rx,
            stop,
            readers: reader_handles,
            workers: worker_handles,
            io: Some(io),
            sealer: Some(sealer),
            clock,
        })
    }

    /// The bound media address (what the SDP answer advertises).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The plane's clock (µs, Unix-based, monotonic): the `arrival` to give
    /// [`MediaPlane::inject_rtp`].
    pub fn now(&self) -> Micros {
        self.clock.now()
    }

    /// Starts recording a call: creates `active/<recording id>` and routes the offer's
    /// source address to a worker. Returns once the worker owns the call.
    pub fn open_call(&self, call: CallMedia) -> Result<(), PlaneError> {
        let mut call = call;
        call.offer.remote = canonical(call.offer.remote);
        let worker = shard(&call.offer.remote, self.queues.len());
        let (tx, rx) = bounded(1);
        let msg = Msg::Open {
            call: Box::new(call),
            reply: tx,
        };
        self.control(worker, msg)?;
        rx.recv().map_err(|_| PlaneError::Stopped)?
    }

    /// Replaces the call's roster: names for MSIs (new tracks take them; tracks already
    /// written keep their `<msi>.ogg` file and get the new name in meta.json).
    ///
    /// An unknown recording id is ignored (a roster update may race the call's end).
    pub fn update_roster(
        &self,
        recording_id: &str,
        roster: Vec<RosterEntry>,
    ) -> Result<(), PlaneError> {
        let recording_id: Arc<str> = recording_id.into();
        let roster = Arc::new(roster);
        // The host does not know which worker owns the call; the owner applies it, the
        // others ignore it.
        for w in 0..self.queues.len() {
            self.control(
                w,
                Msg::Roster {
                    recording_id: recording_id.clone(),
                    roster: roster.clone(),
                },
            )?;
        }
        Ok(())
    }

    /// Ends a call: its tracks are finished on its worker and the recording is sealed with
    /// `meta` (an object, merged over the open call's meta) on the sealer thread. The ticket
    /// tells when; a [`PlaneEvent::Sealed`] is sent too.
    pub fn close_call(&self, recording_id: &str, meta: Value) -> Result<SealTicket, PlaneError> {
        let (tx, rx) = bounded(self.queues.len());
        let recording_id_arc: Arc<str> = recording_id.into();
        let meta = Arc::new(meta);
        for w in 0..self.queues.len() {
            self.control(
                w,
                Msg::Close {
                    recording_id: recording_id_arc.clone(),
                    meta: meta.clone(),
                    reply: tx.clone(),
                },
            )?;
        }
        Ok(SealTicket {
            recording_id: recording_id.into(),
            rx,
            workers: self.queues.len(),
        })
    }

    /// Feeds a plain (already decrypted) RTP or RTCP packet from another transport (WebRTC)
    /// to the call opened with `offer.remote == key.0`. Never blocks: a full queue is a
    /// counted drop.
    pub fn inject_rtp(&self, key: RouteKey, packet: Bytes, arrival: Micros) {
        self.counters.packets.fetch_add(1, Relaxed);
        self.counters.bytes.fetch_add(packet.len() as u64, Relaxed);
        let src = canonical(key.0);
        let w = shard(&src, self.queues.len());
        let msg = Msg::Packet {
            src,
            data: packet,
            arrival,
        };
        if self.queues[w].try_send(msg).is_err() {
            self.counters.count_drop(DropReason::QueueFull);
        }
    }

    /// The plane's events (every clone receives a share; use one consumer).
    pub fn events(&self) -> Receiver<PlaneEvent> {
        self.events_rx.clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PlaneStats {
        self.counters
            .snapshot(self.queues.iter().map(|q| q.len()).collect())
    }

    /// Stops receiving, seals every open call and returns the recordings sealed by the
    /// shutdown (failures are reported as [`PlaneEvent::Failed`]).
    pub fn shutdown(mut self) -> Vec<Sealed> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Vec<Sealed> {
        self.stop.store(true, Relaxed);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        for q in &self.queues {
            // Blocking send: every packet already queued is processed before the seal.
            let _ = q.send(Msg::Shutdown);
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        // The workers' last writes and seal requests drain through the I/O thread first.
        if let Some(io) = self.io.take() {
            let _ = io.join();
        }
        self.sealer
            .take()
            .and_then(|s| s.join().ok())
            .unwrap_or_default()
    }

    fn control(&self, worker: usize, msg: Msg) -> Result<(), PlaneError> {
        match self.queues[worker].send_timeout(msg, CONTROL_WAIT) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => Err(PlaneError::Busy),
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => Err(PlaneError::Stopped),
        }
    }
}

impl Drop for MediaPlane {
    fn drop(&mut self) {
        if self.sealer.is_some() {
            self.stop_all();
        }
    }
}

fn sealed_call_id(s: &Sealed) -> String {
    std::fs::read(s.path.join("meta.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|m| m["call_id"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn bind_reuseport(addr: SocketAddr, buffer: usize) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    // The kernel may cap it (net.core.rmem_max); a smaller buffer only means earlier drops.
    let _ = s.set_recv_buffer_size(buffer);
    s.bind(&addr.into())?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(s.into())
}

/// Datagrams read per `recvmmsg`, and the most one batch hands a worker.
const BATCH: usize = 32;

/// The sender of a datagram as `recvmmsg` filled it in.
fn sockaddr_of(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match i32::from(storage.ss_family) {
        libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET, length checked).
            let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the kernel wrote a sockaddr_in6 (family AF_INET6, length checked).
            let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// One reader thread: `recvmmsg` up to [`BATCH`] datagrams per system call, then one batch per
/// worker through its queue. A full queue drops that batch, counted; the reader never blocks
/// on a worker.
fn reader_loop(
    socket: UdpSocket,
    queues: Vec<Sender<Msg>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    clock: Clock,
) {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; MAX_DATAGRAM]; BATCH];
    // SAFETY (all three): plain C structs for which all-zero is a valid value.
    let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut chunk = BytesMut::with_capacity(CHUNK);
    let mut batches: Vec<Vec<(SocketAddr, Bytes)>> = (0..queues.len())
        .map(|_| Vec::with_capacity(BATCH))
        .collect();
    while !stop.load(Relaxed) {
        for i in 0..BATCH {
            iovs[i] = libc::iovec {
                iov_base: bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            };
            hdrs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
            hdrs[i].msg_hdr.msg_control = std::ptr::null_mut();
            hdrs[i].msg_hdr.msg_controllen = 0;
            hdrs[i].msg_hdr.msg_flags = 0;
            hdrs[i].msg_len = 0;
        }
        // MSG_WAITFORONE: block (up to the socket's read timeout, for the stop check) for the
        // first datagram, then take whatever else is queued without waiting.
        // SAFETY: `hdrs` holds BATCH headers whose buffers, iovecs and addresses live in the
        // vectors above for the whole call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        // Time-outs (EAGAIN), signals (EINTR) and ICMP errors of one peer (ECONNREFUSED).
        let Ok(n) = usize::try_from(n) else {
            continue;
        };
        let arrival = clock.now();
        for i in 0..n {
            let len = (hdrs[i].msg_len as usize).min(MAX_DATAGRAM);
            counters.packets.fetch_add(1, Relaxed);
            counters.bytes.fetch_add(len as u64, Relaxed);
            let Some(src) = sockaddr_of(&addrs[i], hdrs[i].msg_hdr.msg_namelen) else {
                counters.count_drop(DropReason::UnknownSource);
                continue;
            };
            if chunk.capacity() < MAX_DATAGRAM {
                chunk = BytesMut::with_capacity(CHUNK);
            }
            chunk.extend_from_slice(&bufs[i][..len]);
            let data = chunk.split().freeze();
            let src = canonical(src);
            batches[shard(&src, queues.len())].push((src, data));
        }
        for (w, batch) in batches.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let count = batch.len() as u64;
            let packets = std::mem::replace(batch, Vec::with_capacity(BATCH));
            match queues[w].try_send(Msg::Batch { packets, arrival }) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => counters.count_drops(DropReason::QueueFull, count),
                // A worker that died (a bug) must not take the other workers' calls with it.
                Err(TrySendError::Disconnected(_)) => {
                    counters.count_drops(DropReason::WorkerGone, count)
                }
            }
        }
    }
}

fn sealer_loop(
    spool: Spool,
    jobs: Receiver<SealJob>,
    events: Sender<PlaneEvent>,
    counters: Arc<Counters>,
) -> Vec<Sealed> {
    let mut sealed = Vec::new();
    for job in jobs {
        let result = spool.seal(&job.recording_id, &job.tracks, job.meta, job.partial);
        match &result {
            Ok(s) => {
                counters.calls_sealed.fetch_add(1, Relaxed);
                let _ = events.send(PlaneEvent::Sealed {
                    recording_id: s.recording_id.clone(),
                    call_id: job.call_id.clone(),
                    path: s.path.clone(),
                    partial: s.partial,
                });
                if job.reply.is_none() {
                    sealed.push(s.clone());
                }
            }
            Err(e) => {
                counters.seal_failures.fetch_add(1, Relaxed);
                let _ = events.send(PlaneEvent::Failed {
                    call_id: job.call_id.clone(),
                    recording_id: job.recording_id.clone(),
                    error: e.to_string(),
                });
            }
        }
        if let Some(reply) = job.reply {
            let _ = reply.send(CloseReply::Done(result));
        }
    }
    sealed
}

struct Track {
    msi: u32,
    track: ParticipantTrack,
    file_name: String,
    /// Pages released by media-core and not yet handed to the I/O thread.
    pending: Vec<u8>,
    start_ms: f64,
    /// The deadline queued in the worker's timer heap, if any.
    scheduled: Option<Micros>,
}

struct Call {
    call: CallMedia,
    dir: PathBuf,
    roster: FxHashMap<u32, (String, bool)>,
    tracks: Vec<Track>,
    by_ssrc: FxHashMap<u32, usize>,
    first_packet: Option<Micros>,
    last_activity: Micros,
    timed_out: bool,
    unknown_ssrc: u64,
    /// Tracks of SSRCs that were not in the roster when they appeared.
    unlisted_tracks: usize,
    write_error: Option<String>,
    io: Sender<IoMsg>,
    ids: (Arc<str>, Arc<str>),
}

impl Call {
    fn name_of(&self, msi: u32) -> String {
        self.roster
            .get(&msi)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| format!("msi-{msi}"))
    }

    /// meta.json while recording: what recovery needs if the process dies.
    fn live_meta(&self) -> Value {
        let mut m = base_meta(&self.call);
        m.insert("status".into(), json!("recording"));
        m.insert("roster".into(), roster_json(&self.roster));
        m.insert(
            "tracks".into(),
            Value::Array(
                self.tracks
                    .iter()
                    .map(|t| {
                        json!({
                            "msi": t.msi,
                            "participant": self.name_of(t.msi),
                            "file": t.file_name,
                            "start_ms": t.start_ms,
                        })
                    })
                    .collect(),
            ),
        );
        Value::Object(m)
    }

    /// Queues the live meta.json for the I/O thread (a track started, the roster changed).
    fn write_live_meta(&mut self) {
        let _ = self.io.send(IoMsg::Meta {
            path: self.dir.join("meta.json"),
            value: self.live_meta(),
            recording_id: self.ids.0.clone(),
            call_id: self.ids.1.clone(),
        });
    }

    /// Hands every track's released pages to the I/O thread.
    fn send_pending(&mut self) {
        for t in &mut self.tracks {
            if t.pending.is_empty() {
                continue;
            }
            let _ = self.io.send(IoMsg::Write {
                path: self.dir.join(&t.file_name),
                data: std::mem::take(&mut t.pending),
                recording_id: self.ids.0.clone(),
                call_id: self.ids.1.clone(),
            });
        }
    }
}

fn base_meta(call: &CallMedia) -> serde_json::Map<String, Value> {
    let mut m = match &call.meta {
        Value::Object(m) => m.clone(),
        Value::Null => serde_json::Map::new(),
        other => {
            let mut m = serde_json::Map::new();
            m.insert("host".into(), other.clone());
            m
        }
    };
    m.insert("call_id".into(), json!(call.call_id));
    m.insert("recording_id".into(), json!(call.recording_id));
    m.insert("targeted".into(), json!(call.targeted));
    m.insert(
        "media".into(),
        json!({
            "remote": call.offer.remote.to_string(),
            "protocol": call.offer.protocol,
            "srtp": call.offer.srtp.as_ref().map(|k| k.profile().sdes_name()),
            "audio_level_id": call.offer.audio_level_id,
        }),
    );
    m
}

fn roster_json(roster: &FxHashMap<u32, (String, bool)>) -> Value {
    let mut v: Vec<_> = roster.iter().collect();
    v.sort_by_key(|(msi, _)| **msi);
    Value::Array(
        v.into_iter()
            .map(|(msi, (name, muted))| json!({"msi": msi, "participant": name, "muted": muted}))
            .collect(),
    )
}

struct Worker {
    rx: Receiver<Msg>,
    counters: Arc<Counters>,
    events: Sender<PlaneEvent>,
    io: Sender<IoMsg>,
    spool: Spool,
    config: MediaConfig,
    clock: Clock,
    calls: FxHashMap<u64, Call>,
    by_source: FxHashMap<SocketAddr, u64>,
    by_recording: FxHashMap<Arc<str>, u64>,
    /// (deadline, call, track) of media-core timeouts; stale entries are skipped.
    timers: BinaryHeap<Reverse<(Micros, u64, usize)>>,
    next_call: u64,
    buf: Vec<u8>,
}

impl Worker {
    fn run(&mut self) {
        let tick = Micros(self.config.flush_interval.as_micros().max(1) as u64);
        let mut next_tick = self.clock.now() + tick;
        loop {
            let now = self.clock.now();
            let deadline = self
                .timers
                .peek()
                .map_or(next_tick, |Reverse((t, ..))| (*t).min(next_tick));
            let wait = Duration::from_micros(deadline.saturating_since(now).0);
            match self.rx.recv_timeout(wait) {
                Ok(Msg::Packet { src, data, arrival }) => self.packet(src, &data, arrival),
                Ok(Msg::Batch { packets, arrival }) => {
                    for (src, data) in packets {
                        self.packet(src, &data, arrival);
                    }
                }
                Ok(Msg::Open { call, reply }) => {
                    let _ = reply.send(self.open(*call));
                }
                Ok(Msg::Roster {
                    recording_id,
                    roster,
                }) => self.roster(&recording_id, &roster),
                Ok(Msg::Close {
                    recording_id,
                    meta,
                    reply,
                }) => self.close(&recording_id, &meta, reply),
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = self.clock.now();
            self.fire_timers(now);
            if now >= next_tick {
                self.tick(now);
                next_tick = now + tick;
            }
        }
        let ids: Vec<Arc<str>> = self.by_recording.keys().cloned().collect();
        for id in ids {
            self.finish_call(&id, &Value::Null, None);
        }
    }

    fn packet(&mut self, src: SocketAddr, data: &[u8], arrival: Micros) {
        let started = Instant::now();
        let Some(&cid) = self.by_source.get(&src) else {
            self.counters.count_drop(DropReason::UnknownSource);
            return;
        };
        let Some(call) = self.calls.get_mut(&cid) else {
            self.counters.count_drop(DropReason::UnknownSource);
            return;
        };
        call.last_activity = arrival;
        call.timed_out = false;
        // The SSRC is in clear in SRTP/SRTCP: RTP bytes 8..12, RTCP sender SSRC 4..8.
        let ssrc_at = if rtp::is_rtcp(data) { 4 } else { 8 };
        let Some(ssrc) = data
            .get(ssrc_at..ssrc_at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            self.counters.count_drop(DropReason::Runt);
            return;
        };
        let idx = match call.by_ssrc.get(&ssrc) {
            Some(&i) => i,
            None => {
                let in_roster = call.roster.contains_key(&ssrc);
                let full = if in_roster {
                    call.tracks.len() >= HARD_TRACK_LIMIT
                } else {
                    call.unlisted_tracks >= self.config.max_tracks_per_call
                };
                if full {
                    call.unknown_ssrc += 1;
                    self.counters.count_drop(DropReason::UnknownSsrc);
                    return;
                }
                if !in_roster {
                    call.unlisted_tracks += 1;
                }
                let first = *call.first_packet.get_or_insert(arrival);
                let i = new_track(call, ssrc, data, arrival, first, &self.config);
                call.write_live_meta();
                i
            }
        };
        call.first_packet.get_or_insert(arrival);
        self.buf.clear();
        self.buf.extend_from_slice(data);
        call.tracks[idx]
            .track
            .handle_datagram(arrival, &mut self.buf);
        drain_idx(call, idx, &self.counters);
        let t = &mut call.tracks[idx];
        if let Some(deadline) = t.track.poll_timeout() {
            if t.scheduled.is_none_or(|s| deadline < s) {
                t.scheduled = Some(deadline);
                self.timers.push(Reverse((deadline, cid, idx)));
            }
        }
        self.counters
            .observe_ns(started.elapsed().as_nanos().min(u64::MAX as u128) as u64);
    }

    fn fire_timers(&mut self, now: Micros) {
        while let Some(&Reverse((deadline, cid, idx))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let Some(call) = self.calls.get_mut(&cid) else {
                continue;
            };
            let Some(t) = call.tracks.get_mut(idx) else {
                continue;
            };
            if t.scheduled != Some(deadline) {
                continue;
            }
            t.scheduled = None;
            t.track.handle_timeout(now);
            drain_idx(call, idx, &self.counters);
            let t = &mut call.tracks[idx];
            if let Some(next) = t.track.poll_timeout() {
                t.scheduled = Some(next);
                self.timers.push(Reverse((next, cid, idx)));
            }
        }
    }

    /// Every flush interval: released pages to the I/O thread, media timeouts.
    fn tick(&mut self, now: Micros) {
        let timeout = Micros(self.config.media_timeout.as_micros() as u64);
        for call in self.calls.values_mut() {
            call.send_pending();
            if !call.timed_out && now.saturating_since(call.last_activity) >= timeout {
                call.timed_out = true;
                let _ = self.events.send(PlaneEvent::MediaTimeout {
                    call_id: call.call.call_id.clone(),
                    recording_id: call.call.recording_id.clone(),
                });
            }
        }
    }

    fn open(&mut self, call: CallMedia) -> Result<(), PlaneError> {
        let remote = call.offer.remote;
        if self.by_source.contains_key(&remote) {
            return Err(PlaneError::SourceInUse(remote));
        }
        let id: Arc<str> = call.recording_id.as_str().into();
        if self.by_recording.contains_key(&id) {
            return Err(PlaneError::RecordingOpen(call.recording_id));
        }
        let dir = self.spool.create_recording(&call.recording_id)?;
        let now = self.clock.now();
        let c_call_id: Arc<str> = call.call_id.as_str().into();
        let mut c = Call {
            call,
            dir,
            roster: FxHashMap::default(),
            tracks: Vec::new(),
            by_ssrc: FxHashMap::default(),
            first_packet: None,
            last_activity: now,
            timed_out: false,
            unknown_ssrc: 0,
            unlisted_tracks: 0,
            write_error: None,
            io: self.io.clone(),
            ids: (id.clone(), c_call_id),
        };
        // The first meta.json is written here, synchronously: a call whose directory cannot
        // take it is refused rather than recorded nowhere.
        if let Err(e) = write_json(&c.dir.join("meta.json"), &c.live_meta()) {
            c.write_error = Some(format!("{e:#}"));
        }
        if let Some(e) = c.write_error.take() {
            // Nothing recorded yet: the empty directory is ours to remove.
            let _ = std::fs::remove_dir_all(&c.dir);
            return Err(PlaneError::Spool(SpoolError::Io {
                what: "cannot write meta.json in",
                path: c.dir.clone(),
                source: io::Error::other(e),
            }));
        }
        let cid = self.next_call;
        self.next_call += 1;
        self.by_source.insert(remote, cid);
        self.by_recording.insert(id, cid);
        self.calls.insert(cid, c);
        self.counters.active_calls.fetch_add(1, Relaxed);
        self.counters.calls_opened.fetch_add(1, Relaxed);
        Ok(())
    }

    fn roster(&mut self, recording_id: &str, roster: &[RosterEntry]) {
        let Some(call) = self
            .by_recording
            .get(recording_id)
            .and_then(|cid| self.calls.get_mut(cid))
        else {
            return;
        };
        call.roster = roster
            .iter()
            .map(|e| (e.msi, (e.participant.clone(), e.muted)))
            .collect();
        call.write_live_meta();
    }

    fn close(&mut self, recording_id: &str, meta: &Value, reply: Sender<CloseReply>) {
        if self.by_recording.contains_key(recording_id) {
            self.finish_call(recording_id, meta, Some(reply));
        } else {
            let _ = reply.send(CloseReply::NotHere);
        }
    }

    /// Finishes every track of a call and hands the directory to the sealer.
    fn finish_call(
        &mut self,
        recording_id: &str,
        close_meta: &Value,
        reply: Option<Sender<CloseReply>>,
    ) {
        let Some(cid) = self.by_recording.remove(recording_id) else {
            return;
        };
        let Some(mut call) = self.calls.remove(&cid) else {
            return;
        };
        self.by_source.remove(&call.call.offer.remote);
        self.counters.active_calls.fetch_sub(1, Relaxed);
        let mut tracks = Vec::with_capacity(call.tracks.len());
        for i in 0..call.tracks.len() {
            call.tracks[i].track.finish();
            drain_idx(&mut call, i, &self.counters);
        }
        call.send_pending();
        for t in &call.tracks {
            let stats = t.track.stats();
            self.counters.add_track(track_counters(&stats));
            let participant = call.name_of(t.msi);
            let muted = call.roster.get(&t.msi).map(|(_, m)| *m);
            tracks.push(SealTrack {
                participant,
                msi: Some(t.msi),
                // Whether the file exists is checked by the I/O thread once it is written.
                file: t.track.has_audio().then(|| t.file_name.clone()),
                start_ms: t.start_ms,
                duration_ms: Some(samples48_to_ms(
                    stats.samples.saturating_sub(u64::from(PRE_SKIP)),
                )),
                level_segments: t.track.segments().map(<[_]>::to_vec),
                details: track_details(&stats, call.call.offer.srtp.is_some(), muted),
            });
        }
        let mut meta = base_meta(&call.call);
        if let Value::Object(extra) = close_meta {
            for (k, v) in extra {
                meta.insert(k.clone(), v.clone());
            }
        }
        meta.insert("roster".into(), roster_json(&call.roster));
        if let Some(first) = call.first_packet {
            meta.insert("started_at".into(), json!(format_rfc3339(first.0)));
        }
        meta.insert("drops".into(), json!({ "unknown_ssrc": call.unknown_ssrc }));
        if let Some(e) = &call.write_error {
            meta.insert("write_error".into(), json!(e));
        }
        let job = SealJob {
            recording_id: call.call.recording_id.clone(),
            dir: call.dir.clone(),
            call_id: call.call.call_id.clone(),
            tracks,
            meta: Value::Object(meta),
            partial: call.write_error.is_some(),
            reply,
        };
        // Behind this call's last writes on the I/O thread, which passes it to the sealer.
        if let Err(e) = self.io.send(IoMsg::Seal(job)) {
            if let IoMsg::Seal(job) = e.0 {
                if let Some(reply) = job.reply {
                    let _ = reply.send(CloseReply::Done(Err(SpoolError::NotActive(
                        job.recording_id,
                    ))));
                }
            }
        }
    }
}

fn new_track(
    call: &mut Call,
    ssrc: u32,
    first_datagram: &[u8],
    arrival: Micros,
    call_start: Micros,
    config: &MediaConfig,
) -> usize {
    let offer = &call.call.offer;
    let participant = call.name_of(ssrc);
    let mut cfg = TrackConfig::new(call.call.call_id.clone(), participant);
    cfg.srtp = offer.srtp.clone();
    cfg.audio_level_id = offer.audio_level_id;
    cfg.flush_interval = Micros(config.flush_interval.as_micros() as u64);
    cfg.serial = serial_for(&call.call.recording_id, ssrc);
    // The speaker's format: the payload type of its first RTP packet if the offer maps it
    // to audio (the header is in clear under SRTP), else the offer's first audio format.
    let pt = (!rtp::is_rtcp(first_datagram))
        .then(|| first_datagram.get(1).map(|b| b & 0x7f))
        .flatten();
    let chosen = match pt.and_then(|pt| offer.codec(pt).map(|c| (pt, c))) {
        Some((pt, Codec::Opus)) => Some((pt, None)),
        Some((pt, Codec::Transcoded(f))) => Some((pt, Some(*f))),
        _ => offer.primary_format(),
    };
    if let Some((pt, format)) = chosen {
        cfg.payload_type = Some(pt);
        cfg.format = format;
    }
    let i = call.tracks.len();
    call.tracks.push(Track {
        msi: ssrc,
        track: ParticipantTrack::new(cfg),
        file_name: format!("{ssrc}.ogg"),
        pending: Vec::new(),
        start_ms: arrival.saturating_since(call_start).0 as f64 / 1000.0,
        scheduled: None,
    });
    call.by_ssrc.insert(ssrc, i);
    i
}

/// Writes the pages a track released (to its file's buffer).
/// Moves the pages media-core released for track `idx` into its pending buffer (no I/O
/// here: the I/O thread writes them at the next tick).
fn drain_idx(call: &mut Call, idx: usize, _counters: &Counters) {
    let t = &mut call.tracks[idx];
    let out = t.track.output();
    if !out.is_empty() {
        t.pending.extend_from_slice(out);
        out.clear();
    }
}

fn track_counters(s: &TrackStats) -> [u64; TRACK_COUNTERS.len()] {
    [
        s.malformed,
        s.undecryptable,
        s.late,
        s.duplicated,
        s.lost,
        s.other_payload,
        s.rtcp,
    ]
}

fn track_details(s: &TrackStats, srtp: bool, muted: Option<bool>) -> Value {
    json!({
        "ssrcs": s.ssrcs,
        "codec": s.codec,
        "channels": s.channels,
        "srtp": srtp,
        "muted": muted,
        "filled_ms": samples48_to_ms(s.filled_samples),
        "resyncs": s.resyncs,
        "first_arrival": s.first_arrival.map(|t| format_rfc3339(t.0)),
        "packets": {
            "received": s.received,
            "written": s.written,
            "lost": s.lost,
            "duplicated": s.duplicated,
            "late": s.late,
            "undecryptable": s.undecryptable,
            "malformed": s.malformed,
            "other_payload": s.other_payload,
            "rtcp": s.rtcp,
        },
        "encode_errors": s.encode_errors,
        "last_srtp_error": s.last_srtp_error.as_ref().map(|e| e.to_string()),
    })
}

/// A stable Ogg serial per track (FNV-1a of the recording id and the MSI).
fn serial_for(recording_id: &str, msi: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in recording_id.bytes().chain(msi.to_le_bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}
