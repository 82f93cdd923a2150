//! What a shard sends in one turn of its loop, gathered and written at the end of the
//! turn: the datagrams for each destination in the order they were made, and each
//! burst of equal-size datagrams to one destination (a frame's packets) as one UDP
//! GSO send. A viewer of a 30 fps camera gets a frame's packets in one system call
//! instead of one each.
//!
//! Sans-IO: [`Outbox::flush`] hands each [`Run`] to the caller, which writes it.

use std::net::{IpAddr, SocketAddr};

/// Bytes gathered before the turn must flush early.
const MAX_BYTES: usize = 1 << 20;
/// Datagrams gathered before the turn must flush early.
const MAX_DATAGRAMS: usize = 4096;
/// Most bytes in one GSO send (the UDP length field's limit, less headers).
const MAX_GSO_BYTES: usize = 65_000;

/// Datagrams to one destination from one local address, all `segment` bytes long but
/// the last (which may be shorter): one send.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Run<'a> {
    pub(crate) dst: SocketAddr,
    pub(crate) from: Option<IpAddr>,
    pub(crate) contents: &'a [u8],
    /// Every datagram's length but the last's; the whole of `contents` for one datagram.
    pub(crate) segment: usize,
}

impl Run<'_> {
    /// How many datagrams the run carries.
    pub(crate) fn datagrams(&self) -> usize {
        self.contents.len().div_ceil(self.segment.max(1)).max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Queued {
    dst: SocketAddr,
    from: Option<IpAddr>,
    start: usize,
    len: usize,
}

/// The turn's datagrams. Its buffers are kept from turn to turn: nothing is allocated
/// once they have grown to a turn's size.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    bytes: Vec<u8>,
    queued: Vec<Queued>,
    order: Vec<u32>,
    run: Vec<u8>,
}

impl Outbox {
    /// Queues one datagram.
    pub(crate) fn push(&mut self, dst: SocketAddr, from: Option<IpAddr>, data: &[u8]) {
        self.queued.push(Queued {
            dst,
            from,
            start: self.bytes.len(),
            len: data.len(),
        });
        self.bytes.extend_from_slice(data);
    }

    /// Whether the turn has gathered enough to flush before it ends.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes.len() >= MAX_BYTES || self.queued.len() >= MAX_DATAGRAMS
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Hands every queued datagram to `send`, grouped in runs of at most
    /// `max_segments` datagrams (1: no GSO), and empties the box.
    pub(crate) fn flush(&mut self, max_segments: usize, mut send: impl FnMut(Run<'_>)) {
        let Outbox {
            bytes,
            queued,
            order,
            run,
        } = self;
        order.clear();
        order.extend(0..queued.len() as u32);
        // By destination, and in the order made within one (the sort is stable).
        order.sort_by_key(|i| queued[*i as usize].dst);
        let data = |q: &Queued| &bytes[q.start..q.start + q.len];
        let mut i = 0;
        while i < order.len() {
            let first = queued[order[i] as usize];
            let mut end = i + 1;
            let mut total = first.len;
            while end < order.len() && end - i < max_segments.max(1) && first.len > 0 {
                let next = queued[order[end] as usize];
                if next.dst != first.dst
                    || next.from != first.from
                    || next.len > first.len
                    || next.len == 0
                    || total + next.len > MAX_GSO_BYTES
                {
                    break;
                }
                total += next.len;
                end += 1;
                if next.len < first.len {
                    break; // a shorter datagram ends a run
                }
            }
            if end - i == 1 {
                send(Run {
                    dst: first.dst,
                    from: first.from,
                    contents: data(&first),
                    segment: first.len,
                });
            } else {
                run.clear();
                for k in &order[i..end] {
                    run.extend_from_slice(data(&queued[*k as usize]));
                }
                send(Run {
                    dst: first.dst,
                    from: first.from,
                    contents: run,
                    segment: first.len,
                });
            }
            i = end;
        }
        bytes.clear();
        queued.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// (destination port, segment, datagrams, first byte of each datagram) per run.
    fn runs(outbox: &mut Outbox, max_segments: usize) -> Vec<(u16, usize, usize, Vec<u8>)> {
        let mut out = Vec::new();
        outbox.flush(max_segments, |r| {
            let firsts = r
                .contents
                .chunks(r.segment.max(1))
                .map(|d| d.first().copied().unwrap_or(0))
                .collect();
            out.push((r.dst.port(), r.segment, r.datagrams(), firsts));
        });
        out
    }

    #[test]
    fn a_frame_burst_to_each_viewer_goes_as_one_send_in_order() {
        let mut outbox = Outbox::default();
        // Three packets of one frame fanned out to two viewers, interleaved as the
        // fan-out makes them; the frame's last packet is shorter.
        for (n, len) in [(1u8, 1200), (2, 1200), (3, 700)] {
            for port in [6000, 5000] {
                outbox.push(addr(port), None, &vec![n; len]);
            }
        }
        assert_eq!(
            runs(&mut outbox, 64),
            [
                (5000, 1200, 3, vec![1, 2, 3]),
                (6000, 1200, 3, vec![1, 2, 3])
            ]
        );
        assert!(outbox.is_empty());
    }

    #[test]
    fn runs_break_at_a_longer_datagram_a_shorter_one_the_segment_limit_and_the_source_address() {
        let mut outbox = Outbox::default();
        let lan: IpAddr = "192.168.1.5".parse().unwrap();
        for (n, len, from) in [
            (1u8, 100, None),
            (2, 100, None),
            (3, 200, None), // longer: a new run
            (4, 50, None),  // shorter: ends that run
            (5, 50, None),
            (6, 50, Some(lan)), // another local address: a run of its own
        ] {
            outbox.push(addr(5000), from, &vec![n; len]);
        }
        assert_eq!(
            runs(&mut outbox, 64),
            [
                (5000, 100, 2, vec![1, 2]),
                (5000, 200, 2, vec![3, 4]),
                (5000, 50, 1, vec![5]),
                (5000, 50, 1, vec![6]),
            ]
        );
        for n in 0..5u8 {
            outbox.push(addr(5000), None, &[n; 10]);
        }
        // Without GSO every datagram is a send; with 2 segments, pairs.
        assert_eq!(runs(&mut outbox.clone_for_test(), 1).len(), 5);
        assert_eq!(
            runs(&mut outbox, 2),
            [
                (5000, 10, 2, vec![0, 1]),
                (5000, 10, 2, vec![2, 3]),
                (5000, 10, 1, vec![4])
            ]
        );
    }

    #[test]
    fn a_run_stays_under_the_udp_length_limit_and_empty_datagrams_go_alone() {
        let mut outbox = Outbox::default();
        for _ in 0..60 {
            outbox.push(addr(5000), None, &[7; 1200]);
        }
        outbox.push(addr(5000), None, &[]);
        outbox.push(addr(5000), None, &[]);
        let got = runs(&mut outbox, 64);
        let counts: Vec<usize> = got.iter().map(|r| r.2).collect();
        // 54 × 1200 = 64 800 ≤ 65 000 < 55 × 1200.
        assert_eq!(counts, [54, 6, 1, 1]);
    }

    impl Outbox {
        fn clone_for_test(&self) -> Outbox {
            Outbox {
                bytes: self.bytes.clone(),
                queued: self.queued.clone(),
                order: Vec::new(),
                run: Vec::new(),
            }
        }
    }
}
