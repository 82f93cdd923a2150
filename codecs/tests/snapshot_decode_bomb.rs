//! A snapshot decode bomb (issue 26): a keyframe of 3 KB of noise whose parameter sets
//! claim a huge picture. libavcodec must refuse the claim before it allocates the
//! picture, not after decoding it. Alone in its test binary: it measures this process's
//! peak resident memory.

use cardea_codecs::keyframe::VideoCodec;
use cardea_codecs::snapshot::keyframe_to_jpeg;

/// Bits of an H.264 NAL unit, Exp-Golomb coded where the standard says so.
#[derive(Default)]
struct Bits(Vec<bool>);

impl Bits {
    fn u(&mut self, n: u32, v: u64) -> &mut Self {
        self.0.extend((0..n).rev().map(|i| v >> i & 1 == 1));
        self
    }

    fn ue(&mut self, v: u64) -> &mut Self {
        let n = 64 - (v + 1).leading_zeros();
        self.u(n - 1, 0).u(n, v + 1)
    }

    /// The NAL unit: start code, header, the bits with a stop bit, emulation prevention.
    fn nal(&mut self, header: u8) -> Vec<u8> {
        self.u(1, 1);
        while !self.0.len().is_multiple_of(8) {
            self.0.push(false);
        }
        let mut out = vec![0, 0, 0, 1, header];
        let mut zeros = 0;
        for byte in self
            .0
            .chunks(8)
            .map(|b| b.iter().fold(0u8, |a, x| a << 1 | u8::from(*x)))
        {
            if zeros == 2 && byte <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if byte == 0 { zeros + 1 } else { 0 };
            out.push(byte);
        }
        out
    }
}

/// A keyframe of `noise` bytes whose parameter sets claim a `width`×`height` picture
/// (baseline profile, level 6.2), with a slice header the decoder takes.
fn claimed_keyframe(width: u64, height: u64, noise: usize) -> Vec<u8> {
    let mut sps = Bits::default();
    sps.u(8, 66)
        .u(8, 0xc0)
        .u(8, 62)
        .ue(0)
        .ue(0)
        .ue(2)
        .ue(1)
        .u(1, 0);
    sps.ue(width / 16 - 1)
        .ue(height / 16 - 1)
        .u(1, 1)
        .u(1, 1)
        .u(1, 0)
        .u(1, 0);
    let mut pps = Bits::default();
    pps.ue(0)
        .ue(0)
        .u(1, 0)
        .u(1, 0)
        .ue(0)
        .ue(0)
        .ue(0)
        .u(1, 0)
        .u(2, 0);
    pps.ue(0).ue(0).ue(0).u(1, 1).u(1, 0).u(1, 0);
    // I slice, IDR 0, QP as the PPS says, deblocking off; then noise.
    let mut idr = Bits::default();
    idr.ue(0)
        .ue(7)
        .ue(0)
        .u(4, 0)
        .ue(0)
        .u(1, 0)
        .u(1, 0)
        .ue(0)
        .ue(1);
    for i in 0..noise {
        idr.u(8, (i * 37 % 251) as u64 | 1);
    }
    let mut au = sps.nal(0x67);
    au.extend(pps.nal(0x68));
    au.extend(idr.nal(0x65));
    au
}

/// (resident, peak resident) of this process, KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The peak resident memory one decode of `au` adds, KiB, and whether it gave a picture.
fn peak_of(au: &[u8]) -> (u64, Option<(u32, u32)>) {
    // Resets the peak to the current resident size (Linux, /proc/PID/clear_refs).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let (before, _) = memory_kib();
    let picture = keyframe_to_jpeg(VideoCodec::H264, au)
        .ok()
        .map(|j| (j.width, j.height));
    let (_, peak) = memory_kib();
    (peak.saturating_sub(before), picture)
}

#[test]
fn a_huge_claim_is_refused_before_the_picture_is_allocated() {
    // The crafted stream decodes as the size it claims (noise, but a picture).
    let (cost, picture) = peak_of(&claimed_keyframe(1920, 1088, 3000));
    println!("3 KB of noise claiming 1920x1088: {picture:?}, peak +{cost} KiB");
    assert_eq!(picture, Some((1920, 1088)));
    // Claims past the snapshot limit (4096×3072): refused before the picture's memory.
    // Before the check they cost ≈ 200 MiB (8K) and ≈ 300 MiB (16K) each, and 8K came
    // back as a JPEG. What is left is libavcodec's tables per macroblock (≈ 100 bytes
    // each), allocated before it checks the size: ≈ 50 MiB for 16K, ≈ 12 MiB for 8K. A
    // check of the SPS before libavcodec sees it would take that too (issue 26).
    for (w, h, bound) in [
        (4096, 3088, 16 * 1024),
        (7680, 4320, 24 * 1024),
        (15360, 8640, 64 * 1024),
    ] {
        let (mut worst, mut picture) = (0, None);
        for _ in 0..5 {
            let (cost, p) = peak_of(&claimed_keyframe(w, h, 3000));
            worst = worst.max(cost);
            picture = picture.or(p);
        }
        println!("3 KB of noise claiming {w}x{h}: {picture:?}, peak +{worst} KiB");
        assert_eq!(picture, None, "{w}x{h}");
        assert!(worst < bound, "{w}x{h}: peak +{worst} KiB");
    }
}
