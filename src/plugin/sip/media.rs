//! The media half of a call's handle: the browser's frames to the call's bridge, the
//! bridge's audio to the browser.

use super::*;

/// The `a=mid` of the first audio m-line of an SDP.
pub(super) fn audio_mid(sdp: &str) -> Option<Mid> {
    let mut in_audio = false;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            if in_audio {
                return None;
            }
            in_audio = m.starts_with("audio ");
        } else if in_audio {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                return Some(Mid::from(mid.trim()));
            }
        }
    }
    None
}

/// The media half of a call: the browser's audio and DTMF to the call's bridge,
/// the bridge's audio to the browser. Never blocks: a full channel drops the frame,
/// counted in the call's `browser_dropped` (admin `handle_info`).
pub(super) struct CallMediaHandler {
    to_bridge: mpsc::Sender<BrowserFrame>,
    mid: Option<Mid>,
    stats: Arc<BridgeStats>,
}

impl CallMediaHandler {
    pub(super) fn new(
        to_bridge: mpsc::Sender<BrowserFrame>,
        mid: Option<Mid>,
        stats: Arc<BridgeStats>,
    ) -> Self {
        CallMediaHandler {
            to_bridge,
            mid,
            stats,
        }
    }

    pub(super) fn pass(&self, frame: BrowserFrame) {
        if self.to_bridge.try_send(frame).is_err() {
            self.stats.browser_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl MediaHandler for CallMediaHandler {
    fn incoming_media(&mut self, _out: &mut MediaOut<'_>, data: &MediaData) {
        use str0m::format::Codec;
        if self.mid.is_none() {
            self.mid = Some(data.mid);
        }
        let ts = data.time.numer() as u32;
        match data.params.spec().codec {
            Codec::Opus | Codec::PCMU | Codec::PCMA => {
                if let Some(f) = BrowserFrame::audio(ts, &data.data) {
                    self.pass(f);
                }
            }
            Codec::Tele => {
                if let str0m::format::CodecExtra::Tele(ev) = data.codec_extra {
                    self.pass(BrowserFrame::Dtmf {
                        ts,
                        code: ev.event,
                        end: ev.end,
                        duration: ev.duration,
                    });
                }
            }
            _ => {}
        }
    }

    fn source_packet(
        &mut self,
        out: &mut MediaOut<'_>,
        packet: &crate::media::source::SourcePacket,
    ) {
        use str0m::format::Codec;
        let Some(mid) = self.mid else {
            return;
        };
        let codec = match packet.header.pt {
            0 => Codec::PCMU,
            8 => Codec::PCMA,
            _ => Codec::Opus,
        };
        out.write_audio(
            mid,
            codec,
            packet.arrival,
            packet.header.timestamp as u64,
            &packet.payload,
        );
    }
}
