//! AAC from FFmpeg 5.1 (a 1 kHz sine, 44.1 kHz, ADTS) becomes 20 ms Opus frames at
//! 48 kHz, and the tone survives: decoded back, it still crosses zero ~2000 times a second.
//! The same for MP4A-LATM RTP packets captured from GStreamer 1.22's rtpmp4apay.

use cardea_codecs::aac::{AacToOpus, OPUS_FRAME};
use cardea_codecs::latm::LatmDepacketizer;

/// Splits an ADTS stream into frames using each header's frame length.
fn adts_frames(mut d: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    while d.len() >= 7 && d[0] == 0xff && d[1] & 0xf0 == 0xf0 {
        let len =
            (((d[3] & 0x03) as usize) << 11) | ((d[4] as usize) << 3) | ((d[5] as usize) >> 5);
        if len < 7 || len > d.len() {
            break;
        }
        frames.push(&d[..len]);
        d = &d[len..];
    }
    frames
}

#[test]
fn sine_survives_transcoding() {
    let aac = include_bytes!("fixtures/ffmpeg_5_1_sine_1khz_44100.adts");
    let frames = adts_frames(aac);
    assert!(frames.len() > 15, "{} ADTS frames", frames.len());
    let mut t = AacToOpus::new().unwrap();
    let mut packets: Vec<(Vec<u8>, u32)> = Vec::new();
    for f in &frames {
        t.push_adts(f, &mut |p, ts| packets.push((p.to_vec(), ts)))
            .unwrap();
    }
    // About 0.5 s of audio: ~25 frames of 20 ms, timestamps 960 apart.
    assert!(
        (18..=26).contains(&packets.len()),
        "{} Opus packets",
        packets.len()
    );
    assert_1khz(&packets);
}

#[test]
fn latm_sine_survives_transcoding() {
    // [u16 length][RTP packet]..., 1 s of a 1 kHz sine; the SDP said this fmtp.
    let capture = include_bytes!("fixtures/gstreamer_1_22_latm_sine_1khz_44100.rtp");
    let mut latm = LatmDepacketizer::from_fmtp("cpresent=0;config=40002410adca00").unwrap();
    let mut t = AacToOpus::new().unwrap();
    let mut packets: Vec<(Vec<u8>, u32)> = Vec::new();
    let mut rest = &capture[..];
    let mut rtp = 0;
    while rest.len() > 2 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let p = &rest[2..2 + len];
        rest = &rest[2 + len..];
        rtp += 1;
        let seq = u16::from_be_bytes([p[2], p[3]]);
        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        latm.push(seq, ts, p[1] & 0x80 != 0, &p[12..], &mut |adts| {
            t.push_adts(adts, &mut |o, ts| packets.push((o.to_vec(), ts)))
                .unwrap();
        });
    }
    assert_eq!(rtp, 45);
    assert_eq!(latm.dropped(), 0);
    // 45 AAC frames of 1024 samples: ~1.04 s, ~50 Opus frames after the decoder delay.
    assert!(
        (45..=53).contains(&packets.len()),
        "{} Opus packets",
        packets.len()
    );
    assert_1khz(&packets);
}

/// Decodes the Opus packets and checks the tone: 1 kHz, steady timestamps.
fn assert_1khz(packets: &[(Vec<u8>, u32)]) {
    for (i, (_, ts)) in packets.iter().enumerate() {
        assert_eq!(*ts, (i * OPUS_FRAME) as u32);
    }
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut pcm = Vec::new();
    for (p, _) in packets {
        let mut out = vec![0f32; OPUS_FRAME];
        let n = dec.decode_float(p, &mut out, false).unwrap();
        pcm.extend_from_slice(&out[..n]);
    }
    // Skip the codecs' start-up, then count sign changes: 1 kHz = 2000 per second.
    let steady = &pcm[4800..];
    let crossings = steady
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    let per_second = crossings as f64 / (steady.len() as f64 / 48_000.0);
    assert!(
        (1900.0..2100.0).contains(&per_second),
        "{per_second} zero crossings per second"
    );
}
