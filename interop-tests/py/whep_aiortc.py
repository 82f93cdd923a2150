"""An independent WHEP client (aiortc): offers to receive video and audio, POSTs the
offer to a WHEP endpoint, decodes what comes for a while, DELETEs its resource, and
prints one JSON line. Usage: whep_aiortc.py <endpoint-url> <seconds> [bearer]
"""

import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import aioice.ice
from aiortc import RTCPeerConnection, RTCSessionDescription

# aioice leaves out loopback addresses; the test network has nothing else.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []


def request(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


async def main():
    endpoint, seconds = sys.argv[1], float(sys.argv[2])
    auth = {"Authorization": "Bearer " + sys.argv[3]} if len(sys.argv) > 3 else {}
    result = {"frames": 0, "audio_frames": 0, "width": 0, "height": 0, "errors": []}
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    tasks = []

    async def count_video(track):
        while True:
            frame = await track.recv()
            result["frames"] += 1
            result["width"], result["height"] = frame.width, frame.height

    async def count_audio(track):
        while True:
            await track.recv()
            result["audio_frames"] += 1

    @pc.on("track")
    def on_track(track):
        tasks.append(asyncio.ensure_future(count_video(track) if track.kind == "video" else count_audio(track)))

    # aiortc gathers every candidate before setLocalDescription returns: a whole offer.
    await pc.setLocalDescription(await pc.createOffer())
    status, headers, answer = request(
        "POST", endpoint, pc.localDescription.sdp.encode(), {"Content-Type": "application/sdp", **auth}
    )
    result["post_status"] = status
    if status != 201:
        result["errors"].append(answer.strip())
        print(json.dumps(result))
        return
    location = urllib.parse.urljoin(endpoint, headers.get("Location", ""))
    result["etag"] = headers.get("ETag")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    start = time.monotonic()
    result["timeline"] = []
    while time.monotonic() - start < seconds:
        await asyncio.sleep(0.5)
        result["timeline"].append([round(time.monotonic() - start, 1), result["frames"]])
    result["connection"] = pc.connectionState
    result["delete_status"], _, _ = request("DELETE", location, headers=auth)
    result["delete_again_status"], _, _ = request("DELETE", location, headers=auth)
    for t in tasks:
        t.cancel()
    await pc.close()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
