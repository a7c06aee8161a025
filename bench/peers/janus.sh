#!/usr/bin/env bash
# janus.sh  Start/stop Janus AudioBridge for the bench, on 127.0.0.1 only.
#
#   [BENCH_CPU=N] [BENCH_PRIO="chrt -f 10"] bash bench/peers/janus.sh start DIR   -> prints "ready control=127.0.0.1:PORT pid=PID"
#   bash bench/peers/janus.sh stop DIR    -> stops the PID it started
#
# Installs Debian's janus with apt-get on demand.  Runs from a private
# config folder DIR/etc with private plugin/transport folders holding only
# the AudioBridge plugin and the HTTP transport (symlinks); /etc/janus is
# never read or changed.  HTTP API on 127.0.0.1, RTP for plain-RTP
# participants bound to 127.0.0.1.  AudioBridge (1.1.2) encodes Opus at
# complexity 4, fixed in its source with no setting.
set -euo pipefail

cmd=${1:?start|stop}
dir=${2:?state directory}
libdir=/usr/lib/x86_64-linux-gnu/janus

. "$(dirname "$0")/peer_lib.sh"

janus_ready() {
	/usr/bin/python3 - "$1" <<'PY'
import json, sys, urllib.request
r = urllib.request.urlopen("http://127.0.0.1:%s/janus/info" % sys.argv[1],
                           timeout=1)
sys.exit(0 if json.load(r).get("janus") == "server_info" else 1)
PY
}

start() {
	peer_install janus
	local arch
	arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null ||
		echo x86_64-linux-gnu)
	libdir=/usr/lib/$arch/janus
	rm -rf "$dir"
	mkdir -p "$dir/etc" "$dir/plugins" "$dir/transports" "$dir/events" \
		"$dir/loggers" "$dir/run"
	ln -s "$libdir/plugins/libjanus_audiobridge.so" "$dir/plugins/"
	ln -s "$libdir/transports/libjanus_http.so" "$dir/transports/"
	local port
	port=$(peer_free_port tcp)
	cat > "$dir/etc/janus.jcfg" <<CFG
general: {
	configs_folder = "$dir/etc"
	plugins_folder = "$dir/plugins"
	transports_folder = "$dir/transports"
	events_folder = "$dir/events"
	loggers_folder = "$dir/loggers"
	debug_level = 3
	session_timeout = 0
	server_name = "keymix-bench"
	admin_secret = "bench-not-used"
}
certificates: {
}
media: {
	rtp_port_range = "40000-49999"
}
nat: {
	nice_debug = false
	ice_enforce_list = "lo"
}
plugins: {
}
transports: {
}
events: {
	broadcast = false
}
CFG
	cat > "$dir/etc/janus.transport.http.jcfg" <<CFG
general: {
	json = "compact"
	base_path = "/janus"
	http = true
	port = $port
	interface = "lo"
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_http = false
	admin_https = false
}
cors: {
}
CFG
	cat > "$dir/etc/janus.plugin.audiobridge.jcfg" <<CFG
general: {
	rtp_port_range = "50000-59999"
	local_ip = "127.0.0.1"
	events = false
}
CFG
	peer_pin
	"${PIN[@]}" janus -F "$dir/etc" -C "$dir/etc/janus.jcfg" -i 127.0.0.1 \
		-L "$dir/run/janus.log" -N -o -p "$dir/run/janus.pid" \
		>/dev/null 2>&1 &
	local pid=$!
	echo "$pid" > "$dir/run/bench.pid"
	peer_wait janus "$pid" "$port" "$dir/run/janus.log" janus_ready
}

case $cmd in
start) start ;;
stop) peer_stop "$dir/run/bench.pid" ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
