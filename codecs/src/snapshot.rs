//! One keyframe (an H.264 or H.265 access unit in Annex B) to a JPEG picture:
//! libavcodec decodes it, libswscale converts it to full-range YUV 4:2:0, libavcodec's
//! MJPEG encoder writes the picture. For camera snapshots; input is hostile (a broken
//! access unit is an error, never a panic).

use ffmpeg::codec::Id;
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;

use crate::aac::TranscodeError;
use crate::keyframe::VideoCodec;

/// Largest picture decoded: 4096 × 3072 (12.6 MP), the largest surveillance cameras
/// (12 MP fisheyes, 4K). libavcodec checks the size a stream's parameter sets claim
/// before it allocates a picture: a keyframe of a few bytes claiming 8K cost 200 MiB
/// for each snapshot, and came back as a JPEG of noise.
const MAX_PIXELS: u64 = 4096 * 3072;
/// libavcodec's quality scale for MJPEG (2 best … 31 worst), times its lambda factor.
const JPEG_QUALITY: i32 = 4 * 118;

/// A JPEG picture and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jpeg {
    /// The JPEG file's bytes.
    pub data: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Decodes one keyframe access unit and encodes it as JPEG.
pub fn keyframe_to_jpeg(codec: VideoCodec, access_unit: &[u8]) -> Result<Jpeg, TranscodeError> {
    ffmpeg::init()?;
    // Broken camera frames are errors returned here, not lines on stderr.
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    let id = match codec {
        VideoCodec::H264 => Id::H264,
        VideoCodec::H265 => Id::HEVC,
        _ => {
            return Err(TranscodeError::Unsupported(
                "snapshots of H.264 and H.265 only",
            ))
        }
    };
    let found = ffmpeg::codec::decoder::find(id).ok_or(ffmpeg::Error::DecoderNotFound)?;
    let mut options = ffmpeg::Dictionary::new();
    options.set("max_pixels", &MAX_PIXELS.to_string());
    // One thread: one set of picture buffers, not one per core (frame threading).
    options.set("threads", "1");
    let mut decoder = ffmpeg::codec::context::Context::new_with_codec(found)
        .decoder()
        .open_as_with(found, options)?
        .video()?;
    decoder.send_packet(&ffmpeg::Packet::copy(access_unit))?;
    decoder.send_eof()?;
    let mut picture = ffmpeg::frame::Video::empty();
    decoder.receive_frame(&mut picture)?;
    let (width, height) = (picture.width(), picture.height());
    if width == 0 || height == 0 || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(TranscodeError::Unsupported("picture size out of range"));
    }
    let mut scaler = ffmpeg::software::scaling::Context::get(
        picture.format(),
        width,
        height,
        Pixel::YUVJ420P,
        width,
        height,
        ffmpeg::software::scaling::Flags::BILINEAR,
    )?;
    let mut full_range = ffmpeg::frame::Video::empty();
    scaler.run(&picture, &mut full_range)?;
    full_range.set_pts(Some(0));
    let mjpeg = ffmpeg::codec::encoder::find(Id::MJPEG).ok_or(ffmpeg::Error::EncoderNotFound)?;
    let mut setup = ffmpeg::codec::context::Context::new_with_codec(mjpeg)
        .encoder()
        .video()?;
    setup.set_width(width);
    setup.set_height(height);
    setup.set_format(Pixel::YUVJ420P);
    setup.set_time_base((1, 25));
    setup.set_flags(ffmpeg::codec::Flags::QSCALE);
    setup.set_global_quality(JPEG_QUALITY);
    let mut encoder = setup.open_as(mjpeg)?;
    encoder.send_frame(&full_range)?;
    encoder.send_eof()?;
    let mut packet = ffmpeg::Packet::empty();
    encoder.receive_packet(&mut packet)?;
    let data = packet.data().unwrap_or_default().to_vec();
    Ok(Jpeg {
        data,
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gst-launch-1.0 videotestsrc pattern=smpte num-buffers=1 ! 320x180 ! x264enc / x265enc,
    /// byte-stream: one access unit with its parameter sets.
    const H264: &[u8] =
        include_bytes!("../tests/fixtures/gstreamer_1_22_x264_smpte_320x180_keyframe.h264");
    const H265: &[u8] =
        include_bytes!("../tests/fixtures/gstreamer_1_22_x265_smpte_320x180_keyframe.h265");

    #[test]
    fn a_camera_keyframe_becomes_a_jpeg_of_its_size() {
        for (codec, au) in [(VideoCodec::H264, H264), (VideoCodec::H265, H265)] {
            let jpeg = keyframe_to_jpeg(codec, au).unwrap();
            assert_eq!((jpeg.width, jpeg.height), (320, 180), "{codec:?}");
            // A JPEG file: SOI first, EOI last, and the frame header's size.
            assert_eq!(&jpeg.data[..2], [0xff, 0xd8]);
            assert_eq!(&jpeg.data[jpeg.data.len() - 2..], [0xff, 0xd9]);
            let sof = jpeg
                .data
                .windows(2)
                .position(|w| w == [0xff, 0xc0])
                .unwrap();
            let h = u16::from_be_bytes([jpeg.data[sof + 5], jpeg.data[sof + 6]]);
            let w = u16::from_be_bytes([jpeg.data[sof + 7], jpeg.data[sof + 8]]);
            assert_eq!((w, h), (320, 180));
            assert!(
                jpeg.data.len() > 2000,
                "a real picture: {} bytes",
                jpeg.data.len()
            );
        }
        // The same access unit cut short: an error or a picture, never a panic.
        let _ = keyframe_to_jpeg(VideoCodec::H264, &H264[..H264.len() / 2]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [
            &b""[..],
            b"\x00\x00\x00\x01\x65\xff\xff",
            &[0xffu8; 4000][..],
        ] {
            assert!(keyframe_to_jpeg(VideoCodec::H264, junk).is_err());
            assert!(keyframe_to_jpeg(VideoCodec::H265, junk).is_err());
        }
        assert!(keyframe_to_jpeg(VideoCodec::Vp8, b"x").is_err());
    }
}
