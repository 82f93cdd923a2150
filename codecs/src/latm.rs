//! MP4A-LATM (RFC 6416, formerly RFC 3016): AAC as some cameras send it over RTP.
//! The `config` of the SDP's fmtp is a StreamMuxConfig (ISO/IEC 14496-3 1.7.3) that
//! carries the AudioSpecificConfig; each RTP packet (or several, up to the marker bit)
//! carries an AudioMuxElement: per sub-frame a PayloadLengthInfo then the AAC access
//! unit. Units come out ADTS-wrapped, ready for [`crate::aac::AacToOpus::push_adts`].
//!
//! Only out-of-band configuration (`cpresent=0`, what RFC 6416 recommends and cameras
//! send) with one program and one layer is read. Sans-IO; input is hostile.

/// Largest AudioMuxElement gathered across packets.
const MAX_ELEMENT: usize = 64 * 1024;

/// Why a LATM stream cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LatmError {
    /// The fmtp line lacks what is needed or holds something unsupported.
    #[error("MP4A-LATM fmtp: {0}")]
    Config(String),
}

/// The AudioSpecificConfig fields an ADTS header needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// MPEG-4 audio object type of the core coder (2 = AAC LC); SBR/PS signalled
    /// explicitly (5, 29) are replaced by their core type, decoders find SBR in-band.
    pub object_type: u8,
    /// Sampling frequency index (of the core coder).
    pub sample_rate_index: u8,
    /// Channel configuration (1 = mono, 2 = stereo ...).
    pub channels: u8,
}

impl AacConfig {
    /// The 7-byte ADTS header (no CRC) for an access unit of `au_len` bytes.
    pub fn adts_header(&self, au_len: usize) -> [u8; 7] {
        let len = au_len + 7;
        let profile = self.object_type - 1;
        [
            0xff,
            0xf1, // MPEG-4, layer 0, no CRC
            (profile << 6) | (self.sample_rate_index << 2) | (self.channels >> 2),
            ((self.channels & 3) << 6) | ((len >> 11) as u8 & 0x03),
            (len >> 3) as u8,
            ((len as u8 & 0x07) << 5) | 0x1f,
            0xfc,
        ]
    }
}

/// Reads bits most significant first.
struct Bits<'a> {
    d: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.d.get(self.pos / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(v)
    }

    /// LatmGetValue: a 2-bit count of bytes, then the value.
    fn latm_value(&mut self) -> Option<u32> {
        let bytes = self.read(2)? + 1;
        self.read(8 * bytes)
    }
}

fn object_type(b: &mut Bits<'_>) -> Option<u8> {
    let t = b.read(5)?;
    Some(if t == 31 { 32 + b.read(6)? } else { t } as u8)
}

fn config_error(what: &str) -> LatmError {
    LatmError::Config(what.to_owned())
}

/// Reads the head of an AudioSpecificConfig.
fn audio_specific_config(b: &mut Bits<'_>) -> Result<AacConfig, LatmError> {
    let short = || config_error("AudioSpecificConfig cut short");
    let mut object = object_type(b).ok_or_else(short)?;
    let sample_rate_index = b.read(4).ok_or_else(short)? as u8;
    if sample_rate_index >= 13 {
        return Err(config_error(
            "explicit or reserved sampling frequency (ADTS cannot carry it)",
        ));
    }
    let channels = b.read(4).ok_or_else(short)? as u8;
    if object == 5 || object == 29 {
        // Explicit SBR/PS: skip the extension rate, read the core object type.
        if b.read(4).ok_or_else(short)? == 15 {
            b.read(24).ok_or_else(short)?;
        }
        object = object_type(b).ok_or_else(short)?;
    }
    if !(1..=4).contains(&object) {
        return Err(LatmError::Config(format!(
            "audio object type {object} (ADTS carries AAC main, LC, SSR, LTP)"
        )));
    }
    if channels == 0 || channels > 7 {
        return Err(LatmError::Config(format!(
            "channel configuration {channels} (a program config element is not read)"
        )));
    }
    Ok(AacConfig {
        object_type: object,
        sample_rate_index,
        channels,
    })
}

/// Parses a StreamMuxConfig (the fmtp `config`, hex): the AAC configuration and the
/// number of sub-frames per AudioMuxElement.
pub fn stream_mux_config(config: &[u8]) -> Result<(AacConfig, u8), LatmError> {
    let short = || config_error("StreamMuxConfig cut short");
    let mut b = Bits { d: config, pos: 0 };
    let version = b.read(1).ok_or_else(short)?;
    if version == 1 {
        if b.read(1).ok_or_else(short)? == 1 {
            return Err(config_error("audioMuxVersionA 1 is reserved"));
        }
        b.latm_value().ok_or_else(short)?; // taraBufferFullness
    }
    let same_framing = b.read(1).ok_or_else(short)?;
    let sub_frames = b.read(6).ok_or_else(short)? as u8 + 1;
    let programs = b.read(4).ok_or_else(short)? + 1;
    let layers = b.read(3).ok_or_else(short)? + 1;
    if same_framing != 1 || programs != 1 || layers != 1 {
        return Err(config_error(
            "more than one program or layer, or unequal framing",
        ));
    }
    if version == 1 {
        b.latm_value().ok_or_else(short)?; // ascLen
    }
    let aac = audio_specific_config(&mut b)?;
    Ok((aac, sub_frames))
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// RTP payloads of one MP4A-LATM stream in, ADTS frames out.
#[derive(Debug)]
pub struct LatmDepacketizer {
    config: AacConfig,
    sub_frames: u8,
    element: Vec<u8>,
    ts: Option<u32>,
    next_seq: Option<u16>,
    broken: bool,
    adts: Vec<u8>,
    dropped: u64,
}

impl LatmDepacketizer {
    /// From the stream's fmtp parameters (`cpresent=0;config=...`).
    pub fn from_fmtp(fmtp: &str) -> Result<Self, LatmError> {
        let mut config = None;
        let mut cpresent = "1"; // RFC 6416's default
        for kv in fmtp.split(';') {
            let Some((k, v)) = kv.trim().split_once('=') else {
                continue;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "config" => config = Some(v.trim()),
                "cpresent" => cpresent = v.trim(),
                _ => {}
            }
        }
        if cpresent != "0" {
            return Err(config_error(
                "in-band configuration (cpresent=1) is not supported; the camera's SDP must carry config",
            ));
        }
        let config = config.ok_or_else(|| config_error("no config parameter"))?;
        let bytes = hex(config).ok_or_else(|| config_error("config is not hex"))?;
        let (config, sub_frames) = stream_mux_config(&bytes)?;
        Ok(LatmDepacketizer {
            config,
            sub_frames,
            element: Vec::with_capacity(2048),
            ts: None,
            next_seq: None,
            broken: false,
            adts: Vec::with_capacity(2048),
            dropped: 0,
        })
    }

    /// The AAC configuration read from the fmtp.
    pub fn config(&self) -> AacConfig {
        self.config
    }

    /// AudioMuxElements dropped: lost packets, malformed or oversized.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Reads one RTP packet's payload; at the marker bit calls `emit(adts_frame)` for
    /// each access unit of the completed AudioMuxElement.
    pub fn push(
        &mut self,
        seq: u16,
        ts: u32,
        marker: bool,
        payload: &[u8],
        emit: &mut dyn FnMut(&[u8]),
    ) {
        if self.ts.is_some_and(|t| t != ts) && !self.element.is_empty() {
            // The last element never got its marker bit.
            self.dropped += 1;
            self.element.clear();
            self.broken = false;
        }
        if self.next_seq.is_some_and(|s| s != seq) && !self.element.is_empty() {
            self.broken = true;
        }
        self.next_seq = Some(seq.wrapping_add(1));
        self.ts = Some(ts);
        self.element.extend_from_slice(payload);
        if self.element.len() > MAX_ELEMENT {
            self.broken = true;
            self.element.clear();
        }
        if !marker {
            return;
        }
        if self.broken || !self.units(emit) {
            self.dropped += 1;
        }
        self.element.clear();
        self.broken = false;
    }

    /// Splits the gathered element into its sub-frames; false when malformed.
    fn units(&mut self, emit: &mut dyn FnMut(&[u8])) -> bool {
        // First the lengths of every sub-frame, then the units, in turn.
        let mut rest = &self.element[..];
        for _ in 0..self.sub_frames {
            let mut len = 0usize;
            loop {
                let Some((&b, tail)) = rest.split_first() else {
                    return false;
                };
                rest = tail;
                len += usize::from(b);
                if b != 255 {
                    break;
                }
            }
            if len == 0 || len > rest.len() || len + 7 > 0x1fff {
                return false;
            }
            self.adts.clear();
            self.adts.extend_from_slice(&self.config.adts_header(len));
            self.adts.extend_from_slice(&rest[..len]);
            emit(&self.adts);
            rest = &rest[len..];
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What GStreamer 1.22's rtpmp4apay announces for 44.1 kHz mono AAC LC.
    const GST_FMTP: &str = "cpresent=0;config=40002410adca00";

    #[test]
    fn reads_gstreamers_config() {
        let d = LatmDepacketizer::from_fmtp(GST_FMTP).unwrap();
        assert_eq!(
            d.config(),
            AacConfig {
                object_type: 2,
                sample_rate_index: 4, // 44100
                channels: 1
            }
        );
        // The ADTS header says the same: LC, 44.1 kHz, mono, length 7 + 100.
        let h = d.config().adts_header(100);
        assert_eq!(h[..2], [0xff, 0xf1]);
        assert_eq!(h[2] >> 6, 1);
        assert_eq!((h[2] >> 2) & 0xf, 4);
        assert_eq!(((h[2] & 1) << 2) | (h[3] >> 6), 1);
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        assert_eq!(len, 107);
    }

    #[test]
    fn units_across_packets_and_long_lengths() {
        let mut d = LatmDepacketizer::from_fmtp(GST_FMTP).unwrap();
        // A 300-byte unit: length 255 + 45, split over two packets.
        let mut element = vec![255, 45];
        element.extend((0..300).map(|i| i as u8));
        let mut out = Vec::new();
        d.push(7, 1024, false, &element[..100], &mut |a| {
            out.push(a.to_vec())
        });
        assert!(out.is_empty());
        d.push(8, 1024, true, &element[100..], &mut |a| {
            out.push(a.to_vec())
        });
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 307);
        assert_eq!(&out[0][7..], &element[2..]);
        // The same element with its second packet lost, then a good one: one dropped.
        out.clear();
        d.push(9, 2048, false, &element[..100], &mut |a| {
            out.push(a.to_vec())
        });
        d.push(11, 2048, true, &element[100..], &mut |a| {
            out.push(a.to_vec())
        });
        d.push(12, 3072, true, &[3, 1, 2, 3], &mut |a| out.push(a.to_vec()));
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][7..], &[1, 2, 3]);
        assert_eq!(d.dropped(), 1);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for (fmtp, why) in [
            ("config=40002410adca00", "cpresent=1"),
            ("cpresent=0", "no config"),
            ("cpresent=0;config=4000241", "not hex"),
            ("cpresent=0;config=40", "cut short"),
            ("cpresent=0;config=80", "cut short"), // version 1, then nothing
            ("cpresent=0;config=40102410adca00", "more than one program"),
        ] {
            let e = LatmDepacketizer::from_fmtp(fmtp).unwrap_err().to_string();
            assert!(e.contains(why), "{fmtp}: {e}");
        }
        // Malformed elements are dropped and counted.
        let mut d = LatmDepacketizer::from_fmtp(GST_FMTP).unwrap();
        for (i, p) in [&[][..], &[5, 1, 2], &[255], &[0]].iter().enumerate() {
            d.push(i as u16, i as u32, true, p, &mut |_| {
                panic!("nothing to emit")
            });
        }
        assert_eq!(d.dropped(), 4);
    }
}
