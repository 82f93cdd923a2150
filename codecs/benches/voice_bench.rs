//! The codec floor of a transcoded call: per 20 ms, the browser's Opus (48 kHz,
//! as Chromium sends it) decoded for the phone (PCMU, then G.722), and the phone's
//! audio encoded to Opus for the browser. Prints CPU per call and calls per core for the
//! codecs alone; RTP, SRTP and the jitter buffer come on top (the bridge bench).
//! Asserts nothing. `cargo bench -p cardea-codecs --bench voice_bench`.
#![allow(clippy::disallowed_methods)] // a bench measures time

use std::time::Instant;

use cardea_codecs::voice::{OpusToPhone, PhoneCodec, PhoneToOpus, PHONE_FRAME};

const CALLS: usize = 100;
const SECONDS: usize = 10;
const FRAMES: usize = SECONDS * 50;

fn main() {
    // A voice-like signal: a gliding tone with harmonics and a little noise, 48 kHz.
    let mut seed = 1u32;
    let mut noise = || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        f64::from(seed >> 16) / 65536.0 - 0.5
    };
    let wideband: Vec<i16> = (0..48_000 * SECONDS)
        .map(|i| {
            let t = i as f64 / 48_000.0;
            let f = 150.0 + 100.0 * (t * 0.7).sin();
            let phase = 2.0 * std::f64::consts::PI * f * t;
            (6000.0 * (phase.sin() + 0.5 * (2.0 * phase).sin() + 0.25 * (3.0 * phase).sin())
                + 500.0 * noise()) as i16
        })
        .collect();
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    enc.set_inband_fec(true).unwrap();
    let from_browser: Vec<Vec<u8>> = wideband
        .chunks(960)
        .map(|c| enc.encode_vec(c, 400).unwrap())
        .collect();
    let pcmu: Vec<u8> = wideband
        .iter()
        .step_by(6)
        .map(|s| cardea_codecs::g711::linear_to_ulaw(*s))
        .collect();
    // The phone's G.722: the same signal through our own encoder path.
    let mut g722 = Vec::with_capacity(FRAMES * PHONE_FRAME);
    let mut to_g722 = OpusToPhone::new(PhoneCodec::G722).unwrap();
    for p in &from_browser {
        to_g722.push(p, &mut |f| g722.extend_from_slice(f)).unwrap();
    }
    g722.resize(FRAMES * PHONE_FRAME, 0);
    run(PhoneCodec::Pcmu, &from_browser, &pcmu);
    run(PhoneCodec::G722, &from_browser, &g722);
}

/// `CALLS` calls for `SECONDS` with the phone speaking `codec`: prints the figures.
fn run(codec: PhoneCodec, from_browser: &[Vec<u8>], from_phone: &[u8]) {
    let mut calls: Vec<(OpusToPhone, PhoneToOpus)> = (0..CALLS)
        .map(|_| {
            (
                OpusToPhone::new(codec).unwrap(),
                PhoneToOpus::new(codec).unwrap(),
            )
        })
        .collect();
    let (mut to_phone, mut to_browser) = (0usize, 0usize);
    let start = Instant::now();
    for frame in 0..FRAMES {
        let opus = &from_browser[frame];
        let phone = &from_phone[frame * PHONE_FRAME..(frame + 1) * PHONE_FRAME];
        for (down, up) in calls.iter_mut() {
            down.push(opus, &mut |f| to_phone += f.len()).unwrap();
            up.push(phone, &mut |p| to_browser += p.len()).unwrap();
        }
    }
    let cpu = start.elapsed().as_secs_f64();
    let per_call = cpu / (CALLS * SECONDS) as f64; // seconds of CPU per second of call
    println!(
        "voice codecs, {CALLS} calls x {SECONDS} s (Opus 48 kHz -> {codec:?} and {codec:?} -> Opus, 20 ms frames):"
    );
    println!(
        "  {:.1} us CPU per 20 ms frame per call (both directions), {:.2}% of a core per call, {:.0} calls per core",
        per_call * 20_000.0,
        per_call * 100.0,
        1.0 / per_call
    );
    println!(
        "  sent {} bytes of {codec:?} and {} bytes of Opus per call-second",
        to_phone / (CALLS * SECONDS),
        to_browser / (CALLS * SECONDS)
    );
}
