#!/usr/bin/env bash
# rtpengine.sh  Start/stop rtpengine (userspace only) for the bench.
#
#   [BENCH_CPU=N] [BENCH_PRIO="chrt -f 10"] bash bench/peers/rtpengine.sh start DIR
#       -> prints "ready control=127.0.0.1:PORT pid=PID" (ng protocol, UDP)
#   bash bench/peers/rtpengine.sh stop DIR
#
# Installs Debian's rtpengine-daemon with apt-get on demand; its service is
# never started (this machine has no systemd, and we run our own process).
# /etc/rtpengine/rtpengine.conf is not read (--config-file=none): the
# options are all here.  --table=-1: no kernel forwarding, every packet is
# handled in userspace.  Media and ng on 127.0.0.1 only; log level 5
# (notice) so no key material reaches the log.
set -euo pipefail

cmd=${1:?start|stop}
dir=${2:?state directory}

install_rtpengine() {
	dpkg-query -W -f='${Status}' rtpengine-daemon 2>/dev/null |
		grep -q 'install ok installed' && return 0
	echo "rtpengine.sh: installing Debian's rtpengine-daemon" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends rtpengine-daemon >&2 || {
		apt-get update -q >&2 && apt-get install -y -q \
			--no-install-recommends rtpengine-daemon >&2; }
}

free_udp_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
	install_rtpengine
	rm -rf "$dir"
	mkdir -p "$dir"
	local port pid
	port=$(free_udp_port)
	local pin=()
	# shellcheck disable=SC2206
	[ -n "${BENCH_PRIO:-}" ] && pin=($BENCH_PRIO)
	[ -n "${BENCH_CPU:-}" ] && pin+=(taskset -c "$BENCH_CPU")
	"${pin[@]}" rtpengine --config-file=none --table=-1 \
		--interface=127.0.0.1 --listen-ng="127.0.0.1:$port" \
		--port-min=30000 --port-max=39999 --timeout=60 \
		--foreground --log-stderr --log-level=5 \
		--pidfile="$dir/rtpengine.pid" > "$dir/rtpengine.log" 2>&1 &
	pid=$!
	echo "$pid" > "$dir/bench.pid"
	for _ in $(seq 1 100); do
		if /usr/bin/python3 - "$port" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
s.sendto(b"bench1 d7:command4:pinge", ("127.0.0.1", int(sys.argv[1])))
sys.exit(0 if b"pong" in s.recv(1000) else 1)
PY
		then
			echo "ready control=127.0.0.1:$port pid=$pid"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "rtpengine.sh: rtpengine did not come up; log:" >&2
	tail -n 30 "$dir/rtpengine.log" >&2 || true
	kill "$pid" 2>/dev/null || true
	return 1
}

stop() {
	local pid
	pid=$(cat "$dir/bench.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$dir/bench.pid"
}

case $cmd in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
