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

. "$(dirname "$0")/peer_lib.sh"

rtpengine_ready() {
	/usr/bin/python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
s.sendto(b"bench1 d7:command4:pinge", ("127.0.0.1", int(sys.argv[1])))
sys.exit(0 if b"pong" in s.recv(1000) else 1)
PY
}

start() {
	peer_install rtpengine-daemon
	rm -rf "$dir"
	mkdir -p "$dir"
	local port pid
	port=$(peer_free_port udp)
	peer_pin
	"${PIN[@]}" rtpengine --config-file=none --table=-1 \
		--interface=127.0.0.1 --listen-ng="127.0.0.1:$port" \
		--port-min=30000 --port-max=39999 --timeout=60 \
		--foreground --log-stderr --log-level=5 \
		--pidfile="$dir/rtpengine.pid" > "$dir/rtpengine.log" 2>&1 &
	pid=$!
	echo "$pid" > "$dir/bench.pid"
	peer_wait rtpengine "$pid" "$port" "$dir/rtpengine.log" \
		rtpengine_ready
}

case $cmd in
start) start ;;
stop) peer_stop "$dir/bench.pid" ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
