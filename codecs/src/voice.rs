//! Voice between the browser (Opus) and SIP phones (G.711), 20 ms at a time.
//!
//! No resampler: libopus encodes from and decodes to 8 kHz itself (its decoder
//! band-limits properly, its encoder takes narrowband input), which is what G.711
//! carries anyway, so the browser leg costs one Opus encode or decode per frame and
//! nothing else. Opus RTP timestamps stay on the 48 kHz clock (RFC 7587): 960 per
//! 20 ms. Sans-IO, allocation-free once built.

use crate::aac::TranscodeError;
use crate::g711;

/// Samples per 20 ms at 8 kHz: one G.711 packet.
pub const G711_FRAME: usize = 160;
/// Opus RTP timestamp step per 20 ms (48 kHz clock).
pub const OPUS_TS_STEP: u32 = 960;
/// Longest Opus packet decoded: 120 ms at 8 kHz.
const MAX_DECODED: usize = 960;

/// The SIP leg's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711 {
    /// µ-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

impl G711 {
    /// The static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            G711::Pcmu => 0,
            G711::Pcma => 8,
        }
    }

    fn encode(self, pcm: &[i16], out: &mut [u8]) {
        let f = match self {
            G711::Pcmu => g711::linear_to_ulaw,
            G711::Pcma => g711::linear_to_alaw,
        };
        for (o, s) in out.iter_mut().zip(pcm) {
            *o = f(*s);
        }
    }

    fn decode(self, bytes: &[u8], out: &mut [i16]) {
        let f = match self {
            G711::Pcmu => g711::ulaw_to_linear,
            G711::Pcma => g711::alaw_to_linear,
        };
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = f(*b);
        }
    }
}

/// Browser → phone: Opus packets in, 20 ms G.711 frames out.
pub struct OpusToG711 {
    codec: G711,
    decoder: opus::Decoder,
    decoded: [i16; MAX_DECODED],
    pending: [i16; G711_FRAME],
    pending_len: usize,
    frame: [u8; G711_FRAME],
}

impl OpusToG711 {
    /// A decoder toward `codec`.
    pub fn new(codec: G711) -> Result<Self, TranscodeError> {
        Ok(OpusToG711 {
            codec,
            decoder: opus::Decoder::new(8_000, opus::Channels::Mono)?,
            decoded: [0; MAX_DECODED],
            pending: [0; G711_FRAME],
            pending_len: 0,
            frame: [0; G711_FRAME],
        })
    }

    /// One Opus packet (any duration); `emit` gets each complete 20 ms G.711 frame.
    pub fn push(&mut self, opus: &[u8], emit: &mut dyn FnMut(&[u8])) -> Result<(), TranscodeError> {
        let n = self.decoder.decode(opus, &mut self.decoded, false)?;
        self.reframe(n, emit);
        Ok(())
    }

    /// A packet was lost: `next` is the one after it if it has arrived (its in-band
    /// FEC rebuilds the lost one), else libopus conceals 20 ms.
    pub fn lost(
        &mut self,
        next: Option<&[u8]>,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Result<(), TranscodeError> {
        let out = &mut self.decoded[..G711_FRAME];
        let n = match next {
            Some(p) => self.decoder.decode(p, out, true)?,
            None => self.decoder.decode(&[], out, false)?,
        };
        self.reframe(n, emit);
        Ok(())
    }

    fn reframe(&mut self, n: usize, emit: &mut dyn FnMut(&[u8])) {
        let mut rest = &self.decoded[..n];
        while !rest.is_empty() {
            let take = (G711_FRAME - self.pending_len).min(rest.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&rest[..take]);
            self.pending_len += take;
            rest = &rest[take..];
            if self.pending_len == G711_FRAME {
                self.codec.encode(&self.pending, &mut self.frame);
                emit(&self.frame);
                self.pending_len = 0;
            }
        }
    }
}

/// Phone → browser: G.711 in, 20 ms Opus packets out.
pub struct G711ToOpus {
    codec: G711,
    encoder: opus::Encoder,
    pending: [i16; G711_FRAME],
    pending_len: usize,
    packet: [u8; 400],
}

impl G711ToOpus {
    /// An encoder from `codec`, tuned for voice over lossy paths: in-band FEC on.
    pub fn new(codec: G711) -> Result<Self, TranscodeError> {
        let mut encoder = opus::Encoder::new(8_000, opus::Channels::Mono, opus::Application::Voip)?;
        encoder.set_inband_fec(true)?;
        encoder.set_packet_loss_perc(10)?;
        encoder.set_bitrate(opus::Bitrate::Bits(24_000))?;
        Ok(G711ToOpus {
            codec,
            encoder,
            pending: [0; G711_FRAME],
            pending_len: 0,
            packet: [0; 400],
        })
    }

    /// G.711 bytes (any count); `emit` gets each 20 ms Opus packet.
    pub fn push(&mut self, g711: &[u8], emit: &mut dyn FnMut(&[u8])) -> Result<(), TranscodeError> {
        let mut rest = g711;
        while !rest.is_empty() {
            let take = (G711_FRAME - self.pending_len).min(rest.len());
            self.codec.decode(
                &rest[..take],
                &mut self.pending[self.pending_len..self.pending_len + take],
            );
            self.pending_len += take;
            rest = &rest[take..];
            if self.pending_len == G711_FRAME {
                self.pending_len = 0;
                let len = self.encoder.encode(&self.pending, &mut self.packet)?;
                emit(&self.packet[..len]);
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

    #[test]
    fn a_phones_tone_reaches_the_browser_and_comes_back() {
        for codec in [G711::Pcmu, G711::Pcma] {
            // 1 s of 1 kHz from the phone, in 20 ms G.711 packets.
            let tone = sine(1000.0, 8000, 8000);
            let mut g711 = vec![0u8; tone.len()];
            codec.encode(&tone, &mut g711);
            let mut to_opus = G711ToOpus::new(codec).unwrap();
            let mut opus_packets = Vec::new();
            for f in g711.chunks(G711_FRAME) {
                to_opus
                    .push(f, &mut |p| opus_packets.push(p.to_vec()))
                    .unwrap();
            }
            assert_eq!(opus_packets.len(), 50);
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
            // Back toward a phone: 20 ms G.711 frames, still 1 kHz.
            let mut to_g711 = OpusToG711::new(codec).unwrap();
            let mut back = Vec::new();
            for p in &opus_packets {
                to_g711
                    .push(p, &mut |f| {
                        assert_eq!(f.len(), G711_FRAME);
                        let mut pcm = [0i16; G711_FRAME];
                        codec.decode(f, &mut pcm);
                        back.extend_from_slice(&pcm);
                    })
                    .unwrap();
            }
            assert_eq!(back.len(), 8000);
            let f = crossings_per_second(&back, 8000);
            assert!(
                (1950.0..2050.0).contains(&f),
                "{codec:?}: {f} crossings/s at the phone"
            );
        }
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
        let mut to_g711 = OpusToG711::new(G711::Pcmu).unwrap();
        let mut frames = 0;
        let mut pcm = Vec::new();
        let mut collect = |f: &[u8]| {
            let mut out = [0i16; G711_FRAME];
            G711::Pcmu.decode(f, &mut out);
            pcm.extend_from_slice(&out);
            frames += 1;
        };
        for (i, p) in packets.iter().enumerate() {
            if i % 10 == 5 {
                // Lost: rebuilt from the next packet's FEC (or concealed at the end).
                to_g711
                    .lost(packets.get(i + 1).map(|p| &p[..]), &mut collect)
                    .unwrap();
            } else {
                to_g711.push(p, &mut collect).unwrap();
            }
        }
        assert_eq!(frames, 50, "one G.711 frame per 20 ms, losses included");
        let f = crossings_per_second(&pcm, 8000);
        assert!((860.0..900.0).contains(&f), "{f} crossings/s at the phone");
    }
}
