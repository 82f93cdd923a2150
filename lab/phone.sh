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

ua tone 1000 5060 20000 $'audio_source ausine,700\naudio_player alsa,null' $'module ausine.so\nmodule sndfile.so'
ua echo 1001 5062 20100 $'audio_source aubridge,nil\naudio_player aubridge,nil' $'module aubridge.so\nmodule echo.so'
# Only the latest calls' recordings are kept (the container's /tmp is a small tmpfs).
while sleep 10; do
    ls -t /tmp/phone/tone/snd/*.wav 2>/dev/null | tail -n +5 | xargs -r rm -f
done &
# Either user agent ending ends the container (and compose restarts it).
wait -n
