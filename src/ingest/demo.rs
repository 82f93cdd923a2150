//! The built-in demo source: a moving test pattern (H.264, OpenH264) and a tone
//! (G.711 µ-law), so a browser shows video with sound with no camera attached.
//! It encodes only while someone watches, and starts each watch with a keyframe.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cardea_codecs::g711::linear_to_ulaw;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod};
use openh264::formats::YUVSlices;
use openh264::OpenH264API;

use crate::ids::SourceId;
use crate::ingest::packetizer::TrackPacketizer;
use crate::ingest::rtp::SourceCounters;
use crate::media::source::SourcePacket;
use crate::media::webrtc::queue::MediaTx;

/// Picture size of the demo stream.
pub(crate) const WIDTH: usize = 640;
/// Picture height of the demo stream.
pub(crate) const HEIGHT: usize = 360;
const FPS: u32 = 30;
/// Payload types the demo mountpoint declares.
pub(crate) const VIDEO_PT: u8 = 96;
/// G.711 µ-law's static payload type.
pub(crate) const AUDIO_PT: u8 = 0;

/// Track indices within the demo source.
pub(crate) const AUDIO_TRACK: u8 = 0;
/// Video track index.
pub(crate) const VIDEO_TRACK: u8 = 1;

/// Draws frame `n` of the pattern into I420 planes: colour bars drifting sideways,
/// a bright square bouncing across, and the chroma slowly cycling.
fn draw(n: u32, y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    let shift = (n as usize * 4) % WIDTH;
    for row in 0..HEIGHT {
        for col in 0..WIDTH {
            let bar = ((col + shift) % WIDTH) * 8 / WIDTH;
            y[row * WIDTH + col] = 40 + (bar as u8) * 25;
        }
    }
    let period = 2 * (WIDTH - 80) as u32;
    let t = n * 6 % period;
    let x = if t < period / 2 { t } else { period - t } as usize;
    let y0 = (HEIGHT - 80) / 2 + ((n as f32 / 10.0).sin() * 80.0) as usize;
    for row in y0..(y0 + 80).min(HEIGHT) {
        y[row * WIDTH + x..row * WIDTH + x + 80].fill(235);
    }
    let (cu, cv) = (
        128 + ((n % 256) as i32 - 128) / 2,
        128 - ((n % 256) as i32 - 128) / 2,
    );
    u.fill(cu as u8);
    v.fill(cv as u8);
}

/// Runs the demo source on the current thread until `stop` is set.
pub(crate) fn run(
    source: SourceId,
    viewers: Arc<AtomicUsize>,
    counters: Arc<SourceCounters>,
    stop: Arc<AtomicBool>,
    engine: MediaTx,
) {
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(1_200_000))
        .max_frame_rate(FrameRate::from_hz(FPS as f32))
        .intra_frame_period(IntraFramePeriod::from_num_frames(2 * FPS));
    let mut encoder = match Encoder::with_api_config(OpenH264API::from_source(), config) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(%source, error = %e, "demo source: cannot create the H.264 encoder");
            return;
        }
    };
    let (mut y, mut u, mut v) = (
        vec![0u8; WIDTH * HEIGHT],
        vec![0u8; WIDTH * HEIGHT / 4],
        vec![0u8; WIDTH * HEIGHT / 4],
    );
    let ssrc = rand::random::<u32>();
    let mut audio = TrackPacketizer::new(source, AUDIO_TRACK, AUDIO_PT, ssrc ^ 1);
    let mut video = TrackPacketizer::new(source, VIDEO_TRACK, VIDEO_PT, ssrc);
    let mut frame = 0u32;
    let mut samples = 0u64;
    let mut watching = false;
    #[allow(clippy::disallowed_methods)] // the demo source is a driver: it owns its clock
    let start = Instant::now();
    let mut next_frame = start;
    let mut next_audio = start;
    let mut emit = |p: SourcePacket| {
        counters.arrived(p.arrival, p.payload.len());
        if p.keyframe == Some(true) {
            counters.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        engine.packet(p).is_ok()
    };
    while !stop.load(Ordering::Relaxed) {
        if viewers.load(Ordering::Relaxed) == 0 {
            watching = false;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        #[allow(clippy::disallowed_methods)] // the demo source is a driver: it owns its clock
        let now = Instant::now();
        if !watching {
            watching = true;
            encoder.force_intra_frame();
            next_frame = now;
            next_audio = now;
        }
        while next_audio <= now {
            // A 440 Hz tone with an 880 Hz beep in the first 200 ms of every second.
            let mut pcm = [0u8; 160];
            for (i, out) in pcm.iter_mut().enumerate() {
                let t = (samples + i as u64) as f32 / 8000.0;
                let f = if t.fract() < 0.2 { 880.0 } else { 440.0 };
                *out =
                    linear_to_ulaw((f32::sin(2.0 * std::f32::consts::PI * f * t) * 6000.0) as i16);
            }
            if !audio.whole(&pcm, samples as u32, now, &mut emit) {
                return;
            }
            samples += 160;
            next_audio += Duration::from_millis(20);
        }
        if next_frame <= now {
            draw(frame, &mut y, &mut u, &mut v);
            let yuv = YUVSlices::new((&y, &u, &v), (WIDTH, HEIGHT), (WIDTH, WIDTH / 2, WIDTH / 2));
            let bitstream = match encoder.encode(&yuv) {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    tracing::warn!(%source, error = %e, "demo source: encode failed");
                    Vec::new()
                }
            };
            let ts = frame.wrapping_mul(90_000 / FPS);
            if !video.access_unit(&bitstream, ts, now, &mut emit) {
                return;
            }
            frame = frame.wrapping_add(1);
            next_frame += Duration::from_secs(1) / FPS;
        }
        let wake = next_frame.min(next_audio);
        #[allow(clippy::disallowed_methods)] // the demo source is a driver: it owns its clock
        let left = wake.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}
