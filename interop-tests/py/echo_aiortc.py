"""An independent WebRTC peer (aiortc) against Cardea's echotest over the Janus HTTP API.

Sends a synthetic video (moving gradient) and a 440 Hz tone, counts the frames that
come back, and prints one JSON line. Usage: echo_aiortc.py <janus-http-base> <seconds>
"""

import asyncio
import fractions
import json
import math
import random
import string
import sys
import time
import urllib.request

import aioice.ice
import av
import numpy
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

# aioice leaves out loopback addresses; the test network has nothing else.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []


def tx():
    return "".join(random.choice(string.ascii_letters) for _ in range(12))


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def get(url):
    with urllib.request.urlopen(url, timeout=40) as r:
        return json.loads(r.read())


class Tone(MediaStreamTrack):
    kind = "audio"

    def __init__(self):
        super().__init__()
        self.pts = 0
        self.start = None

    async def recv(self):
        rate, samples = 48000, 960
        if self.start is None:
            self.start = time.time()
        wait = self.start + self.pts / rate - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (numpy.arange(samples) + self.pts) / rate
        pcm = (numpy.sin(2 * math.pi * 440 * t) * 8000).astype(numpy.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, rate)
        self.pts += samples
        return frame


class Gradient(MediaStreamTrack):
    kind = "video"

    def __init__(self):
        super().__init__()
        self.n = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.time()
        wait = self.start + self.n / 30 - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        img = numpy.zeros((240, 320, 3), numpy.uint8)
        img[:, :, 0] = (numpy.arange(320) + self.n * 4) % 256
        img[:, :, 1] = (numpy.arange(240)[:, None] + self.n * 2) % 256
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = self.n * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self.n += 1
        return frame


async def main(base, seconds):
    result = {"webrtcup": False, "video_frames": 0, "audio_frames": 0, "answer": False, "errors": []}
    sid = (await asyncio.to_thread(post, base, {"janus": "create", "transaction": tx()}))["data"]["id"]
    r = await asyncio.to_thread(post, f"{base}/{sid}", {"janus": "attach", "plugin": "janus.plugin.echotest", "transaction": tx()})
    hid = r["data"]["id"]
    pc = RTCPeerConnection()
    pc.addTrack(Tone())
    pc.addTrack(Gradient())

    async def count(track):
        key = "video_frames" if track.kind == "video" else "audio_frames"
        while True:
            try:
                await track.recv()
            except Exception:
                return
            result[key] += 1

    pc.on("track", lambda track: asyncio.ensure_future(count(track)))
    await pc.setLocalDescription(await pc.createOffer())
    offer = {"type": pc.localDescription.type, "sdp": pc.localDescription.sdp}
    r = await asyncio.to_thread(post, f"{base}/{sid}/{hid}", {"janus": "message", "transaction": tx(), "body": {"audio": True, "video": True}, "jsep": offer})
    if r.get("janus") != "ack":
        result["errors"].append(f"message: {r}")

    stop = time.time() + seconds

    async def events():
        while time.time() < stop:
            evs = await asyncio.to_thread(get, f"{base}/{sid}?maxev=10")
            for ev in evs:
                if ev.get("janus") == "webrtcup":
                    result["webrtcup"] = True
                if "jsep" in ev and ev["jsep"]["type"] == "answer":
                    await pc.setRemoteDescription(RTCSessionDescription(ev["jsep"]["sdp"], "answer"))
                    result["answer"] = True
                data = ev.get("plugindata", {}).get("data", {})
                if "error" in data:
                    result["errors"].append(data["error"])

    poller = asyncio.ensure_future(events())
    while time.time() < stop:
        await asyncio.sleep(0.2)
    poller.cancel()
    await pc.close()
    await asyncio.to_thread(post, f"{base}/{sid}", {"janus": "destroy", "transaction": tx()})
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2] if len(sys.argv) > 2 else 10)))
