//! H.264 over RTP (RFC 6184, packetization mode 1): split an Annex B access unit
//! into NAL units and NAL units into RTP payloads (single NAL or FU-A fragments).

/// Splits an Annex B byte stream (start codes 00 00 01 / 00 00 00 01) into NAL units.
pub fn annex_b_nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = stream;
    std::iter::from_fn(move || loop {
        let start = find_start_code(rest)?;
        let after = &rest[start.1..];
        let end = find_start_code(after).map_or(after.len(), |(s, _)| s);
        let nal = &after[..end];
        rest = &after[end..];
        // Trailing zero bytes belong to the next start code, not the NAL.
        let trimmed = match nal.iter().rposition(|b| *b != 0) {
            Some(last) => &nal[..=last],
            None => &nal[..0],
        };
        if !trimmed.is_empty() {
            return Some(trimmed);
        }
        if rest.is_empty() {
            return None;
        }
    })
}

/// (index of the start code, index just after it).
fn find_start_code(d: &[u8]) -> Option<(usize, usize)> {
    let i = d.windows(3).position(|w| w == [0, 0, 1])?;
    Some((i, i + 3))
}

/// Calls `emit(payload, last)` for each RTP payload carrying `nal`, each at most
/// `max_payload` bytes; `last` marks the final payload of this NAL unit.
/// `scratch` is reused between calls so steady state allocates nothing.
pub fn packetize_nal(
    nal: &[u8],
    max_payload: usize,
    scratch: &mut Vec<u8>,
    emit: &mut dyn FnMut(&[u8], bool),
) {
    if nal.is_empty() {
        return;
    }
    if nal.len() <= max_payload {
        emit(nal, true);
        return;
    }
    // FU-A: indicator keeps F and NRI with type 28; header has S/E and the NAL type.
    let max_chunk = max_payload.saturating_sub(2).max(1);
    let indicator = (nal[0] & 0xe0) | 28;
    let nal_type = nal[0] & 0x1f;
    let body = &nal[1..];
    let chunks = body.len().div_ceil(max_chunk);
    for (i, chunk) in body.chunks(max_chunk).enumerate() {
        let start = if i == 0 { 0x80 } else { 0 };
        let end = if i + 1 == chunks { 0x40 } else { 0 };
        scratch.clear();
        scratch.push(indicator);
        scratch.push(start | end | nal_type);
        scratch.extend_from_slice(chunk);
        emit(scratch, i + 1 == chunks);
    }
}

/// Puts the SPS and PPS in front of every keyframe of an RTP H.264 stream that lacks
/// them, so a viewer joining at any keyframe can decode it. The parameter sets come
/// from the SDP (`sprop-parameter-sets`) and are refreshed from those seen in-band.
/// Sans-IO and allocation-free per packet once the sets are known. Input is hostile.
#[derive(Debug, Clone, Default)]
pub struct ParameterSetInserter {
    sps: Vec<u8>,
    pps: Vec<u8>,
    /// STAP-A with SPS and PPS, rebuilt when either changes.
    stap: Vec<u8>,
    /// RTP timestamp of the last access unit that carried an SPS in-band.
    sps_seen: Option<u32>,
}

/// NAL unit types (RFC 6184 §5.2 and H.264 Table 7-1).
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;

impl ParameterSetInserter {
    /// From a fmtp line (or just its value list): reads `sprop-parameter-sets`
    /// (base64 SPS, comma, base64 PPS). Missing or undecodable sets are learned in-band.
    pub fn from_fmtp(fmtp: &str) -> Self {
        use base64::Engine as _;
        let mut me = ParameterSetInserter::default();
        for kv in fmtp.split(';') {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            if k.trim() != "sprop-parameter-sets" {
                continue;
            }
            for set in v.trim().split(',') {
                let Ok(nal) = base64::engine::general_purpose::STANDARD.decode(set.trim()) else {
                    continue;
                };
                me.learn(&nal);
            }
        }
        me
    }

    /// Whether both parameter sets are known.
    pub fn ready(&self) -> bool {
        !self.sps.is_empty() && !self.pps.is_empty()
    }

    fn learn(&mut self, nal: &[u8]) {
        let slot = match nal.first().map(|h| h & 0x1f) {
            Some(NAL_SPS) => &mut self.sps,
            Some(NAL_PPS) => &mut self.pps,
            _ => return,
        };
        if slot.as_slice() == nal || nal.len() > 1024 {
            return;
        }
        slot.clear();
        slot.extend_from_slice(nal);
        if self.ready() {
            self.stap.clear();
            // F and NRI: the highest of the aggregated units (both are reference data).
            self.stap.push(0x60 | NAL_STAP_A);
            for n in [&self.sps, &self.pps] {
                self.stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
                self.stap.extend_from_slice(n);
            }
        }
    }

    /// Looks at one RTP payload of the stream (in order of arrival) with its RTP
    /// timestamp. Returns a STAP-A payload carrying SPS and PPS to send just before
    /// this packet when it starts an IDR picture whose access unit brought none.
    pub fn inspect(&mut self, payload: &[u8], timestamp: u32) -> Option<&[u8]> {
        let first = *payload.first()?;
        let mut idr_start = false;
        match first & 0x1f {
            NAL_STAP_A => {
                let mut rest = &payload[1..];
                while rest.len() >= 2 {
                    let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                    let Some(nal) = rest.get(2..2 + size) else {
                        break;
                    };
                    self.note(nal, timestamp, &mut idr_start);
                    rest = &rest[2 + size..];
                }
            }
            NAL_FU_A => {
                let fu = *payload.get(1)?;
                idr_start = fu & 0x80 != 0 && fu & 0x1f == NAL_IDR;
            }
            _ => self.note(payload, timestamp, &mut idr_start),
        }
        if idr_start && self.sps_seen != Some(timestamp) && self.ready() {
            // Once per access unit: its other slices follow the inserted sets.
            self.sps_seen = Some(timestamp);
            return Some(&self.stap);
        }
        None
    }

    fn note(&mut self, nal: &[u8], timestamp: u32, idr_start: &mut bool) {
        match nal.first().map(|h| h & 0x1f) {
            Some(NAL_SPS) => {
                self.sps_seen = Some(timestamp);
                self.learn(nal);
            }
            Some(NAL_PPS) => self.learn(nal),
            Some(NAL_IDR) => *idr_start = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_annex_b() {
        let s = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 6,
        ];
        let nals: Vec<&[u8]> = annex_b_nal_units(&s).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5, 6]]);
        assert_eq!(annex_b_nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(annex_b_nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(
            annex_b_nal_units(&[0, 0, 1, 0, 0, 1, 0x41]).collect::<Vec<_>>(),
            vec![&[0x41][..]]
        );
    }

    #[test]
    fn small_nal_is_sent_whole() {
        let mut out = Vec::new();
        packetize_nal(&[0x67, 1, 2, 3], 1200, &mut Vec::new(), &mut |p, last| {
            out.push((p.to_vec(), last))
        });
        assert_eq!(out, vec![(vec![0x67, 1, 2, 3], true)]);
    }

    #[test]
    fn large_nal_is_fragmented_and_reassembles() {
        let nal: Vec<u8> = std::iter::once(0x65)
            .chain((0..3000u32).map(|i| i as u8))
            .collect();
        let mut out = Vec::new();
        packetize_nal(&nal, 1000, &mut Vec::new(), &mut |p, last| {
            out.push((p.to_vec(), last))
        });
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|(p, _)| p.len() <= 1000));
        assert_eq!(out[0].0[..2], [0x7c, 0x85]);
        assert_eq!(out[1].0[..2], [0x7c, 0x05]);
        assert_eq!(out[3].0[..2], [0x7c, 0x45]);
        assert_eq!(
            out.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
            [false, false, false, true]
        );
        let mut back = vec![(out[0].0[0] & 0xe0) | (out[0].0[1] & 0x1f)];
        for (p, _) in &out {
            back.extend_from_slice(&p[2..]);
        }
        assert_eq!(back, nal);
    }

    /// `sprop-parameter-sets` GStreamer 1.22 gave for `x264enc ! rtph264pay` at 640x360.
    const GST_FMTP: &str =
        "packetization-mode=1;sprop-parameter-sets=Z0LAHtoCgL/lwFqDAwNSgAAAAwCAAAAeR4sXUA==,aM48gA==";

    #[test]
    fn inserts_sdp_parameter_sets_before_a_bare_idr() {
        let mut p = ParameterSetInserter::from_fmtp(GST_FMTP);
        assert!(p.ready());
        // An FU-A start of an IDR slice with no SPS before it in its access unit.
        let stap = p.inspect(&[0x7c, 0x85, 1, 2, 3], 9000).unwrap().to_vec();
        assert_eq!(stap[0] & 0x1f, 24);
        let sps_len = u16::from_be_bytes([stap[1], stap[2]]) as usize;
        assert_eq!(stap[3], 0x67, "SPS first");
        assert_eq!(stap[3 + sps_len + 2], 0x68, "then PPS");
        assert_eq!(stap.len(), 1 + 2 + sps_len + 2 + 4);
        // Once per access unit; continuation fragments and P slices never.
        assert_eq!(p.inspect(&[0x65, 9], 9000), None);
        assert_eq!(p.inspect(&[0x7c, 0x05, 4], 9000), None);
        assert_eq!(p.inspect(&[0x41, 1], 12000), None);
        // The next IDR gets them again.
        assert!(p.inspect(&[0x65, 1], 18000).is_some());
    }

    #[test]
    fn in_band_sets_are_learned_and_not_doubled() {
        let mut p = ParameterSetInserter::from_fmtp("packetization-mode=1");
        assert!(!p.ready());
        assert_eq!(p.inspect(&[0x65, 1], 0), None, "nothing to insert yet");
        // rtph264pay config-interval=-1: SPS and PPS before each IDR, same timestamp.
        assert_eq!(p.inspect(&[0x67, 0x42, 0xc0, 0x1e], 3000), None);
        assert_eq!(p.inspect(&[0x68, 0xce, 0x3c, 0x80], 3000), None);
        assert_eq!(p.inspect(&[0x65, 2], 3000), None, "the stream brought them");
        // An encoder that stops repeating them: the learned sets are inserted.
        let stap = p.inspect(&[0x65, 3], 6000).unwrap();
        assert_eq!(&stap[3..7], &[0x67, 0x42, 0xc0, 0x1e]);
        // STAP-A carrying SPS, PPS and IDR counts as in-band.
        let mut p = ParameterSetInserter::from_fmtp(GST_FMTP);
        let agg = [24, 0, 2, 0x67, 1, 0, 2, 0x68, 2, 0, 2, 0x65, 3];
        assert_eq!(p.inspect(&agg, 100), None);
    }

    #[test]
    fn hostile_payloads_do_not_panic() {
        let mut p = ParameterSetInserter::from_fmtp("sprop-parameter-sets=!!!,@@;x;=");
        for d in [
            &[][..],
            &[24],
            &[24, 0xff, 0xff, 1],
            &[28],
            &[24, 0, 0, 0, 0],
        ] {
            let _ = p.inspect(d, 1);
        }
    }
}
