//! Voice between the browser (Opus) and SIP phones (G.711 or G.722), 20 ms at a time.
//! A phone that speaks Opus itself needs none of this: its leg is relayed.
//!
//! No resampler: libopus encodes from and decodes to the phone codec's rate itself
//! (8 kHz for G.711, 16 kHz for G.722; its decoder band-limits properly, its encoder
//! takes narrow- or wideband input), so the browser leg costs one Opus encode or
//! decode per frame and nothing else. Opus RTP timestamps stay on the 48 kHz clock
//! (RFC 7587): 960 per 20 ms. On the phone side every codec here carries 160 bytes
//! and 160 RTP timestamp ticks per 20 ms (G.722's RTP clock is 8 kHz, RFC 3551).
//! Sans-IO, allocation-free once built.

use audio_codec::g722::{G722Decoder, G722Encoder};
use audio_codec::{Decoder as _, Encoder as _};

use crate::aac::TranscodeError;
use crate::g711;
use crate::live::{Kind, Live};

/// Bytes (and RTP timestamp ticks) per 20 ms on the phone side: one packet.
pub const PHONE_FRAME: usize = 160;
/// Opus RTP timestamp step per 20 ms (48 kHz clock).
pub const OPUS_TS_STEP: u32 = 960;
/// Our payload type for Opus, toward the browser and in our SIP offers.
pub const OPUS_PT: u8 = 111;
/// Most samples per 20 ms at a phone codec's rate (16 kHz).
const MAX_FRAME_SAMPLES: usize = 320;
/// Longest Opus packet decoded: 120 ms at 16 kHz.
const MAX_DECODED: usize = 1920;

/// The SIP leg's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneCodec {
    /// G.711 µ-law, payload type 0.
    Pcmu,
    /// G.711 A-law, payload type 8.
    Pcma,
    /// G.722 at 64 kbit/s, payload type 9: 16 kHz audio.
    G722,
    /// Opus (RFC 7587), a dynamic payload type (ours: 111): the browser's own codec,
    /// relayed as it is; the transcoders here refuse it.
    Opus,
}

impl PhoneCodec {
    /// The static RTP payload type.
    pub fn pt(self) -> u8 {
        match self {
            PhoneCodec::Pcmu => 0,
            PhoneCodec::Pcma => 8,
            PhoneCodec::G722 => 9,
            PhoneCodec::Opus => OPUS_PT,
        }
    }

    /// The SDP rtpmap encoding name.
    pub fn name(self) -> &'static str {
        match self {
            PhoneCodec::Pcmu => "PCMU",
            PhoneCodec::Pcma => "PCMA",
            PhoneCodec::G722 => "G722",
            PhoneCodec::Opus => "opus",
        }
    }

    /// The RTP clock rate (G.722's is 8 kHz, RFC 3551; Opus's 48 kHz, RFC 7587).
    pub fn clock_rate(self) -> u32 {
        match self {
            PhoneCodec::Opus => 48_000,
            _ => 8_000,
        }
    }

    /// The SDP rtpmap encoding: name, clock rate and, for Opus, channels.
    pub fn rtpmap(self) -> &'static str {
        match self {
            PhoneCodec::Pcmu => "PCMU/8000",
            PhoneCodec::Pcma => "PCMA/8000",
            PhoneCodec::G722 => "G722/8000",
            PhoneCodec::Opus => "opus/48000/2",
        }
    }

    /// The codec of a static payload type.
    pub fn from_pt(pt: u8) -> Option<PhoneCodec> {
        [PhoneCodec::Pcmu, PhoneCodec::Pcma, PhoneCodec::G722]
            .into_iter()
            .find(|c| c.pt() == pt)
    }

    /// The audio's sample rate (not G.722's 8 kHz RTP clock).
    pub fn sample_rate(self) -> u32 {
        match self {
            PhoneCodec::Pcmu | PhoneCodec::Pcma => 8_000,
            PhoneCodec::G722 => 16_000,
            PhoneCodec::Opus => 48_000,
        }
    }

    /// Refuses Opus, which is relayed, never transcoded to or from itself.
    fn transcodable(self) -> Result<Self, TranscodeError> {
        match self {
            PhoneCodec::Opus => Err(TranscodeError::Unsupported(
                "Opus is relayed, not transcoded",
            )),
            c => Ok(c),
        }
    }

    /// Samples per 20 ms.
    fn frame_samples(self) -> usize {
        self.sample_rate() as usize / 50
    }
}

/// How long an Opus packet plays, in 48 kHz samples (from its TOC byte, RFC 6716
/// §3.1); None for a malformed packet.
pub fn opus_samples(packet: &[u8]) -> Option<u32> {
    opus::packet::get_nb_samples(packet, 48_000)
        .ok()
        .map(|n| n as u32)
}

/// A phone codec's encoder or decoder state (G.711 has none).
enum Phone<E> {
    G711(PhoneCodec),
    G722(Box<E>),
}

impl Phone<G722Encoder> {
    fn encoder(codec: PhoneCodec) -> Self {
        match codec {
            PhoneCodec::G722 => Phone::G722(Box::new(G722Encoder::new())),
            other => Phone::G711(other),
        }
    }

    /// One 20 ms frame of samples to `PHONE_FRAME` bytes.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8; PHONE_FRAME]) -> Result<(), TranscodeError> {
        match self {
            Phone::G711(codec) => {
                let f = match codec {
                    PhoneCodec::Pcma => g711::linear_to_alaw,
                    _ => g711::linear_to_ulaw,
                };
                for (o, s) in out.iter_mut().zip(pcm) {
                    *o = f(*s);
                }
            }
            Phone::G722(enc) => {
                enc.encode_into(pcm, out)?;
            }
        }
        Ok(())
    }
}

impl Phone<G722Decoder> {
    fn decoder(codec: PhoneCodec) -> Self {
        match codec {
            PhoneCodec::G722 => Phone::G722(Box::new(G722Decoder::new())),
            other => Phone::G711(other),
        }
    }

    /// Bytes to samples (one each for G.711, two for G.722); how many were written.
    fn decode(&mut self, bytes: &[u8], out: &mut [i16]) -> Result<usize, TranscodeError> {
        match self {
            Phone::G711(codec) => {
                let f = match codec {
                    PhoneCodec::Pcma => g711::alaw_to_linear,
                    _ => g711::ulaw_to_linear,
                };
                for (o, b) in out.iter_mut().zip(bytes) {
                    *o = f(*b);
                }
                Ok(bytes.len().min(out.len()))
            }
            Phone::G722(dec) => Ok(dec.decode_into(bytes, out)?),
        }
    }
}

/// Browser → phone: Opus packets in, 20 ms phone frames out.
pub struct OpusToPhone {
    samples: usize,
    encoder: Phone<G722Encoder>,
    decoder: opus::Decoder,
    decoded: [i16; MAX_DECODED],
    pending: [i16; MAX_FRAME_SAMPLES],
    pending_len: usize,
    frame: [u8; PHONE_FRAME],
    _live: Live,
}

impl OpusToPhone {
    /// A decoder toward `codec`.
    pub fn new(codec: PhoneCodec) -> Result<Self, TranscodeError> {
        let codec = codec.transcodable()?;
        Ok(OpusToPhone {
            samples: codec.frame_samples(),
            encoder: Phone::encoder(codec),
            decoder: opus::Decoder::new(codec.sample_rate(), opus::Channels::Mono)?,
            decoded: [0; MAX_DECODED],
            pending: [0; MAX_FRAME_SAMPLES],
            pending_len: 0,
            frame: [0; PHONE_FRAME],
            _live: Live::new(Kind::OpusToPhone),
        })
    }

    /// One Opus packet (any duration); `emit` gets each complete 20 ms phone frame.
    pub fn push(&mut self, opus: &[u8], emit: &mut dyn FnMut(&[u8])) -> Result<(), TranscodeError> {
        let n = self.decoder.decode(opus, &mut self.decoded, false)?;
        self.reframe(n, emit)
    }

    /// A packet was lost: `next` is the one after it if it has arrived (its in-band
    /// FEC rebuilds the lost one), else libopus conceals 20 ms.
    pub fn lost(
        &mut self,
        next: Option<&[u8]>,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Result<(), TranscodeError> {
        let out = &mut self.decoded[..self.samples];
        let n = match next {
            Some(p) => self.decoder.decode(p, out, true)?,
            None => self.decoder.decode(&[], out, false)?,
        };
        self.reframe(n, emit)
    }

    fn reframe(&mut self, n: usize, emit: &mut dyn FnMut(&[u8])) -> Result<(), TranscodeError> {
        let mut rest = &self.decoded[..n];
        while !rest.is_empty() {
            let take = (self.samples - self.pending_len).min(rest.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&rest[..take]);
            self.pending_len += take;
            rest = &rest[take..];
            if self.pending_len == self.samples {
                self.encoder
                    .encode(&self.pending[..self.samples], &mut self.frame)?;
                emit(&self.frame);
                self.pending_len = 0;
            }
        }
        Ok(())
    }
}

/// Phone → browser: phone codec bytes in, 20 ms Opus packets out.
pub struct PhoneToOpus {
    samples: usize,
    decoder: Phone<G722Decoder>,
    encoder: opus::Encoder,
    decoded: [i16; 2 * MAX_DECODED],
    pending: [i16; MAX_FRAME_SAMPLES],
    pending_len: usize,
    packet: [u8; 400],
    _live: Live,
}

impl PhoneToOpus {
    /// An encoder from `codec`, tuned for voice over lossy paths: in-band FEC on.
    pub fn new(codec: PhoneCodec) -> Result<Self, TranscodeError> {
        let codec = codec.transcodable()?;
        let mut encoder = opus::Encoder::new(
            codec.sample_rate(),
            opus::Channels::Mono,
            opus::Application::Voip,
        )?;
        encoder.set_inband_fec(true)?;
        encoder.set_packet_loss_perc(10)?;
        encoder.set_bitrate(opus::Bitrate::Bits(match codec {
            PhoneCodec::G722 => 32_000,
            _ => 24_000,
        }))?;
        Ok(PhoneToOpus {
            samples: codec.frame_samples(),
            decoder: Phone::decoder(codec),
            encoder,
            decoded: [0; 2 * MAX_DECODED],
            pending: [0; MAX_FRAME_SAMPLES],
            pending_len: 0,
            packet: [0; 400],
            _live: Live::new(Kind::PhoneToOpus),
        })
    }

    /// Phone codec bytes (any count up to 120 ms); `emit` gets each 20 ms Opus packet.
    pub fn push(
        &mut self,
        bytes: &[u8],
        emit: &mut dyn FnMut(&[u8]),
    ) -> Result<(), TranscodeError> {
        for chunk in bytes.chunks(MAX_DECODED) {
            let n = self.decoder.decode(chunk, &mut self.decoded)?;
            let mut rest = &self.decoded[..n];
            while !rest.is_empty() {
                let take = (self.samples - self.pending_len).min(rest.len());
                self.pending[self.pending_len..self.pending_len + take]
                    .copy_from_slice(&rest[..take]);
                self.pending_len += take;
                rest = &rest[take..];
                if self.pending_len == self.samples {
                    self.pending_len = 0;
                    let len = self
                        .encoder
                        .encode(&self.pending[..self.samples], &mut self.packet)?;
                    emit(&self.packet[..len]);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sign changes per second of `pcm` at `rate`, after the codecs' start-up.
    fn crossings_per_second(pcm: &[i16], rate: usize) -> f64 {
        let steady = &pcm[rate / 10..];
        let n = steady
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        n as f64 / (steady.len() as f64 / rate as f64)
    }

    fn sine(freq: f64, rate: usize, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16
            })
            .collect()
    }

    /// A phone's `pcm` as its codec's 20 ms packets.
    fn phone_packets(codec: PhoneCodec, pcm: &[i16]) -> Vec<[u8; PHONE_FRAME]> {
        let mut enc = Phone::encoder(codec);
        pcm.chunks(codec.frame_samples())
            .map(|c| {
                let mut out = [0u8; PHONE_FRAME];
                enc.encode(c, &mut out).unwrap();
                out
            })
            .collect()
    }

    #[test]
    fn a_phones_tone_reaches_the_browser_and_comes_back() {
        for codec in [PhoneCodec::Pcmu, PhoneCodec::Pcma, PhoneCodec::G722] {
            // 1 s of 1 kHz from the phone, in 20 ms packets.
            let rate = codec.sample_rate() as usize;
            let packets = phone_packets(codec, &sine(1000.0, rate, rate));
            assert_eq!(packets.len(), 50);
            let mut to_opus = PhoneToOpus::new(codec).unwrap();
            let mut opus_packets = Vec::new();
            for f in &packets {
                to_opus
                    .push(f, &mut |p| opus_packets.push(p.to_vec()))
                    .unwrap();
            }
            assert_eq!(opus_packets.len(), 50, "{codec:?}");
            // The browser decodes at 48 kHz: still 1 kHz.
            let mut browser = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
            let mut heard = Vec::new();
            for p in &opus_packets {
                let mut out = [0i16; 960];
                let n = browser.decode(p, &mut out, false).unwrap();
                heard.extend_from_slice(&out[..n]);
            }
            let f = crossings_per_second(&heard, 48_000);
            assert!(
                (1950.0..2050.0).contains(&f),
                "{codec:?}: {f} crossings/s in the browser"
            );
            // Back toward a phone: 20 ms frames, still 1 kHz.
            let mut to_phone = OpusToPhone::new(codec).unwrap();
            let mut dec = Phone::decoder(codec);
            let mut back = Vec::new();
            for p in &opus_packets {
                to_phone
                    .push(p, &mut |f| {
                        assert_eq!(f.len(), PHONE_FRAME);
                        let mut pcm = [0i16; MAX_FRAME_SAMPLES];
                        let n = dec.decode(f, &mut pcm).unwrap();
                        back.extend_from_slice(&pcm[..n]);
                    })
                    .unwrap();
            }
            assert_eq!(back.len(), rate, "{codec:?}");
            let f = crossings_per_second(&back, rate);
            assert!(
                (1950.0..2050.0).contains(&f),
                "{codec:?}: {f} crossings/s at the phone"
            );
        }
    }

    /// G.722 is wideband: a 6 kHz tone (beyond G.711's 4 kHz) survives the phone →
    /// browser path.
    #[test]
    fn opus_packet_durations_come_from_the_toc() {
        // Config 1 (SILK NB 20 ms), one frame; config 2 (40 ms); config 31 (CELT
        // 20 ms) with code 1: two frames.
        assert_eq!(opus_samples(&[1 << 3, 0, 0]), Some(960));
        assert_eq!(opus_samples(&[2 << 3, 0, 0]), Some(1920));
        assert_eq!(opus_samples(&[31 << 3 | 1, 0, 0]), Some(1920));
        assert_eq!(opus_samples(&[]), None);
    }

    #[test]
    fn opus_is_never_transcoded_to_itself() {
        assert!(OpusToPhone::new(PhoneCodec::Opus).is_err());
        assert!(PhoneToOpus::new(PhoneCodec::Opus).is_err());
        assert_eq!(PhoneCodec::Opus.clock_rate(), 48_000);
        assert_eq!(PhoneCodec::G722.clock_rate(), 8_000);
        // Dynamic: no static payload type maps to it.
        assert_eq!(PhoneCodec::from_pt(OPUS_PT), None);
    }

    #[test]
    fn g722_carries_wideband_audio() {
        let packets = phone_packets(PhoneCodec::G722, &sine(6000.0, 16_000, 16_000));
        let mut to_opus = PhoneToOpus::new(PhoneCodec::G722).unwrap();
        let mut browser = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut heard = Vec::new();
        for f in &packets {
            to_opus
                .push(f, &mut |p| {
                    let mut out = [0i16; 960];
                    let n = browser.decode(p, &mut out, false).unwrap();
                    heard.extend_from_slice(&out[..n]);
                })
                .unwrap();
        }
        let f = crossings_per_second(&heard, 48_000);
        assert!((11_700.0..12_300.0).contains(&f), "{f} crossings/s");
    }

    #[test]
    fn a_browsers_wideband_opus_reaches_the_phone_and_losses_are_filled() {
        // Chromium sends 48 kHz Opus; 440 Hz, 1 s, 20 ms packets.
        let tone = sine(440.0, 48_000, 48_000);
        let mut enc =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
        enc.set_inband_fec(true).unwrap();
        enc.set_packet_loss_perc(10).unwrap();
        let packets: Vec<Vec<u8>> = tone
            .chunks(960)
            .map(|c| enc.encode_vec(c, 400).unwrap())
            .collect();
        for codec in [PhoneCodec::Pcmu, PhoneCodec::G722] {
            let rate = codec.sample_rate() as usize;
            let mut to_phone = OpusToPhone::new(codec).unwrap();
            let mut dec = Phone::decoder(codec);
            let mut frames = 0;
            let mut pcm = Vec::new();
            let mut collect = |f: &[u8]| {
                let mut out = [0i16; MAX_FRAME_SAMPLES];
                let n = dec.decode(f, &mut out).unwrap();
                pcm.extend_from_slice(&out[..n]);
                frames += 1;
            };
            for (i, p) in packets.iter().enumerate() {
                if i % 10 == 5 {
                    // Lost: rebuilt from the next packet's FEC (or concealed at the end).
                    to_phone
                        .lost(packets.get(i + 1).map(|p| &p[..]), &mut collect)
                        .unwrap();
                } else {
                    to_phone.push(p, &mut collect).unwrap();
                }
            }
            assert_eq!(
                frames, 50,
                "{codec:?}: one frame per 20 ms, losses included"
            );
            let f = crossings_per_second(&pcm, rate);
            assert!(
                (860.0..900.0).contains(&f),
                "{codec:?}: {f} crossings/s at the phone"
            );
        }
    }
}
