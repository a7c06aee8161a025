# peer_lib.sh  What bench/peers/janus.sh and rtpengine.sh share: install
# on demand, the CPU pinning, waiting for readiness, stop by PID.
# Sourced, not run.

# peer_install PACKAGE: apt-get install unless installed (update on miss)
peer_install() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null |
		grep -q 'install ok installed' && return 0
	echo "peers: installing Debian's $1" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "$1" >&2 || {
		apt-get update -q >&2 &&
		apt-get install -y -q --no-install-recommends "$1" >&2; }
}

# peer_free_port tcp|udp: a free port on 127.0.0.1
peer_free_port() {
	/usr/bin/python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp"
                  else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"
}

# peer_pin: fills the array PIN with BENCH_PRIO and taskset -c BENCH_CPU
peer_pin() {
	PIN=()
	# shellcheck disable=SC2206
	[ -n "${BENCH_PRIO:-}" ] && PIN=($BENCH_PRIO)
	[ -n "${BENCH_CPU:-}" ] && PIN+=(taskset -c "$BENCH_CPU")
	return 0
}

# peer_wait NAME PID PORT LOG PROBE: up to 10 s for "PROBE PORT" to
# succeed; prints the ready line, or the log's tail and stops PID
peer_wait() {
	local name=$1 pid=$2 port=$3 log=$4 probe=$5
	for _ in $(seq 1 100); do
		if "$probe" "$port" 2>/dev/null; then
			echo "ready control=127.0.0.1:$port pid=$pid"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "$name did not come up; log:" >&2
	tail -n 30 "$log" >&2 || true
	kill "$pid" 2>/dev/null || true
	return 1
}

# peer_stop PIDFILE: TERM, up to 5 s, then KILL
peer_stop() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$1"
}
