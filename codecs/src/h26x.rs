//! H.264 (RFC 6184) and H.265 (RFC 7798) RTP payloads back to Annex B access units,
//! for sources whose RTP cannot be relayed as it is (an RTSP camera read packet by
//! packet). Single NAL units, aggregation packets (STAP-A, AP) and fragmentation
//! units (FU-A, FU). An access unit ends at the marker bit or when the timestamp
//! changes; one with a lost packet is dropped whole (the viewer would only show
//! garbage until the next keyframe, which the GOP cache and PLI bring anyway).
//! Sans-IO; input is hostile; the buffer is reused, so steady state allocates nothing.

use crate::keyframe::VideoCodec;

/// Largest access unit kept: a 4K keyframe is well under this.
pub const MAX_ACCESS_UNIT: usize = 4 << 20;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Counters of what could not be used.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DepacketizeStats {
    /// Access units dropped: a packet was lost, malformed or the unit grew too big.
    pub dropped_units: u64,
}

/// RTP payloads of one H.264 or H.265 stream in, Annex B access units out.
#[derive(Debug)]
pub struct Depacketizer {
    h265: bool,
    au: Vec<u8>,
    ts: Option<u32>,
    next_seq: Option<u16>,
    in_fragment: bool,
    broken: bool,
    stats: DepacketizeStats,
}

impl Depacketizer {
    /// A depacketizer for `codec` (H.265; anything else is read as H.264).
    pub fn new(codec: VideoCodec) -> Self {
        Depacketizer {
            h265: codec == VideoCodec::H265,
            au: Vec::with_capacity(64 * 1024),
            ts: None,
            next_seq: None,
            in_fragment: false,
            broken: false,
            stats: DepacketizeStats::default(),
        }
    }

    /// What was dropped so far.
    pub fn stats(&self) -> DepacketizeStats {
        self.stats
    }

    /// Reads one RTP packet's payload; calls `emit(annex_b, timestamp)` for each access
    /// unit completed by it (at most two: the previous one if the camera never set the
    /// marker bit, and this one).
    pub fn push(
        &mut self,
        seq: u16,
        ts: u32,
        marker: bool,
        payload: &[u8],
        emit: &mut dyn FnMut(&[u8], u32),
    ) {
        if self.ts.is_some_and(|t| t != ts) {
            self.finish(emit);
        }
        if self.next_seq.is_some_and(|s| s != seq) {
            // A packet of this unit (or the end of the last one) went missing.
            self.broken = true;
        }
        self.next_seq = Some(seq.wrapping_add(1));
        self.ts = Some(ts);
        if !self.broken && self.read(payload).is_none() {
            self.broken = true;
        }
        if self.au.len() > MAX_ACCESS_UNIT {
            self.broken = true;
            self.au.clear();
        }
        if marker {
            self.finish(emit);
        }
    }

    fn finish(&mut self, emit: &mut dyn FnMut(&[u8], u32)) {
        if let Some(ts) = self.ts.take() {
            if self.broken || self.in_fragment {
                self.stats.dropped_units += 1;
            } else if !self.au.is_empty() {
                emit(&self.au, ts);
            }
        }
        self.au.clear();
        self.broken = false;
        self.in_fragment = false;
    }

    fn nal(&mut self, nal: &[u8]) -> Option<()> {
        if nal.is_empty() {
            return None;
        }
        self.au.extend_from_slice(&START_CODE);
        self.au.extend_from_slice(nal);
        Some(())
    }

    /// Appends the payload's NAL units; None when it is malformed.
    fn read(&mut self, p: &[u8]) -> Option<()> {
        let header = if self.h265 { 2 } else { 1 };
        if p.len() < header {
            return None;
        }
        let (kind, aggregate, fragment) = if self.h265 {
            ((p[0] >> 1) & 0x3f, 48, 49)
        } else {
            (p[0] & 0x1f, 24, 28)
        };
        if kind != fragment && self.in_fragment {
            // The fragmented unit never got its end.
            return None;
        }
        if kind == aggregate {
            let mut rest = &p[header..];
            while !rest.is_empty() {
                let size = usize::from(u16::from_be_bytes([rest[0], *rest.get(1)?]));
                let nal = rest.get(2..2 + size)?;
                self.nal(nal)?;
                rest = &rest[2 + size..];
            }
            Some(())
        } else if kind == fragment {
            let fu = *p.get(header)?;
            let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
            let body = &p[header + 1..];
            if start {
                if self.in_fragment {
                    return None;
                }
                self.au.extend_from_slice(&START_CODE);
                if self.h265 {
                    self.au.push((p[0] & 0x81) | ((fu & 0x3f) << 1));
                    self.au.push(p[1]);
                } else {
                    self.au.push((p[0] & 0xe0) | (fu & 0x1f));
                }
                self.in_fragment = true;
            } else if !self.in_fragment {
                return None;
            }
            self.au.extend_from_slice(body);
            if end {
                self.in_fragment = false;
            }
            Some(())
        } else if (self.h265 && kind < 48) || (!self.h265 && (1..=23).contains(&kind)) {
            self.nal(p)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::{annex_b_nal_units, packetize_nal};

    fn units(d: &mut Depacketizer, packets: &[(u16, u32, bool, Vec<u8>)]) -> Vec<(Vec<u8>, u32)> {
        let mut out = Vec::new();
        for (seq, ts, marker, p) in packets {
            d.push(*seq, *ts, *marker, p, &mut |au, ts| {
                out.push((au.to_vec(), ts))
            });
        }
        out
    }

    #[test]
    fn h264_packetized_by_us_comes_back_whole() {
        // SPS, PPS and a 5000-byte IDR slice: single NALs and FU-A fragments.
        let sps = vec![0x67, 0x42, 0xc0, 0x1e];
        let pps = vec![0x68, 0xce, 0x3c, 0x80];
        let mut idr = vec![0x65];
        idr.extend((0..5000).map(|i| (i % 251) as u8 | 1));
        let mut packets = Vec::new();
        let mut scratch = Vec::new();
        let mut seq = 65530u16;
        for (n, nal) in [&sps, &pps, &idr].into_iter().enumerate() {
            packetize_nal(nal, 1200, &mut scratch, &mut |p, last| {
                packets.push((seq, 3000, n == 2 && last, p.to_vec()));
                seq = seq.wrapping_add(1);
            });
        }
        assert!(packets.len() > 5);
        let mut d = Depacketizer::new(VideoCodec::H264);
        let out = units(&mut d, &packets);
        assert_eq!(out.len(), 1);
        let nals: Vec<&[u8]> = annex_b_nal_units(&out[0].0).collect();
        assert_eq!(nals, vec![&sps[..], &pps[..], &idr[..]]);
        assert_eq!(out[0].1, 3000);

        // The same unit with one fragment lost is dropped, and the next one is whole.
        let mut lossy = packets.clone();
        lossy.remove(4);
        let next: Vec<_> = packets
            .iter()
            .map(|(s, _, m, p)| (s.wrapping_add(packets.len() as u16), 6000, *m, p.clone()))
            .collect();
        lossy.extend(next);
        let mut d = Depacketizer::new(VideoCodec::H264);
        let out = units(&mut d, &lossy);
        assert_eq!(out.len(), 1, "only the intact unit");
        assert_eq!(out[0].1, 6000);
        assert_eq!(d.stats().dropped_units, 1);
    }

    #[test]
    fn stap_a_and_a_camera_without_marker_bits() {
        // STAP-A with SPS and PPS, then a slice; the marker never set: the unit ends
        // when the timestamp moves on.
        let stap = vec![24, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce];
        let slice = vec![0x41, 0x9a, 0x10];
        let packets = vec![
            (1, 100, false, stap),
            (2, 100, false, slice.clone()),
            (3, 200, false, slice),
        ];
        let mut d = Depacketizer::new(VideoCodec::H264);
        let out = units(&mut d, &packets);
        assert_eq!(
            out,
            vec![(
                vec![0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x41, 0x9a, 0x10],
                100
            )]
        );
    }

    #[test]
    fn h265_fragments_and_aggregates() {
        let mut idr = vec![0x26, 0x01]; // IDR_W_RADL
        idr.extend((0..3000).map(|i| (i % 7) as u8 + 1));
        let mut packets = vec![(
            10u16,
            9000u32,
            false,
            vec![0x60, 0x01, 0, 3, 0x40, 0x01, 0x0c],
        )];
        let mut scratch = Vec::new();
        let mut seq = 11u16;
        crate::h265::packetize_nal(&idr, 1200, &mut scratch, &mut |p, last| {
            packets.push((seq, 9000, last, p.to_vec()));
            seq += 1;
        });
        let mut d = Depacketizer::new(VideoCodec::H265);
        let out = units(&mut d, &packets);
        assert_eq!(out.len(), 1);
        let nals: Vec<&[u8]> = annex_b_nal_units(&out[0].0).collect();
        assert_eq!(nals, vec![&[0x40, 0x01, 0x0c][..], &idr[..]]);
    }

    #[test]
    fn malformed_payloads_drop_the_unit_and_nothing_panics() {
        let bad: Vec<Vec<u8>> = vec![
            vec![],
            vec![24, 0, 9, 1],    // STAP-A size past the end
            vec![28],             // FU-A without its header
            vec![28, 0x05, 1, 2], // FU-A middle without a start
            vec![0x1e, 1],        // reserved NAL type
        ];
        for (i, p) in bad.iter().enumerate() {
            let mut d = Depacketizer::new(VideoCodec::H264);
            let out = units(&mut d, &[(0, 1, true, p.clone())]);
            assert!(out.is_empty(), "case {i}");
            assert_eq!(d.stats().dropped_units, 1, "case {i}");
        }
    }
}
