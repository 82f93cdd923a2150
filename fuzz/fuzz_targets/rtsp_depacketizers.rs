//! What the gateway reads from an RTSP camera it takes packet by packet: the SDP's
//! fmtp lines per stream, H.264 and H.265 RTP back to access units, MP4A-LATM fmtp
//! configs and AudioMuxElements to ADTS frames. No panic; every unit is Annex B,
//! every ADTS frame says its own length.
#![no_main]

use cardea::fuzzing::rtsp_stream_fmtps as stream_fmtps;
use cardea_codecs::h26x::Depacketizer;
use cardea_codecs::keyframe::VideoCodec;
use cardea_codecs::latm::LatmDepacketizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let fmtps = stream_fmtps(&text, &[("video", 96), ("audio", 97), ("video", 96)]);
    assert_eq!(fmtps.len(), 3);
    // An fmtp from the input, else GStreamer's.
    let fmtp = fmtps[1]
        .as_deref()
        .unwrap_or("cpresent=0;config=40002410adca00");
    let mut latm = LatmDepacketizer::from_fmtp(fmtp)
        .or_else(|_| LatmDepacketizer::from_fmtp("cpresent=0;config=40002410adca00"))
        .expect("GStreamer's config reads");
    let mut video = [
        Depacketizer::new(VideoCodec::H264),
        Depacketizer::new(VideoCodec::H265),
    ];
    // The input as packets: [len][flags][payload]...; flags: marker, timestamp step.
    let mut rest = data;
    let (mut seq, mut ts) = (0u16, 0u32);
    while let [len, flags, tail @ ..] = rest {
        let take = (*len as usize).min(tail.len());
        let (payload, next) = tail.split_at(take);
        rest = next;
        let marker = flags & 1 != 0;
        ts = ts.wrapping_add(u32::from(flags >> 5) * 1500);
        // A skipped sequence number now and then, as on a lossy path.
        seq = seq.wrapping_add(1 + u16::from(flags & 2 != 0));
        for d in video.iter_mut() {
            d.push(seq, ts, marker, payload, &mut |au, _| {
                assert_eq!(&au[..4], &[0, 0, 0, 1]);
            });
        }
        latm.push(seq, ts, marker, payload, &mut |adts| {
            let len = (usize::from(adts[3] & 3) << 11)
                | (usize::from(adts[4]) << 3)
                | usize::from(adts[5] >> 5);
            assert_eq!(len, adts.len());
        });
    }
});
