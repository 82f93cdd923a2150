"""An independent WHIP publisher (aiortc): a synthetic video (moving gradient, 320x240,
30 fps) and a 440 Hz tone, sent to a WHIP endpoint for a while, then DELETE; prints one
JSON line. Usage: whip_aiortc.py <endpoint-url> <seconds> <bearer>
"""

import asyncio
import json
import sys
import time
import urllib.parse

from aiortc import RTCPeerConnection, RTCSessionDescription

from echo_aiortc import Gradient, Tone
from whep_aiortc import request


async def main():
    endpoint, seconds, bearer = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    auth = {"Authorization": "Bearer " + bearer}
    result = {"errors": []}
    pc = RTCPeerConnection()
    pc.addTransceiver(Gradient(), direction="sendonly")
    pc.addTransceiver(Tone(), direction="sendonly")
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
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        await asyncio.sleep(0.5)
    result["connection"] = pc.connectionState
    result["delete_status"], _, _ = request("DELETE", location, headers=auth)
    await pc.close()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
