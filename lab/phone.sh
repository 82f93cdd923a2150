#!/bin/bash
# The lab's answering phone: two baresip user agents registered at the PBX, each
# answering every call by itself.
#   1000  plays a 700 Hz tone, and records what it hears (/tmp/phone/tone/snd/*-dec.wav,
#         the last two calls' only)
#   1001  echoes what it hears (baresip's echo module)
set -euo pipefail
PBX=${PBX:-172.29.89.20}
IP=${PHONE_IP:-$(hostname -i | awk '{print $1}')}

ua() { # name, extension, SIP port, first RTP port, audio lines, extra modules
    local dir=/tmp/phone/$1
    mkdir -p "$dir/snd"
    cat >"$dir/config" <<CONF
poll_method epoll
sip_listen $IP:$3
net_interface $IP
call_max_calls 4
$5
ausrc_srate 48000
ausrc_channels 2
audio_alert alsa,null
rtp_ports $4-$(($4 + 99))
rtcp_mux no
module_path /usr/lib/baresip/modules
module opus.so
module g722.so
module g711.so
module alsa.so
$6
module_tmp account.so
module_app menu.so
snd_path $dir/snd
CONF
    echo "<sip:$2@$PBX>;auth_pass=phone-lab;answermode=auto;regint=300" >"$dir/accounts"
    baresip -f "$dir" </dev/null &
}

# Register once the PBX answers (its container may start after this one's).
python3 - "$PBX" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
s.connect((sys.argv[1], 5060))
me = "%s:%d" % s.getsockname()
for i in range(60):
    s.send(("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKwait%d\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:wait@%s>;tag=w%d\r\nTo: <sip:%s>\r\n"
            "Call-ID: wait%d@%s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            % (sys.argv[1], me, i, me, i, sys.argv[1], i, me)).encode())
    try:
        if s.recv(4096).startswith(b"SIP/2.0 "):
            sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit("the PBX at %s does not answer" % sys.argv[1])
PY

ua tone 1000 5060 20000 $'audio_source ausine,700\naudio_player alsa,null' $'module ausine.so\nmodule sndfile.so'
ua echo 1001 5062 20100 $'audio_source aubridge,nil\naudio_player aubridge,nil' $'module aubridge.so\nmodule echo.so'
# Only the latest calls' recordings are kept (the container's /tmp is a small tmpfs).
while sleep 10; do
    ls -t /tmp/phone/tone/snd/*.wav 2>/dev/null | tail -n +5 | xargs -r rm -f
done &
# Either user agent ending ends the container (and compose restarts it).
wait -n
