"""A camera for the tests: gst-rtsp-server serving H.264 + PCMA or AAC on 127.0.0.1.

Usage: rtsp_camera.py <port> [--user U --password P] [--gop N] [--audio pcma|aac|latm|none]
                      [--substream] [--audio-first]
--substream adds a second H.264 video track at 320x180, as cameras offer a sub stream.
--audio-first puts the audio track first in the SDP (some cameras do).
Prints "ready" when it listens. Digest authentication when --user is given.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("port")
parser.add_argument("--user")
parser.add_argument("--password", default="")
parser.add_argument("--gop", type=int, default=30)
parser.add_argument("--audio", default="pcma")
parser.add_argument("--substream", action="store_true")
parser.add_argument("--audio-first", action="store_true")
args = parser.parse_args()

Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(args.port)
video = (
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 ! "
    f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.gop} ! "
    "video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=-1"
)
audio = ""
if args.audio == "aac":
    # RFC 3640 (mpeg4-generic), as most IP cameras send AAC.
    audio = (
        " audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! "
        "audio/x-raw,rate=44100,channels=1 ! avenc_aac ! rtpmp4gpay name=pay1 pt=97"
    )
elif args.audio == "latm":
    # MP4A-LATM (RFC 6416), as some cameras send AAC; the config is in the SDP (cpresent=0).
    audio = (
        " audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! "
        "audio/x-raw,rate=44100,channels=1 ! avenc_aac ! rtpmp4apay name=pay1 pt=97"
    )
elif args.audio == "pcma":
    audio = (
        # 20 ms packets, as IP cameras send G.711.
        " audiotestsrc is-live=true wave=sine freq=440 samplesperbuffer=160 ! audioresample ! "
        "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8 max-ptime=20000000"
    )
if args.substream:
    audio += (
        " videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=180,framerate=30/1 ! "
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.gop} ! "
        "video/x-h264,profile=constrained-baseline ! rtph264pay name=pay2 pt=98 config-interval=-1"
    )
if args.audio_first and args.audio != "none":
    # gst-rtsp-server lists the streams in the order of the payloaders' names.
    video = video.replace("name=pay0", "name=pay1")
    audio = audio.replace("name=pay1", "name=pay0", 1)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f"( {video}{audio} )")
factory.set_shared(True)
if args.user:
    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "camera-user")
    auth.add_digest(args.user, args.password, token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role("camera-user")
    permissions.add_permission_for_role("camera-user", "media.factory.access", True)
    permissions.add_permission_for_role("camera-user", "media.factory.construct", True)
    factory.set_permissions(permissions)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    print("cannot listen", file=sys.stderr, flush=True)
    sys.exit(1)
print("ready", flush=True)
GLib.MainLoop().run()
