#!/usr/bin/env python3
"""Media helpers for the SIP interop tests (standard library only).

  wav  --freq F --out tone.wav             a 16-bit 48 kHz mono sine (Chromium's fake microphone)
  pcap --freq F --seconds S --out t.pcap   PCMU RTP of a sine, 20 ms packets (sipp's play_pcap_audio)
  analyze cap.pcap --port P                what a tcpdump capture on loopback shows of the RTP
                                           sent to UDP port P: one JSON line
  heard rec.wav                            the tone in a recording (16-bit PCM, e.g. what
                                           baresip's sndfile module decoded): one JSON line

`analyze` reports packets per payload type, the tone's frequency in the PCMU
payload (zero crossings per second), the RFC 4733 digits (one per event, at its
end) and SIP requests seen in the capture (UDP or TCP, any port; retransmissions
once; over TCP one message per segment, as on loopback).
"""

import argparse
import json
import math
import re
import struct
import sys
import wave


def ulaw_encode(sample):
    # G.711 mu-law, as in ITU-T G.711 (bias 0x84, clip 32635).
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    sample = min(sample, 32635) + 0x84
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not (sample & mask):
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_decode(byte):
    byte = ~byte & 0xFF
    sign = byte & 0x80
    exponent = (byte >> 4) & 0x07
    mantissa = byte & 0x0F
    sample = ((mantissa << 3) + 0x84) << exponent
    sample -= 0x84
    return -sample if sign else sample


def write_wav(freq, out, seconds=30):
    rate = 48000
    with wave.open(out, 'wb') as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for i in range(rate * seconds):
            frames += struct.pack('<h', int(12000 * math.sin(2 * math.pi * freq * i / rate)))
        w.writeframes(bytes(frames))


def write_pcap(freq, seconds, out):
    # Ethernet/IPv4/UDP/RTP, one packet per 20 ms (what sipp's play_pcap_audio reads).
    with open(out, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        n = 0
        for k in range(seconds * 50):
            payload = bytes(ulaw_encode(int(10000 * math.sin(2 * math.pi * freq * (n + i) / 8000)))
                            for i in range(160))
            rtp = struct.pack('!BBHII', 0x80, 0, k & 0xFFFF, n & 0xFFFFFFFF, 0x1234ABCD) + payload
            udp = struct.pack('!HHHH', 6000, 6000, 8 + len(rtp), 0) + rtp
            ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), k & 0xFFFF, 0, 64, 17, 0,
                             bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
            eth = b'\x00' * 12 + b'\x08\x00' + ip
            ts = k * 20000
            f.write(struct.pack('<IIII', ts // 1000000, ts % 1000000, len(eth), len(eth)))
            f.write(eth)
            n += 160


def read_pcap(path):
    """Yields (transport, src_port, dst_port, payload) of every IPv4 UDP packet and
    TCP segment with data ('udp' or 'tcp')."""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = struct.unpack('<I', data[:4])[0]
    endian = '<' if magic in (0xA1B2C3D4, 0xA1B23C4D) else '>'
    linktype = struct.unpack(endian + 'I', data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + 'IIII', data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:
            if len(pkt) < 14 or pkt[12:14] != b'\x08\x00':
                continue
            ip = pkt[14:]
        elif linktype == 113:  # Linux cooked capture (tcpdump -i any)
            if len(pkt) < 16 or pkt[14:16] != b'\x08\x00':
                continue
            ip = pkt[16:]
        elif linktype in (0, 108):  # BSD loopback
            ip = pkt[4:]
        else:
            ip = pkt
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] not in (6, 17):
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack('!H', ip[2:4])[0]
        seg = ip[ihl:total]
        if ip[9] == 17 and len(seg) >= 8:
            sport, dport = struct.unpack('!HH', seg[:4])
            yield 'udp', sport, dport, seg[8:]
        elif ip[9] == 6 and len(seg) >= 20:
            sport, dport = struct.unpack('!HH', seg[:4])
            payload = seg[(seg[12] >> 4) * 4:]
            if payload:
                yield 'tcp', sport, dport, payload


def analyze(path, port):
    by_pt = {}
    samples = []
    digits = []
    seen_events = set()
    sip_requests = []
    # RTP packets to the port before the 200 to the INVITE of the call whose SDP (offer,
    # 183 or 200) named that port (early media; other calls in the capture do not count).
    early = 0
    answered = False
    calls = set()
    for transport, sport, dport, payload in read_pcap(path):
        text_start = payload[:16]
        if text_start[:1].isalpha():
            first = payload.split(b'\r\n', 1)[0].decode('latin-1', 'replace')
            body = payload.decode('latin-1', 'replace')
            call_id = re.search(r'(?im)^(?:call-id|i)\s*:\s*(\S+)', body)
            call_id = call_id.group(1) if call_id else ''
            if re.search(r'(?m)^m=audio %d ' % port, body):
                calls.add(call_id)
            if (first.startswith('SIP/2.0 200') and call_id in calls
                    and re.search(r'(?im)^cseq:\s*\d+\s+invite', body)):
                answered = True
            if first.endswith(' SIP/2.0'):
                head, _, content = body.partition('\r\n\r\n')
                def header(*names):
                    return next((h.split(':', 1)[1].strip() for h in head.split('\r\n')
                                 if h.split(':', 1)[0].strip().lower() in names), '')
                request = {'line': first, 'dport': dport, 'cseq': header('cseq'),
                           'call_id': header('call-id', 'i'), 'body': content,
                           'transport': transport, 'expires': header('expires'),
                           'contact': header('contact', 'm')}
                # A retransmission (same request, same CSeq) is one request.
                if request not in sip_requests:
                    sip_requests.append(request)
            continue
        if transport != 'udp' or dport != port or len(payload) < 12 or payload[0] >> 6 != 2:
            continue
        pt = payload[1] & 0x7F
        if 72 <= pt <= 76:
            continue
        by_pt[pt] = by_pt.get(pt, 0) + 1
        if not answered:
            early += 1
        ts = struct.unpack('!I', payload[4:8])[0]
        body = payload[12 + 4 * (payload[0] & 0x0F):]
        if pt == 0:
            samples.extend(ulaw_decode(b) for b in body)
        elif pt >= 96 and len(body) == 4 and body[1] & 0x80:  # RFC 4733: 4 bytes
            if (ts, body[0]) not in seen_events:
                seen_events.add((ts, body[0]))
                code = body[0]
                digits.append('0123456789*#ABCD'[code] if code < 16 else '?')
    # Skip the first second (codec start-up), measure zero crossings of the rest.
    freq = None
    loud = [s for s in samples[8000:] ]
    if len(loud) >= 8000:
        crossings = sum(1 for a, b in zip(loud, loud[1:]) if (a < 0) != (b < 0))
        freq = round(crossings / 2 / (len(loud) / 8000))
    rms = math.sqrt(sum(s * s for s in loud) / len(loud)) if loud else 0
    return {'packets_by_pt': {str(k): v for k, v in by_pt.items()}, 'pcmu_freq': freq,
            'pcmu_rms': round(rms), 'digits': ''.join(digits), 'sip_requests': sip_requests,
            'early_packets': early}


def heard(path):
    # Zero crossings in the 20 ms windows loud enough to be a tone rather than silence
    # or comfort noise; the frequency over those, and how many seconds of them.
    with wave.open(path, 'rb') as w:
        rate, channels = w.getframerate(), w.getnchannels()
        if w.getsampwidth() != 2:
            raise SystemExit(f'{path}: not 16-bit PCM')
        raw = w.readframes(w.getnframes())
    samples = struct.unpack(f'<{len(raw) // 2}h', raw)[::channels]
    win = rate // 50
    crossings = loud = 0
    for start in range(0, len(samples) - win, win):
        chunk = samples[start:start + win]
        if math.sqrt(sum(s * s for s in chunk) / win) < 300:
            continue
        loud += 1
        crossings += sum(1 for a, b in zip(chunk, chunk[1:]) if (a < 0) != (b < 0))
    seconds = loud * win / rate
    freq = round(crossings / 2 / seconds) if loud else None
    return {'freq': freq, 'loud_seconds': round(seconds, 2),
            'seconds': round(len(samples) / rate, 2)}


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    w = sub.add_parser('wav')
    w.add_argument('--freq', type=float, required=True)
    w.add_argument('--out', required=True)
    p = sub.add_parser('pcap')
    p.add_argument('--freq', type=float, required=True)
    p.add_argument('--seconds', type=int, default=20)
    p.add_argument('--out', required=True)
    a = sub.add_parser('analyze')
    a.add_argument('capture')
    a.add_argument('--port', type=int, required=True)
    h = sub.add_parser('heard')
    h.add_argument('recording')
    args = ap.parse_args()
    if args.cmd == 'wav':
        write_wav(args.freq, args.out)
    elif args.cmd == 'pcap':
        write_pcap(args.freq, args.seconds, args.out)
    elif args.cmd == 'heard':
        print(json.dumps(heard(args.recording)))
    else:
        print(json.dumps(analyze(args.capture, args.port)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
