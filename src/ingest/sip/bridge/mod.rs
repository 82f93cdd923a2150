//! The media bridge of one call: the browser's Opus (or G.711) on one side, plain
//! RTP/AVP G.711, G.722 or Opus toward the SIP peer on the other. Sans-IO: every method takes
//! `now` and hands what to send to a callback; the driver (`super::call`) owns the
//! sockets and the 20 ms clock.
//!
//! * Browser → phone: each Opus packet is decoded (in-band FEC or concealment for a
//!   lost one) and leaves as 20 ms G.711/G.722 RTP packets with our own SSRC, sequence and
//!   timestamps. Browser telephone-events become RFC 4733 packets.
//! * Phone → browser: G.711/G.722 packets go through a small adaptive jitter buffer and
//!   are re-encoded to 20 ms Opus packets on a 48 kHz timeline; RFC 4733 packets
//!   become [`BridgeEvent::Dtmf`].
//! * A phone that speaks Opus gets the browser's packets as they are (our SSRC,
//!   sequence and timeline), and its own go to the browser through the same jitter
//!   buffer without a codec in between; RFC 4733 then runs on the 48 kHz clock.
//! * RTP without "RTP Bleed": we send to the address in the peer's SDP and accept
//!   media only from it. Where phones sit behind NAT (`sip.symmetric_rtp_nat`), media
//!   from elsewhere is latched once, after the call is answered (never on early media,
//!   which anyone who saw the SDP could race), when a few consecutive packets of one
//!   SSRC with the negotiated payload type arrive before any from the SDP address.
//!   Once latched the address never changes for the rest of the offer/answer (a
//!   stranger's packets are dropped and counted). The trade-off: with latching on, a
//!   stranger who learns the port and sends first, right after the answer, takes the
//!   call's audio; with it off, a phone behind NAT that puts its private address in
//!   the SDP is not heard.
//! * RTCP: a sender report (with a reception report once media arrives) every 5 s.
//!
//! Nothing here allocates per packet.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cardea_codecs::voice::{opus_samples, OpusToPhone, PhoneToOpus, OPUS_TS_STEP, PHONE_FRAME};

use super::sdp::{Direction, RemoteAudio, SipCodec};
use cardea_codecs::rtp::RtpHeader;

mod dtmf;
mod jitter;
mod latch;

pub use dtmf::{dtmf_code, dtmf_digit};
use dtmf::{OutEvent, END_REPEATS};
use jitter::{JitterBuffer, Played, SLOT_BYTES};
use latch::Latch;

/// How often a sender report goes out.
const RTCP_EVERY: Duration = Duration::from_secs(5);

/// What the browser leg carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserCodec {
    /// Opus at 48 kHz, transcoded to and from the SIP codec.
    Opus,
    /// The SIP codec itself, passed through untouched (`transcode: false`).
    Same,
}

/// How a call's bridge starts.
#[derive(Debug, Clone)]
pub struct BridgeSetup {
    /// The SIP leg's codec.
    pub codec: SipCodec,
    /// The browser leg's.
    pub browser: BrowserCodec,
    /// The peer's audio stream from its SDP.
    pub remote: RemoteAudio,
    /// Our SSRC toward the peer.
    pub ssrc: u32,
    /// Our direction toward the peer (hold sets sendonly/inactive).
    pub direction: Direction,
    /// `sip.symmetric_rtp_nat`: latch to where media comes from once answered.
    pub nat: bool,
    /// The call is answered already (else [`Bridge::answered`] says when).
    pub answered: bool,
}

/// Counters of one call's SIP leg, shared with the plugin's `handle_info`.
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// RTP packets sent to the peer.
    pub rtp_out: AtomicU64,
    /// RTP packets accepted from the peer (audio and telephone-events).
    pub rtp_in: AtomicU64,
    /// Packets that were not RTP/RTCP or had a payload type we did not negotiate.
    pub dropped_garbage: AtomicU64,
    /// Packets from an address other than the peer's (RTP Bleed attempts included).
    pub dropped_stranger: AtomicU64,
    /// Packets that arrived after their playout time or far out of sequence.
    pub dropped_late: AtomicU64,
    /// Packets the jitter buffer found missing at playout.
    pub lost: AtomicU64,
    /// SRTP/SRTCP packets that failed authentication or the replay check (forged,
    /// replayed, garbled, or plain RTP on a secure leg).
    pub dropped_srtp: AtomicU64,
    /// RTCP packets received from the peer.
    pub rtcp_in: AtomicU64,
    /// RTCP packets sent.
    pub rtcp_out: AtomicU64,
    /// Opus packets from the browser.
    pub browser_in: AtomicU64,
    /// Packets sent to the browser.
    pub browser_out: AtomicU64,
    /// Browser frames dropped before the bridge (its queue was full).
    pub browser_dropped: AtomicU64,
}

impl BridgeStats {
    /// The counters as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "rtp_out": r(&self.rtp_out),
            "rtp_in": r(&self.rtp_in),
            "dropped_garbage": r(&self.dropped_garbage),
            "dropped_stranger": r(&self.dropped_stranger),
            "dropped_late": r(&self.dropped_late),
            "lost": r(&self.lost),
            "dropped_srtp": r(&self.dropped_srtp),
            "rtcp_in": r(&self.rtcp_in),
            "rtcp_out": r(&self.rtcp_out),
            "browser_in": r(&self.browser_in),
            "browser_out": r(&self.browser_out),
            "browser_dropped": r(&self.browser_dropped),
        })
    }
}

/// Something the bridge tells the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeEvent {
    /// The peer sent a DTMF digit as RFC 4733 (reported once, at its end).
    Dtmf {
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
        /// Its length, ms.
        duration_ms: u32,
    },
}

/// Longest Opus packet (RFC 6716 §3.4, R2).
pub const MAX_FRAME: usize = 1275;

/// A frame from the browser's PeerConnection, passed by value (no allocation).
#[derive(Clone, Copy)]
#[allow(clippy::large_enum_variant)] // by value on purpose: a channel slot, not a heap box
pub enum BrowserFrame {
    /// An audio frame: its RTP timestamp and payload.
    Audio {
        /// RTP timestamp.
        ts: u32,
        /// Payload length.
        len: u16,
        /// Payload bytes (`len` of them).
        data: [u8; MAX_FRAME],
    },
    /// A telephone-event report (the browser's DTMF).
    Dtmf {
        /// The event's RTP timestamp (same for every report of one event).
        ts: u32,
        /// RFC 4733 event code.
        code: u8,
        /// Whether the event ended.
        end: bool,
        /// Its duration so far.
        duration: Duration,
    },
}

impl BrowserFrame {
    /// An audio frame, or None when the payload is longer than any Opus packet.
    pub fn audio(ts: u32, payload: &[u8]) -> Option<BrowserFrame> {
        if payload.len() > MAX_FRAME {
            return None;
        }
        let mut data = [0u8; MAX_FRAME];
        data[..payload.len()].copy_from_slice(payload);
        Some(BrowserFrame::Audio {
            ts,
            len: payload.len() as u16,
            data,
        })
    }
}

impl std::fmt::Debug for BrowserFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrowserFrame::Audio { ts, len, .. } => write!(f, "Audio(ts {ts}, {len} bytes)"),
            BrowserFrame::Dtmf { code, end, .. } => write!(f, "Dtmf({code}, end {end})"),
        }
    }
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The peer's RTP address.
    Rtp(SocketAddr),
    /// The peer's RTCP address.
    Rtcp(SocketAddr),
}

/// One call's bridge.
pub struct Bridge {
    codec: SipCodec,
    /// The peer's payload type for the codec (ours may differ for Opus: both accepted).
    pt: u8,
    /// RTP clock units per ms on the SIP leg (8, or 48 for Opus).
    units_per_ms: u32,
    browser: BrowserCodec,
    to_sip: Option<OpusToPhone>,
    to_browser: Option<PhoneToOpus>,
    te_pt: Option<u8>,
    latch: Latch,
    /// `sip.symmetric_rtp_nat`.
    nat: bool,
    rtcp_to: SocketAddr,
    direction: Direction,
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// Last browser RTP timestamp, to notice lost packets.
    browser_ts: Option<u32>,
    /// RTP timestamp step of the browser's frames (960 for 20 ms Opus, 160 for G.711).
    /// (The phone side's clock is 8 kHz for G.722 too, 48 kHz for Opus.)
    browser_step: u32,
    /// Timeline toward the browser.
    out_ts: u32,
    jitter: JitterBuffer,
    owed: i32,
    /// Length of the last Opus packet played from the peer, 8 kHz ticks.
    opus_ticks: u32,
    slot: [u8; SLOT_BYTES],
    packet: [u8; 12 + SLOT_BYTES],
    epoch: Instant,
    epoch_wall: SystemTime,
    next_rtcp: Instant,
    octets_out: u32,
    dtmf: Option<OutEvent>,
    last_dtmf_in: Option<u32>,
    /// Timestamp of the browser's current telephone event.
    browser_event: Option<u32>,
    events: std::collections::VecDeque<BridgeEvent>,
    stats: Arc<BridgeStats>,
}

impl Bridge {
    /// A bridge for a call answered at `now`.
    /// `wall` is the wall-clock time at `now` (for RTCP's NTP timestamps).
    pub fn new(
        now: Instant,
        wall: SystemTime,
        setup: BridgeSetup,
        stats: Arc<BridgeStats>,
    ) -> Result<Bridge, String> {
        let (to_sip, to_browser) = match setup.browser {
            // Opus both sides: relayed.
            BrowserCodec::Opus if setup.codec == SipCodec::Opus => (None, None),
            BrowserCodec::Opus => (
                Some(OpusToPhone::new(setup.codec).map_err(|e| e.to_string())?),
                Some(PhoneToOpus::new(setup.codec).map_err(|e| e.to_string())?),
            ),
            BrowserCodec::Same => (None, None),
        };
        let rtcp_to = setup.remote.rtcp;
        let units_per_ms = setup.codec.clock_rate() / 1000;
        Ok(Bridge {
            codec: setup.codec,
            pt: setup.remote.pt(setup.codec),
            units_per_ms,
            browser: setup.browser,
            to_sip,
            to_browser,
            te_pt: setup.remote.telephone_event_for(setup.codec),
            latch: Latch::new(setup.remote.rtp, setup.nat && setup.answered),
            nat: setup.nat,
            rtcp_to,
            direction: setup.direction,
            ssrc: setup.ssrc,
            seq: (setup.ssrc >> 16) as u16,
            ts: setup.ssrc.rotate_left(7),
            browser_ts: None,
            browser_step: match setup.browser {
                BrowserCodec::Opus => 960,
                BrowserCodec::Same => 160,
            },
            out_ts: setup.ssrc.rotate_left(13),
            jitter: JitterBuffer::new(units_per_ms),
            owed: 0,
            opus_ticks: PHONE_FRAME as u32,
            slot: [0; SLOT_BYTES],
            packet: [0; 12 + SLOT_BYTES],
            epoch: now,
            epoch_wall: wall,
            next_rtcp: now + Duration::from_secs(1),
            octets_out: 0,
            dtmf: None,
            last_dtmf_in: None,
            browser_event: None,
            events: std::collections::VecDeque::new(),
            stats,
        })
    }

    /// A new SDP from the peer (re-INVITE): new address, maybe new direction. The latch
    /// starts over for the new address.
    pub fn set_remote(&mut self, remote: &RemoteAudio) {
        if remote.rtp != self.latch.expected {
            self.latch = Latch::new(remote.rtp, self.latch.elsewhere);
            self.rtcp_to = remote.rtcp;
        }
        if let Some(te) = remote.telephone_event_for(self.codec) {
            self.te_pt = Some(te);
        }
        if self.codec == SipCodec::Opus {
            self.pt = remote.pt(SipCodec::Opus);
        }
    }

    /// The call is answered (the 200 of an early-media call): NAT latching may start.
    pub fn answered(&mut self) {
        self.latch.elsewhere = self.nat;
    }

    /// Our own direction (hold: sendonly or inactive; unhold: sendrecv).
    pub fn set_direction(&mut self, d: Direction) {
        self.direction = d;
    }

    /// Our direction now.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Where our RTP goes now.
    pub fn remote_rtp(&self) -> SocketAddr {
        self.latch.target()
    }

    /// The next event for the plugin.
    pub fn poll_event(&mut self) -> Option<BridgeEvent> {
        self.events.pop_front()
    }

    fn header(&mut self, pt: u8, marker: bool, ts: u32) {
        let p = &mut self.packet;
        p[0] = 0x80;
        p[1] = pt | if marker { 0x80 } else { 0 };
        p[2..4].copy_from_slice(&self.seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
    }

    /// Sends one frame lasting `units` of the RTP clock.
    fn send_frame(&mut self, frame: &[u8], units: u32, send: &mut dyn FnMut(Dest, &[u8])) {
        if !self.direction.sends() {
            self.ts = self.ts.wrapping_add(units);
            return;
        }
        let ts = self.ts;
        self.header(self.pt, false, ts);
        self.packet[12..12 + frame.len()].copy_from_slice(frame);
        self.ts = self.ts.wrapping_add(units);
        send(
            Dest::Rtp(self.latch.target()),
            &self.packet[..12 + frame.len()],
        );
        self.octets_out = self.octets_out.wrapping_add(frame.len() as u32);
        self.stats.rtp_out.fetch_add(1, Ordering::Relaxed);
    }

    /// An audio frame from the browser with its RTP timestamp.
    pub fn from_browser(&mut self, payload: &[u8], rtp_ts: u32, send: &mut dyn FnMut(Dest, &[u8])) {
        self.stats.browser_in.fetch_add(1, Ordering::Relaxed);
        let gap = match self.browser_ts {
            Some(last) => {
                let d = rtp_ts.wrapping_sub(last);
                if d == 0 || d > 0x8000_0000 {
                    return; // a repeat or a late packet
                }
                (d / self.browser_step).saturating_sub(1).min(5)
            }
            None => 0,
        };
        self.browser_ts = Some(rtp_ts);
        let Some(dec) = self.to_sip.as_mut() else {
            // Passthrough: the browser's G.711 or Opus goes out as it is; the browser's
            // clock is the peer's.
            if payload.len() <= SLOT_BYTES {
                let step = self.browser_step;
                // What the packet lasts: G.711's bytes are samples; Opus's TOC says.
                let units = match self.codec {
                    SipCodec::Opus => opus_samples(payload).unwrap_or(step),
                    _ => payload.len() as u32,
                };
                self.ts = self.ts.wrapping_add(gap * step);
                self.send_frame(payload, units, send);
            }
            return;
        };
        let mut frames: [[u8; PHONE_FRAME]; 8] = [[0; PHONE_FRAME]; 8];
        let mut n = 0usize;
        let mut collect = |f: &[u8]| {
            if n < frames.len() {
                frames[n].copy_from_slice(f);
                n += 1;
            }
        };
        for i in 0..gap {
            // The last lost packet is rebuilt from this one's FEC; earlier ones are concealed.
            let next = (i + 1 == gap).then_some(payload);
            if let Err(e) = dec.lost(next, &mut collect) {
                tracing::debug!(error = %e, "Opus concealment failed");
            }
        }
        if let Err(e) = dec.push(payload, &mut collect) {
            self.stats.dropped_garbage.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "undecodable Opus packet from the browser");
        }
        for f in &frames[..n] {
            self.send_frame(f, PHONE_FRAME as u32, send);
        }
    }

    /// A telephone-event report from the browser (its DTMF; `ts` identifies the
    /// event), forwarded as RFC 4733. Until the browser's end report, the event is
    /// kept going 200 ms past the last report, so a lost end report cannot make it endless.
    pub fn browser_dtmf(&mut self, ts: u32, code: u8, end: bool, duration: Duration) {
        // 200 ms past the last report, and the least an ended event lasts (40 ms).
        let (pad, least) = (
            200 * self.units_per_ms as u16,
            40 * self.units_per_ms as u16,
        );
        let units = (duration.as_millis() as u64 * self.units_per_ms as u64)
            .min((u16::MAX - pad) as u64) as u16;
        if self.browser_event == Some(ts) {
            if let Some(ev) = &mut self.dtmf {
                if ev.code == code {
                    ev.total = if end {
                        units.max(ev.duration)
                    } else {
                        units + pad
                    };
                }
            }
            return;
        }
        self.browser_event = Some(ts);
        self.start_dtmf(code, if end { units.max(least) } else { units + pad });
    }

    /// Sends a DTMF digit as RFC 4733 packets lasting `duration_ms`.
    pub fn send_dtmf(&mut self, digit: char, duration_ms: u32) -> bool {
        let (Some(code), Some(_)) = (dtmf_code(digit), self.te_pt) else {
            return false;
        };
        // The duration field is 16 bits: up to 8 s at 8 kHz, 1.3 s at 48 kHz.
        let units = (duration_ms.max(40) * self.units_per_ms).min(u16::MAX as u32 - 960) as u16;
        self.start_dtmf(code, units);
        true
    }

    fn start_dtmf(&mut self, code: u8, total: u16) {
        self.dtmf = Some(OutEvent {
            code,
            ts: self.ts,
            duration: 0,
            total,
            ends_left: END_REPEATS,
            first: true,
        });
    }

    /// One datagram from the SIP peer's RTP port.
    pub fn from_sip(&mut self, now: Instant, src: SocketAddr, d: &[u8]) {
        let Ok(h) = RtpHeader::parse(d) else {
            self.stats.dropped_garbage.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let media = h.pt == self.pt || h.pt == self.codec.pt();
        let event = Some(h.pt) == self.te_pt;
        if !media && !event {
            self.stats.dropped_garbage.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.latch.accept(src, h.ssrc, h.seq) {
            self.stats.dropped_stranger.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let payload = &d[h.payload_offset..h.payload_end];
        if event && payload.len() < 4 {
            self.stats.dropped_garbage.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.stats.rtp_in.fetch_add(1, Ordering::Relaxed);
        if event {
            self.dtmf_in(h.timestamp, payload);
            return;
        }
        if !self.direction.receives() {
            return;
        }
        let arrival = (now.saturating_duration_since(self.epoch).as_micros()
            * self.units_per_ms as u128
            / 1000) as i64;
        if !self.jitter.push(h.seq, h.timestamp, arrival, payload) {
            self.stats.dropped_late.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An RFC 4733 payload (at least 4 bytes).
    fn dtmf_in(&mut self, ts: u32, p: &[u8]) {
        let end = p[1] & 0x80 != 0;
        if !end || self.last_dtmf_in == Some(ts) {
            return;
        }
        self.last_dtmf_in = Some(ts);
        if let Some(digit) = dtmf_digit(p[0]) {
            let duration = u16::from_be_bytes([p[2], p[3]]) as u32 / self.units_per_ms;
            self.events.push_back(BridgeEvent::Dtmf {
                digit,
                duration_ms: duration,
            });
        }
    }

    /// One datagram from the SIP peer's RTCP port.
    pub fn from_sip_rtcp(&mut self, src: SocketAddr, d: &[u8]) {
        let ok = d.len() >= 8 && d[0] >> 6 == 2 && (200..=206).contains(&d[1]);
        let from_peer = src.ip() == self.latch.target().ip();
        if ok && from_peer {
            self.stats.rtcp_in.fetch_add(1, Ordering::Relaxed);
        } else if !ok {
            self.stats.dropped_garbage.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.dropped_stranger.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The 20 ms clock: plays one frame toward the browser (through `to_browser`: the
    /// payload and its RTP timestamp), advances DTMF, sends RTCP when due.
    pub fn tick(
        &mut self,
        now: Instant,
        send: &mut dyn FnMut(Dest, &[u8]),
        to_browser: &mut dyn FnMut(&[u8], u32),
    ) {
        self.tick_dtmf(send);
        self.owed += PHONE_FRAME as i32;
        while self.owed > 0 {
            let (played, len) = self.jitter.pop(&mut self.slot);
            match played {
                Played::Packet => {
                    let ticks = self.ticks(len);
                    self.owed -= ticks as i32;
                    self.play(len, ticks, to_browser);
                }
                Played::Lost(len) => {
                    self.stats.lost.fetch_add(1, Ordering::Relaxed);
                    let ticks = self.lost_ticks(len as usize);
                    self.owed -= ticks as i32;
                    self.out_ts = self.out_ts.wrapping_add(self.browser_units(ticks));
                }
                Played::Nothing => {
                    self.owed = 0;
                    break;
                }
            }
        }
        if now >= self.next_rtcp {
            self.next_rtcp = now + RTCP_EVERY;
            self.send_rtcp(now, send);
        }
    }

    /// How long the packet of `len` bytes just played (in `slot`) lasts, in 8 kHz
    /// ticks: G.711 and G.722 carry one byte per tick; an Opus packet says in its TOC
    /// byte (20 ms when it cannot be read).
    fn ticks(&mut self, len: usize) -> u32 {
        match self.codec {
            SipCodec::Opus => {
                let samples = opus_samples(&self.slot[..len]).unwrap_or(OPUS_TS_STEP);
                self.opus_ticks = (samples / 6).clamp(1, 960);
                self.opus_ticks
            }
            _ => len as u32,
        }
    }

    /// How long a lost packet lasted: as long as the last one played.
    fn lost_ticks(&self, len: usize) -> u32 {
        match self.codec {
            SipCodec::Opus => self.opus_ticks,
            _ => len as u32,
        }
    }

    /// 8 kHz ticks on the browser's RTP clock (48 kHz for Opus).
    fn browser_units(&self, phone_ticks: u32) -> u32 {
        match self.browser {
            BrowserCodec::Opus => phone_ticks * 6,
            BrowserCodec::Same => phone_ticks,
        }
    }

    fn play(&mut self, len: usize, ticks: u32, to_browser: &mut dyn FnMut(&[u8], u32)) {
        let step = self.browser_units(ticks);
        let stats = &self.stats;
        match &mut self.to_browser {
            None => {
                to_browser(&self.slot[..len], self.out_ts);
                self.out_ts = self.out_ts.wrapping_add(step);
                stats.browser_out.fetch_add(1, Ordering::Relaxed);
            }
            Some(enc) => {
                let out_ts = &mut self.out_ts;
                let r = enc.push(&self.slot[..len], &mut |opus| {
                    to_browser(opus, *out_ts);
                    *out_ts = out_ts.wrapping_add(OPUS_TS_STEP);
                    stats.browser_out.fetch_add(1, Ordering::Relaxed);
                });
                if let Err(e) = r {
                    tracing::debug!(error = %e, "Opus encode failed");
                }
            }
        }
    }

    fn tick_dtmf(&mut self, send: &mut dyn FnMut(Dest, &[u8])) {
        let (Some(mut ev), Some(pt)) = (self.dtmf, self.te_pt) else {
            self.dtmf = None;
            return;
        };
        let frame = (20 * self.units_per_ms) as u16;
        ev.duration = ev.duration.saturating_add(frame).min(ev.total);
        let end = ev.duration >= ev.total;
        let marker = ev.first;
        ev.first = false;
        self.header(pt, marker, ev.ts);
        self.packet[12] = ev.code;
        self.packet[13] = if end { 0x80 } else { 0 } | 10;
        self.packet[14..16].copy_from_slice(&ev.duration.to_be_bytes());
        if self.direction.sends() {
            send(Dest::Rtp(self.latch.target()), &self.packet[..16]);
            self.stats.rtp_out.fetch_add(1, Ordering::Relaxed);
        }
        if end {
            ev.ends_left -= 1;
            if ev.ends_left == 0 {
                self.dtmf = None;
                return;
            }
        }
        self.dtmf = Some(ev);
    }

    fn send_rtcp(&mut self, now: Instant, send: &mut dyn FnMut(Dest, &[u8])) {
        let mut b = [0u8; 96];
        let report = self.jitter.report();
        let rc = report.is_some() as u8;
        let sr_words = 6 + 6 * rc as u16; // length in 32-bit words minus one
        b[0] = 0x80 | rc;
        b[1] = 200;
        b[2..4].copy_from_slice(&sr_words.to_be_bytes());
        b[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        let ntp = (self.epoch_wall + now.saturating_duration_since(self.epoch))
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + Duration::from_secs(2_208_988_800);
        let frac = ((ntp.subsec_nanos() as u64) << 32) / 1_000_000_000;
        b[8..12].copy_from_slice(&(ntp.as_secs() as u32).to_be_bytes());
        b[12..16].copy_from_slice(&(frac as u32).to_be_bytes());
        b[16..20].copy_from_slice(&self.ts.to_be_bytes());
        let packets = self.stats.rtp_out.load(Ordering::Relaxed) as u32;
        b[20..24].copy_from_slice(&packets.to_be_bytes());
        b[24..28].copy_from_slice(&self.octets_out.to_be_bytes());
        let mut n = 28;
        if let Some((fraction, lost, max_seq, jitter)) = report {
            // The peer's SSRC is not tracked; 0 is allowed by receivers that match loosely.
            b[n..n + 4].copy_from_slice(&0u32.to_be_bytes());
            b[n + 4] = fraction;
            b[n + 5..n + 8].copy_from_slice(&lost.min(0x7f_ffff).to_be_bytes()[1..]);
            b[n + 8..n + 12].copy_from_slice(&max_seq.to_be_bytes());
            b[n + 12..n + 16].copy_from_slice(&jitter.to_be_bytes());
            n += 24;
        }
        // SDES with a CNAME: a compound packet must carry one (RFC 3550 §6.1).
        let cname = b"cardea";
        let sdes_len = 4 + 4 + 2 + cname.len() + 1;
        let padded = sdes_len.div_ceil(4) * 4;
        b[n] = 0x81;
        b[n + 1] = 202;
        b[n + 2..n + 4].copy_from_slice(&((padded / 4 - 1) as u16).to_be_bytes());
        b[n + 4..n + 8].copy_from_slice(&self.ssrc.to_be_bytes());
        b[n + 8] = 1;
        b[n + 9] = cname.len() as u8;
        b[n + 10..n + 10 + cname.len()].copy_from_slice(cname);
        n += padded;
        let target = SocketAddr::new(self.latch.target().ip(), self.rtcp_port());
        send(Dest::Rtcp(target), &b[..n]);
        self.stats.rtcp_out.fetch_add(1, Ordering::Relaxed);
    }

    fn rtcp_port(&self) -> u16 {
        match self.latch.latched {
            Some(l) if l != self.latch.expected => l.port().wrapping_add(1),
            _ => self.rtcp_to.port(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::sip::sdp;

    const PEER: &str = "127.0.0.1:40000";

    fn setup(browser: BrowserCodec) -> (Bridge, Arc<BridgeStats>, Instant) {
        let pcmu = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        setup_with(pcmu, SipCodec::Pcmu, browser)
    }

    fn setup_with(
        sdp: &str,
        codec: SipCodec,
        browser: BrowserCodec,
    ) -> (Bridge, Arc<BridgeStats>, Instant) {
        let remote = sdp::parse(sdp).unwrap();
        let stats = Arc::new(BridgeStats::default());
        #[allow(clippy::disallowed_methods)] // a starting point; the tests move time themselves
        let now = Instant::now();
        let b = Bridge::new(
            now,
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            BridgeSetup {
                codec,
                browser,
                remote,
                ssrc: 0x1234_5678,
                direction: Direction::SendRecv,
                nat: true,
                answered: true,
            },
            stats.clone(),
        )
        .unwrap();
        (b, stats, now)
    }

    fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// 20 ms of a 1 kHz tone in µ-law.
    fn tone(frame: u32) -> Vec<u8> {
        (0..160)
            .map(|i| {
                let t = (frame * 160 + i) as f32 / 8000.0;
                cardea_codecs::g711::linear_to_ulaw(
                    (8000.0 * (2.0 * std::f32::consts::PI * 1000.0 * t).sin()) as i16,
                )
            })
            .collect()
    }

    /// Runs `n` ticks 20 ms apart; the packets toward the browser (payload, ts).
    fn play(b: &mut Bridge, start: Instant, n: u32) -> Vec<(Vec<u8>, u32)> {
        let mut out = Vec::new();
        for i in 0..n {
            b.tick(
                start + Duration::from_millis(20 * i as u64),
                &mut |_, _| {},
                &mut |p, ts| out.push((p.to_vec(), ts)),
            );
        }
        out
    }

    /// Runs `n` ticks 20 ms apart; the RTP datagrams sent to the peer.
    fn rtp_sent(b: &mut Bridge, start: Instant, n: u64) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        for i in 0..n {
            b.tick(
                start + Duration::from_millis(20 * i),
                &mut |d, p| {
                    if matches!(d, Dest::Rtp(_)) {
                        packets.push(p.to_vec())
                    }
                },
                &mut |_, _| {},
            );
        }
        packets
    }

    #[test]
    fn passthrough_reorders_and_fills_a_gap_with_time() {
        let (mut b, stats, now) = setup(BrowserCodec::Same);
        let peer: SocketAddr = PEER.parse().unwrap();
        // Packets 0..6, 3 arrives after 4, 5 is lost.
        for seq in [0u16, 1, 2, 4, 3, 6] {
            b.from_sip(
                now,
                peer,
                &rtp(0, seq, seq as u32 * 160, 9, &[seq as u8; 160]),
            );
        }
        let out = play(&mut b, now, 7);
        let firsts: Vec<u8> = out.iter().map(|(p, _)| p[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2, 3, 4, 6], "{out:?}");
        // Timestamps toward the browser advance over the lost packet.
        assert_eq!(out[5].1.wrapping_sub(out[4].1), 320);
        assert_eq!(stats.lost.load(Ordering::Relaxed), 1);
        // A packet older than what was played is late.
        b.from_sip(now, peer, &rtp(0, 2, 320, 9, &[2; 160]));
        assert_eq!(stats.dropped_late.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn strangers_are_never_latched_once_the_peer_is_heard() {
        let (mut b, stats, now) = setup(BrowserCodec::Same);
        let peer: SocketAddr = PEER.parse().unwrap();
        let evil: SocketAddr = "127.0.0.9:5555".parse().unwrap();
        b.from_sip(now, peer, &rtp(0, 100, 0, 7, &[1; 160]));
        // RTP Bleed: a well-formed stream from elsewhere, in sequence, same SSRC.
        for seq in 0..10u16 {
            b.from_sip(now, evil, &rtp(0, 101 + seq, 160, 7, &[0xEE; 160]));
        }
        assert_eq!(stats.dropped_stranger.load(Ordering::Relaxed), 10);
        assert_eq!(b.remote_rtp(), peer);
        let played = play(&mut b, now, 4);
        assert!(played.iter().all(|(p, _)| p[0] != 0xEE), "{played:?}");
    }

    #[test]
    fn a_peer_behind_nat_is_latched_after_a_consistent_stream() {
        let (mut b, stats, now) = setup(BrowserCodec::Same);
        let natted: SocketAddr = "127.0.0.7:61000".parse().unwrap();
        // An SSRC change or a gap restarts the count; garbage never counts.
        b.from_sip(now, natted, &rtp(0, 1, 0, 5, &[0; 160]));
        b.from_sip(now, natted, b"not rtp at all");
        b.from_sip(now, natted, &rtp(0, 2, 0, 6, &[0; 160]));
        b.from_sip(now, natted, &rtp(0, 3, 0, 6, &[0; 160]));
        assert_eq!(b.remote_rtp(), PEER.parse().unwrap());
        b.from_sip(now, natted, &rtp(0, 4, 0, 6, &[0; 160]));
        assert_eq!(b.remote_rtp(), natted);
        assert_eq!(stats.dropped_garbage.load(Ordering::Relaxed), 1);
        // Once latched, the SDP address itself is a stranger too.
        b.from_sip(now, PEER.parse().unwrap(), &rtp(0, 5, 0, 6, &[0; 160]));
        assert_eq!(stats.dropped_stranger.load(Ordering::Relaxed), 4);
        // Our media goes where theirs comes from.
        let mut sent = Vec::new();
        b.send_dtmf('5', 100);
        b.tick(now, &mut |d, _| sent.push(d), &mut |_, _| {});
        assert_eq!(sent.first(), Some(&Dest::Rtp(natted)));
    }

    #[test]
    fn without_nat_latching_only_the_sdp_address_is_heard() {
        let (mut b, stats, now) = setup(BrowserCodec::Same);
        b.nat = false;
        b.latch.elsewhere = false;
        let natted: SocketAddr = "127.0.0.7:61000".parse().unwrap();
        for seq in 1..10u16 {
            b.from_sip(now, natted, &rtp(0, seq, 0, 6, &[0; 160]));
        }
        assert_eq!(b.remote_rtp(), PEER.parse().unwrap());
        assert_eq!(stats.dropped_stranger.load(Ordering::Relaxed), 9);
        // The SDP address is heard at once.
        b.from_sip(now, PEER.parse().unwrap(), &rtp(0, 10, 0, 6, &[0; 160]));
        assert_eq!(stats.rtp_in.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn nat_latching_waits_for_the_answer() {
        let (mut b, stats, now) = setup(BrowserCodec::Same);
        b.latch.elsewhere = false; // early media: created before the 200
        let natted: SocketAddr = "127.0.0.7:61000".parse().unwrap();
        for seq in 1..5u16 {
            b.from_sip(now, natted, &rtp(0, seq, 0, 6, &[0; 160]));
        }
        assert_eq!(b.remote_rtp(), PEER.parse().unwrap());
        b.answered();
        for seq in 5..8u16 {
            b.from_sip(now, natted, &rtp(0, seq, 0, 6, &[0; 160]));
        }
        assert_eq!(b.remote_rtp(), natted);
        assert_eq!(stats.dropped_stranger.load(Ordering::Relaxed), 4 + 2);
    }

    #[test]
    fn unnegotiated_payload_types_and_garbage_are_counted() {
        let (mut b, stats, now) = setup(BrowserCodec::Same);
        let peer: SocketAddr = PEER.parse().unwrap();
        b.from_sip(now, peer, &rtp(8, 1, 0, 5, &[0; 160])); // PCMA was not negotiated
        b.from_sip(now, peer, &[0x80, 0]);
        b.from_sip(now, peer, &[]);
        b.from_sip_rtcp(peer, &[1, 2, 3]);
        assert_eq!(stats.dropped_garbage.load(Ordering::Relaxed), 4);
        assert_eq!(stats.rtp_in.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn rfc4733_from_the_peer_is_one_event_per_digit() {
        let (mut b, _, now) = setup(BrowserCodec::Same);
        let peer: SocketAddr = PEER.parse().unwrap();
        // Digit 7: three updates, then the end packet three times.
        for (i, end) in [false, false, false, true, true, true]
            .into_iter()
            .enumerate()
        {
            let dur = 160 * (i as u16 + 1);
            let mut ev = vec![7, if end { 0x80 } else { 0 } | 10];
            ev.extend_from_slice(&dur.to_be_bytes());
            b.from_sip(now, peer, &rtp(101, 50 + i as u16, 8000, 3, &ev));
        }
        assert_eq!(
            b.poll_event(),
            Some(BridgeEvent::Dtmf {
                digit: '7',
                duration_ms: 80
            })
        );
        assert_eq!(b.poll_event(), None);
    }

    #[test]
    fn dtmf_toward_the_peer_is_rfc4733_with_three_end_packets() {
        let (mut b, _, now) = setup(BrowserCodec::Same);
        assert!(b.send_dtmf('#', 100));
        assert!(!b.send_dtmf('x', 100));
        let packets = rtp_sent(&mut b, now, 10);
        let events: Vec<(bool, u8, bool, u16, u32)> = packets
            .iter()
            .filter(|p| p[1] & 0x7f == 101)
            .map(|p| {
                (
                    p[1] & 0x80 != 0,
                    p[12],
                    p[13] & 0x80 != 0,
                    u16::from_be_bytes([p[14], p[15]]),
                    u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                )
            })
            .collect();
        // 100 ms = 800 units: 5 updates (the last one ends), repeated twice more.
        assert_eq!(events.len(), 7, "{events:?}");
        assert!(events[0].0, "marker on the first packet");
        assert!(events.iter().all(|e| e.1 == 11 && e.4 == events[0].4));
        assert_eq!(events.iter().filter(|e| e.2).count(), 3);
        assert_eq!(events.last().unwrap().3, 800);
    }

    /// What baresip offers first: Opus under its own payload type, events at 48 kHz.
    const OPUS_PHONE: &str = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 40000 RTP/AVP 116 9 0 102\r\na=rtpmap:116 opus/48000/2\r\na=fmtp:116 stereo=1;sprop-stereo=1\r\na=rtpmap:102 telephone-event/48000\r\n";

    #[test]
    fn an_opus_phone_is_relayed_both_ways_untouched() {
        let (mut b, stats, now) = setup_with(OPUS_PHONE, SipCodec::Opus, BrowserCodec::Opus);
        let peer: SocketAddr = PEER.parse().unwrap();
        // An Opus packet of `len` bytes tagged `tag`: TOC 0xF8 is CELT fullband 20 ms,
        // 0x10 SILK narrowband 40 ms (RFC 6716 §3.1).
        let opus = |toc: u8, tag: u8, len: usize| {
            let mut p = vec![tag; len];
            p[0] = toc;
            p
        };
        // Browser → phone: the same bytes, the phone's payload type, our SSRC and
        // sequence, the browser's timeline (a lost packet leaves its 960 gap).
        let mut sent: Vec<Vec<u8>> = Vec::new();
        for (i, ts) in [1000u32, 1960, 3880].into_iter().enumerate() {
            let p = opus(0xF8, i as u8 + 1, 90);
            b.from_browser(&p, ts, &mut |_, d| sent.push(d.to_vec()));
        }
        assert_eq!(sent.len(), 3);
        let field = |p: &Vec<u8>, r: std::ops::Range<usize>| {
            p[r].iter().fold(0u32, |a, b| a << 8 | *b as u32)
        };
        for (i, p) in sent.iter().enumerate() {
            assert_eq!(p[1], 116);
            assert_eq!(field(p, 8..12), 0x1234_5678);
            assert_eq!(p[12..], opus(0xF8, i as u8 + 1, 90)[..]);
        }
        assert_eq!(field(&sent[1], 2..4), field(&sent[0], 2..4) + 1);
        let ts_step = |a: &Vec<u8>, b: &Vec<u8>| field(b, 4..8).wrapping_sub(field(a, 4..8));
        assert_eq!(ts_step(&sent[0], &sent[1]), 960);
        assert_eq!(ts_step(&sent[1], &sent[2]), 1920);
        // Phone → browser: its packets (either payload type) in order through the
        // jitter buffer, no codec; each advances the browser's timeline by what it
        // lasts (packet 2 is 40 ms long and takes two ticks).
        for seq in [0u16, 1, 3, 2] {
            let pt = if seq == 1 { 111 } else { 116 };
            let toc = if seq == 2 { 0x10 } else { 0xF8 };
            let ts = seq as u32 * 960 + if seq == 3 { 960 } else { 0 };
            b.from_sip(
                now,
                peer,
                &rtp(pt, seq, ts, 9, &opus(toc, 0xA0 + seq as u8, 70)),
            );
        }
        let out = play(&mut b, now, 5);
        let tags: Vec<u8> = out.iter().map(|(p, _)| p[1]).collect();
        assert_eq!(tags, vec![0xA0, 0xA1, 0xA2, 0xA3], "{out:?}");
        assert!(out.iter().all(|(p, _)| p.len() == 70));
        let steps: Vec<u32> = out
            .windows(2)
            .map(|w| w[1].1.wrapping_sub(w[0].1))
            .collect();
        assert_eq!(steps, vec![960, 960, 1920]);
        assert_eq!(stats.dropped_garbage.load(Ordering::Relaxed), 0);
        assert_eq!(stats.lost.load(Ordering::Relaxed), 0);
        // The longest Opus packet passes both ways too.
        let big = opus(0xF8, 0x5A, MAX_FRAME);
        let mut out = Vec::new();
        b.from_browser(&big, 4840, &mut |_, p| out.push(p.len()));
        assert_eq!(out, vec![12 + MAX_FRAME]);
        b.from_sip(now, peer, &rtp(116, 4, 5 * 960, 9, &big));
        let played = play(&mut b, now + Duration::from_millis(100), 3);
        assert_eq!(
            played.iter().map(|(p, _)| p.len()).collect::<Vec<_>>(),
            vec![MAX_FRAME]
        );
        // PCMU is not what this call negotiated.
        b.from_sip(now, peer, &rtp(0, 5, 6 * 960, 9, &[0; 160]));
        assert_eq!(stats.dropped_garbage.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn beside_opus_dtmf_runs_on_the_48khz_clock() {
        let (mut b, _, now) = setup_with(OPUS_PHONE, SipCodec::Opus, BrowserCodec::Opus);
        let peer: SocketAddr = PEER.parse().unwrap();
        assert!(b.send_dtmf('5', 100));
        let packets = rtp_sent(&mut b, now, 10);
        let durations: Vec<u16> = packets
            .iter()
            .filter(|p| p[1] & 0x7f == 102)
            .map(|p| u16::from_be_bytes([p[14], p[15]]))
            .collect();
        // 100 ms = 4800 units at 48 kHz, 960 per 20 ms; the end sent three times.
        assert_eq!(durations, vec![960, 1920, 2880, 3840, 4800, 4800, 4800]);
        // The phone's 100 ms digit, on its 48 kHz clock.
        let mut ev = vec![9, 0x80 | 10];
        ev.extend_from_slice(&4800u16.to_be_bytes());
        b.from_sip(now, peer, &rtp(102, 7, 48_000, 3, &ev));
        assert_eq!(
            b.poll_event(),
            Some(BridgeEvent::Dtmf {
                digit: '9',
                duration_ms: 100
            })
        );
    }

    #[test]
    fn a_phone_tone_reaches_the_browser_as_opus_at_the_same_pitch() {
        let (mut b, stats, now) = setup(BrowserCodec::Opus);
        let peer: SocketAddr = PEER.parse().unwrap();
        let mut to_browser = Vec::new();
        for i in 0..100u32 {
            let t = now + Duration::from_millis(20 * i as u64);
            b.from_sip(t, peer, &rtp(0, i as u16, i * 160, 1, &tone(i)));
            b.tick(t, &mut |_, _| {}, &mut |p, ts| {
                to_browser.push((p.to_vec(), ts))
            });
        }
        assert!(to_browser.len() >= 95, "{}", to_browser.len());
        assert!(to_browser
            .windows(2)
            .all(|w| w[1].1.wrapping_sub(w[0].1) == 960));
        // Decode at 48 kHz as a browser would, count zero crossings.
        let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut pcm = Vec::new();
        let mut buf = [0i16; 960];
        for (p, _) in &to_browser {
            let n = dec.decode(p, &mut buf, false).unwrap();
            pcm.extend_from_slice(&buf[..n]);
        }
        let tail = &pcm[pcm.len() / 2..];
        let crossings = tail.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        let hz = crossings as f64 / 2.0 / (tail.len() as f64 / 48_000.0);
        assert!((hz - 1000.0).abs() < 30.0, "{hz}");
        assert_eq!(stats.rtp_in.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn browser_opus_reaches_the_phone_as_20ms_pcmu_with_our_sequence() {
        let (mut b, stats, _) = setup(BrowserCodec::Opus);
        let mut enc =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
        let mut sent = Vec::new();
        let mut packet = [0u8; 400];
        for i in 0..50u32 {
            let pcm: Vec<i16> = (0..960)
                .map(|k| {
                    let t = (i * 960 + k) as f32 / 48_000.0;
                    (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16
                })
                .collect();
            let n = enc.encode(&pcm, &mut packet).unwrap();
            if i == 20 {
                continue; // lost on the way: concealed, the phone still gets 20 ms
            }
            b.from_browser(&packet[..n], 1000 + i * 960, &mut |d, p| {
                sent.push((d, p.to_vec()))
            });
        }
        assert_eq!(
            sent.len(),
            50,
            "one PCMU packet per 20 ms, the lost one rebuilt"
        );
        for w in sent.windows(2) {
            let (a, b) = (&w[0].1, &w[1].1);
            assert_eq!(a.len(), 172);
            assert_eq!(
                u16::from_be_bytes([b[2], b[3]]),
                u16::from_be_bytes([a[2], a[3]]).wrapping_add(1)
            );
            let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
            assert_eq!(ts(b).wrapping_sub(ts(a)), 160);
        }
        assert!(sent
            .iter()
            .all(|(d, p)| *d == Dest::Rtp(PEER.parse().unwrap()) && p[1] == 0));
        assert_eq!(stats.rtp_out.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn on_hold_nothing_is_sent_and_rtcp_still_goes_out() {
        let (mut b, _, now) = setup(BrowserCodec::Same);
        b.set_direction(Direction::Inactive);
        let mut sent = Vec::new();
        b.from_browser(&[0xff; 160], 0, &mut |d, _| sent.push(d));
        assert!(sent.is_empty());
        b.tick(
            now + Duration::from_secs(2),
            &mut |d, _| sent.push(d),
            &mut |_, _| {},
        );
        assert_eq!(sent, vec![Dest::Rtcp("127.0.0.1:40001".parse().unwrap())]);
    }
}
