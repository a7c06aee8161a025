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

install_janus() {
	dpkg-query -W -f='${Status}' janus 2>/dev/null |
		grep -q 'install ok installed' && return 0
	echo "janus.sh: installing Debian's janus" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends janus >&2 || {
		apt-get update -q >&2 && \
		apt-get install -y -q --no-install-recommends janus >&2; }
}

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
	install_janus
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
	port=$(free_port)
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
	local pin=()
	# shellcheck disable=SC2206
	[ -n "${BENCH_PRIO:-}" ] && pin=($BENCH_PRIO)
	[ -n "${BENCH_CPU:-}" ] && pin+=(taskset -c "$BENCH_CPU")
	"${pin[@]}" janus -F "$dir/etc" -C "$dir/etc/janus.jcfg" -i 127.0.0.1 \
		-L "$dir/run/janus.log" -N -o -p "$dir/run/janus.pid" \
		>/dev/null 2>&1 &
	local pid=$!
	echo "$pid" > "$dir/run/bench.pid"
	local i
	for i in $(seq 1 100); do
		if /usr/bin/python3 - "$port" <<'PY' 2>/dev/null
import json, sys, urllib.request
r = urllib.request.urlopen("http://127.0.0.1:%s/janus/info" % sys.argv[1],
                           timeout=1)
sys.exit(0 if json.load(r).get("janus") == "server_info" else 1)
PY
		then
			echo "ready control=127.0.0.1:$port pid=$pid"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "janus.sh: janus did not come up; log:" >&2
	tail -n 30 "$dir/run/janus.log" >&2 || true
	kill "$pid" 2>/dev/null || true
	return 1
}

stop() {
	local pid
	pid=$(cat "$dir/run/bench.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$dir/run/bench.pid"
}

case $cmd in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
