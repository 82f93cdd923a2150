//! H.264 over RTP (RFC 6184, packetization mode 1): split an Annex B access unit
//! into NAL units and NAL units into RTP payloads (single NAL or FU-A fragments).

/// Splits an Annex B byte stream (start codes 00 00 01 / 00 00 00 01) into NAL units.
pub fn annex_b_nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = stream;
    std::iter::from_fn(move || loop {
        let start = find_start_code(rest)?;
        let after = &rest[start.1..];
        let end = find_start_code(after).map_or(after.len(), |(s, _)| s);
        let nal = &after[..end];
        rest = &after[end..];
        // Trailing zero bytes belong to the next start code, not the NAL.
        let trimmed = match nal.iter().rposition(|b| *b != 0) {
            Some(last) => &nal[..=last],
            None => &nal[..0],
        };
        if !trimmed.is_empty() {
            return Some(trimmed);
        }
        if rest.is_empty() {
            return None;
        }
    })
}

/// (index of the start code, index just after it).
fn find_start_code(d: &[u8]) -> Option<(usize, usize)> {
    let i = d.windows(3).position(|w| w == [0, 0, 1])?;
    Some((i, i + 3))
}

/// Calls `emit(payload, last)` for each RTP payload carrying `nal`, each at most
/// `max_payload` bytes; `last` marks the final payload of this NAL unit.
/// `scratch` is reused between calls so steady state allocates nothing.
pub fn packetize_nal(
    nal: &[u8],
    max_payload: usize,
    scratch: &mut Vec<u8>,
    emit: &mut dyn FnMut(&[u8], bool),
) {
    if nal.is_empty() {
        return;
    }
    if nal.len() <= max_payload {
        emit(nal, true);
        return;
    }
    // FU-A: indicator keeps F and NRI with type 28; header has S/E and the NAL type.
    let max_chunk = max_payload.saturating_sub(2).max(1);
    let indicator = (nal[0] & 0xe0) | 28;
    let nal_type = nal[0] & 0x1f;
    let body = &nal[1..];
    let chunks = body.len().div_ceil(max_chunk);
    for (i, chunk) in body.chunks(max_chunk).enumerate() {
        let start = if i == 0 { 0x80 } else { 0 };
        let end = if i + 1 == chunks { 0x40 } else { 0 };
        scratch.clear();
        scratch.push(indicator);
        scratch.push(start | end | nal_type);
        scratch.extend_from_slice(chunk);
        emit(scratch, i + 1 == chunks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_annex_b() {
        let s = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 6,
        ];
        let nals: Vec<&[u8]> = annex_b_nal_units(&s).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5, 6]]);
        assert_eq!(annex_b_nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(annex_b_nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(
            annex_b_nal_units(&[0, 0, 1, 0, 0, 1, 0x41]).collect::<Vec<_>>(),
            vec![&[0x41][..]]
        );
    }

    #[test]
    fn small_nal_is_sent_whole() {
        let mut out = Vec::new();
        packetize_nal(&[0x67, 1, 2, 3], 1200, &mut Vec::new(), &mut |p, last| {
            out.push((p.to_vec(), last))
        });
        assert_eq!(out, vec![(vec![0x67, 1, 2, 3], true)]);
    }

    #[test]
    fn large_nal_is_fragmented_and_reassembles() {
        let nal: Vec<u8> = std::iter::once(0x65)
            .chain((0..3000u32).map(|i| i as u8))
            .collect();
        let mut out = Vec::new();
        packetize_nal(&nal, 1000, &mut Vec::new(), &mut |p, last| {
            out.push((p.to_vec(), last))
        });
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|(p, _)| p.len() <= 1000));
        assert_eq!(out[0].0[..2], [0x7c, 0x85]);
        assert_eq!(out[1].0[..2], [0x7c, 0x05]);
        assert_eq!(out[3].0[..2], [0x7c, 0x45]);
        assert_eq!(
            out.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
            [false, false, false, true]
        );
        let mut back = vec![(out[0].0[0] & 0xe0) | (out[0].0[1] & 0x1f)];
        for (p, _) in &out {
            back.extend_from_slice(&p[2..]);
        }
        assert_eq!(back, nal);
    }
}
