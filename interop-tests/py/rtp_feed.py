"""A plain-RTP feed that answers keyframe requests: VP8 through rtpbin, sending RTCP
sender reports from the socket it also reads RTCP on, so a PLI sent back to where its
reports come from makes the encoder produce a keyframe.

Usage: rtp_feed.py <rtp-port> <rtcp-port> <width> <height> [--keyframe-interval N]
Sends to 127.0.0.1. Keyframes: the first, then only when asked (or every N frames).
Prints "ready" once playing, then one line per keyframe request received.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib, Gst  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("rtp_port", type=int)
parser.add_argument("rtcp_port", type=int)
parser.add_argument("width", type=int)
parser.add_argument("height", type=int)
parser.add_argument("--keyframe-interval", type=int, default=100000)
args = parser.parse_args()

Gst.init(None)
pipeline = Gst.parse_launch(
    "rtpbin name=rb "
    f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={args.width},height={args.height},framerate=30/1 ! "
    f"vp8enc name=enc deadline=1 keyframe-max-dist={args.keyframe_interval} ! rtpvp8pay pt=96 ! rb.send_rtp_sink_0 "
    f"rb.send_rtp_src_0 ! udpsink host=127.0.0.1 port={args.rtp_port} "
    f"rb.send_rtcp_src_0 ! udpsink name=rtcpsink host=127.0.0.1 port={args.rtcp_port} sync=false async=false "
    "udpsrc name=rtcpsrc ! rb.recv_rtcp_sink_0"
)
# One socket for RTCP both ways: reports go out from the port PLIs come back to.
sock = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
sock.bind(Gio.InetSocketAddress.new_from_string("127.0.0.1", 0), True)
pipeline.get_by_name("rtcpsrc").set_property("socket", sock)
pipeline.get_by_name("rtcpsink").set_property("socket", sock)


def on_upstream_event(pad, info):
    event = info.get_event()
    if event.type == Gst.EventType.CUSTOM_UPSTREAM and event.get_structure().get_name() == "GstForceKeyUnit":
        print("keyframe requested", flush=True)
    return Gst.PadProbeReturn.OK


pipeline.get_by_name("enc").get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_UPSTREAM, on_upstream_event)

if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
    print("cannot play", file=sys.stderr, flush=True)
    sys.exit(1)
print("ready", flush=True)
GLib.MainLoop().run()
