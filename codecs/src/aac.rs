//! AAC (ADTS-framed, as RTSP cameras' RFC 3640 / LATM audio arrives from retina) to
//! Opus 48 kHz mono, so AAC cameras have sound in browsers. Decoding and resampling
//! by libavcodec/libswresample (ffmpeg-next), encoding by libopus.

use ffmpeg::format::sample::{Sample, Type};
use ffmpeg::ChannelLayout;
use ffmpeg_next as ffmpeg;

/// Samples per Opus frame: 20 ms at 48 kHz.
pub const OPUS_FRAME: usize = 960;

/// Why a transcoder could not be made or fed.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// libavcodec or libswresample failed.
    #[error("ffmpeg: {0}")]
    Ffmpeg(#[from] ffmpeg::Error),
    /// libopus failed.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// The G.722 codec refused its buffers.
    #[error("g722: {0}")]
    G722(#[from] audio_codec::CodecError),
    /// A conversion this crate does not make.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// AAC in, Opus out, with timestamps on the 48 kHz clock.
pub struct AacToOpus {
    decoder: ffmpeg::decoder::Audio,
    resampler: Option<(
        ffmpeg::software::resampling::Context,
        u32,
        ChannelLayout,
        Sample,
    )>,
    encoder: opus::Encoder,
    pending: Vec<f32>,
    /// 48 kHz timestamp of the next Opus frame.
    next_ts: u32,
    packet: Vec<u8>,
    _live: crate::live::Live,
}

impl AacToOpus {
    /// A transcoder for one stream.
    pub fn new() -> Result<Self, TranscodeError> {
        ffmpeg::init()?;
        let codec = ffmpeg::codec::decoder::find(ffmpeg::codec::Id::AAC)
            .ok_or(ffmpeg::Error::DecoderNotFound)?;
        let decoder = ffmpeg::codec::context::Context::new_with_codec(codec)
            .decoder()
            .audio()?;
        let mut encoder =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio)?;
        encoder.set_inband_fec(true)?;
        Ok(AacToOpus {
            decoder,
            resampler: None,
            encoder,
            pending: Vec::with_capacity(OPUS_FRAME * 4),
            next_ts: 0,
            packet: vec![0; 1500],
            _live: crate::live::Live::new(crate::live::Kind::AacToOpus),
        })
    }

    /// Feeds one ADTS frame; calls `emit(opus_packet, ts_48k)` for every 20 ms of audio.
    pub fn push_adts(
        &mut self,
        adts: &[u8],
        emit: &mut dyn FnMut(&[u8], u32),
    ) -> Result<(), TranscodeError> {
        self.decoder.send_packet(&ffmpeg::Packet::copy(adts))?;
        let mut frame = ffmpeg::frame::Audio::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            let (rate, layout, format) = (frame.rate(), frame.channel_layout(), frame.format());
            let stale = !matches!(&self.resampler, Some((_, r, l, f)) if *r == rate && *l == layout && *f == format);
            if stale {
                let ctx = ffmpeg::software::resampling::Context::get(
                    format,
                    layout,
                    rate,
                    Sample::F32(Type::Packed),
                    ChannelLayout::MONO,
                    48_000,
                )?;
                self.resampler = Some((ctx, rate, layout, format));
            }
            let Some((resampler, ..)) = self.resampler.as_mut() else {
                continue;
            };
            let mut out = ffmpeg::frame::Audio::empty();
            resampler.run(&frame, &mut out)?;
            let n = out.samples();
            self.pending.extend_from_slice(&out.plane::<f32>(0)[..n]);
            while self.pending.len() >= OPUS_FRAME {
                let len = self
                    .encoder
                    .encode_float(&self.pending[..OPUS_FRAME], &mut self.packet)?;
                emit(&self.packet[..len], self.next_ts);
                self.next_ts = self.next_ts.wrapping_add(OPUS_FRAME as u32);
                self.pending.drain(..OPUS_FRAME);
            }
        }
        Ok(())
    }
}
