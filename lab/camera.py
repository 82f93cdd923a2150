"""The lab's two IP cameras, simulated by gst-rtsp-server:

  rtsp://admin:camera@<host>:8554/cam1   H.264 640x360 30 fps + AAC (RFC 3640), Digest auth
  rtsp://<host>:8555/cam2                H.264 640x360 30 fps + G.711 A-law (PCMA), no auth

(Two ports, as two cameras: a server with a default token for anonymous clients answers
404, not a 401 challenge, to clients that have not authenticated yet.)

A moving ball (cam1) and scrolling colour bars (cam2); a 440 Hz (cam1) and 330 Hz (cam2)
tone. One keyframe a second, as cameras are usually set up.
"""

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

H264 = (
    "video/x-raw,width=640,height=360,framerate=30/1 ! "
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! "
    "video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=-1"
)
CAM1 = (
    f"( videotestsrc is-live=true pattern=ball ! {H264} "
    "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! "
    "audio/x-raw,rate=44100,channels=1 ! avenc_aac ! rtpmp4gpay name=pay1 pt=97 )"
)
CAM2 = (
    f"( videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! {H264} "
    "audiotestsrc is-live=true wave=sine freq=330 samplesperbuffer=160 ! audioresample ! "
    "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8 max-ptime=20000000 )"
)


def factory(launch, role):
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(launch)
    f.set_shared(True)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role(role)
    permissions.add_permission_for_role(role, "media.factory.access", True)
    permissions.add_permission_for_role(role, "media.factory.construct", True)
    f.set_permissions(permissions)
    return f


def serve(port, path, launch, auth=None):
    server = GstRtspServer.RTSPServer()
    server.set_service(str(port))
    role = "anonymous"
    if auth:
        role = "admin"
        server.set_auth(auth)
    server.get_mount_points().add_factory(path, factory(launch, role))
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on {port}")
    return server


Gst.init(None)
auth = GstRtspServer.RTSPAuth()
auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
admin = GstRtspServer.RTSPToken()
admin.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "admin")
auth.add_digest("admin", "camera", admin)
servers = [serve(8554, "/cam1", CAM1, auth), serve(8555, "/cam2", CAM2)]
print("cameras on rtsp://0.0.0.0:8554/cam1 (admin/camera) and rtsp://0.0.0.0:8555/cam2", flush=True)
GLib.MainLoop().run()
