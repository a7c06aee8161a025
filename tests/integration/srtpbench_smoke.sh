#!/usr/bin/env bash
# srtpbench_smoke.sh  srtpbench runs, every packet round-trips, flags parse.
#
# A tiny run (milliseconds per cell): this checks the program, not speed.
# Debian's NSS libsrtp2 is loaded with RTLD_DEEPBIND, which the sanitizer
# runtimes refuse, so that part runs only in a plain build.
set -u
bin=${KEYMIX_BUILD:?}/bin/srtpbench
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

[ -x "$bin" ] || { echo "no $bin"; echo "0 passed, 1 failed"; exit 1; }

out=$("$bin" -b openssl -b keyleg -n 1,3 -t 0.005 2>&1)
rows=$(printf '%s\n' "$out" | grep -cE '^(openssl|keyleg) ')
if [ "$rows" -eq 20 ]; then ok "openssl+keyleg: 20 cells"
else bad "openssl+keyleg: $rows cells"; printf '%s\n' "$out"; fi

if printf '%s\n' "$out" | grep -q 'backend "openssl"'; then
	ok "static libsrtp2 reports the openssl backend"
else bad "backend line missing"; fi

if "$bin" -p NO_SUCH_PROFILE >/dev/null 2>&1; then bad "bad profile accepted"
else ok "bad profile refused"; fi
if "$bin" -n 0 >/dev/null 2>&1; then bad "-n 0 accepted"
else ok "-n 0 refused"; fi

out=$("$bin" -b keyleg -p AES_CM_128_HMAC_SHA1_80 -n 3 -k 300 2>&1)
if printf '%s\n' "$out" |
	grep -qE '^keyleg +AES_CM_128_HMAC_SHA1_80 +3 +300 '; then
	ok "-k 300: exactly 300 packets"
else bad "-k 300"; printf '%s\n' "$out"; fi
if "$bin" -k 0 >/dev/null 2>&1; then bad "-k 0 accepted"
else ok "-k 0 refused"; fi
if nm "$bin" 2>/dev/null | grep -qw srtpbench_loop; then
	ok "srtpbench_loop is a symbol (callgrind --toggle-collect)"
else bad "no srtpbench_loop symbol"; fi

if nm "$bin" 2>/dev/null | grep -qE '__(asan|tsan|msan)_init'; then
	echo "-- sanitizer build: Debian library part skipped"
elif out=$("$bin" -b debian -p AEAD_AES_128_GCM -n 2 -t 0.005 2>&1); then
	if printf '%s\n' "$out" | grep -q 'using NSS'; then
		ok "Debian's libsrtp2 loaded next to ours (NSS backend)"
	else bad "Debian's backend not NSS"; printf '%s\n' "$out"; fi
else
	if [ -e /usr/lib/x86_64-linux-gnu/libsrtp2.so.1 ]; then
		bad "Debian's libsrtp2 present but unusable"
		printf '%s\n' "$out"
	else echo "-- libsrtp2-1 not installed: Debian part skipped"; fi
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
