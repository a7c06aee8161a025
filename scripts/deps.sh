#!/usr/bin/env bash
# deps.sh  Make a fresh Debian 12 machine ready: packages + libsrtp2 on OpenSSL.
#
# Idempotent: installs only what is missing, and rebuilds libsrtp2 only when
# its private prefix is absent or was built with another set of our patches
# (scripts/patches/libsrtp2-*.patch, applied in name order after
# dpkg-source -x; their hash is kept in the prefix).  The libsrtp2 source
# comes from Debian's own source package; the deb-src entry is derived at
# run time from this machine's apt sources into a private apt state
# (nothing under /etc/apt is changed).
#
# `deps.sh srtp` does only the libsrtp2 part (the Makefile runs it when a
# patch is newer than the library).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
prefix=${SRTP_PREFIX:-$top/build/third/srtp}
work=$top/build/third/work

say() { printf 'deps: %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
	local want=() p
	while read -r p; do
		p=${p%%#*}; p=${p//[[:space:]]/}
		[ -n "$p" ] || continue
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || want+=("$p")
	done < "$top/scripts/packages.txt"
	[ ${#want[@]} -eq 0 ] && return 0
	say "installing ${want[*]}"
	export DEBIAN_FRONTEND=noninteractive
	as_root apt-get update -q
	as_root apt-get install -y -q --no-install-recommends "${want[@]}"
}

# Turn every "deb" entry of the machine's apt sources into a "deb-src" one.
write_src_list() {
	local out=$1 f line
	: > "$out"
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# deb822: keep stanzas whose Types include deb
		awk 'BEGIN { RS=""; ORS="\n\n" }
		     /(^|\n)Types:([^\n]* )?deb([ \n]|$)/ {
			sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f" >> "$out"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		while read -r line; do
			case $line in
			deb\ *)
				# one-line: deb [opts] URI suite comps...
				set -- ${line#deb }
				local opts="" uri suite
				if [ "${1:0:1}" = "[" ]; then
					while [ "${1: -1}" != "]" ]; do shift; done
					shift
				fi
				uri=$1 suite=$2; shift 2
				printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n\n' \
					"$uri" "$suite" "$*" >> "$out"
				;;
			esac
		done < "$f"
	done
}

patch_list() {
	local p
	for p in "$top"/scripts/patches/libsrtp2-*.patch; do
		[ -f "$p" ] && printf '%s\n' "$p"
	done | LC_ALL=C sort
}

# Hash of the patch set (names and contents): recorded in the prefix
patch_hash() {
	local p
	{
		echo "keymix-libsrtp2-patches v1"
		patch_list | while read -r p; do
			printf '%s ' "${p##*/}"
			sha256sum < "$p"
		done
	} | sha256sum | cut -d' ' -f1
}

fetch_srtp_source() {
	local apt_dir=$top/build/third/apt
	mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$work"
	write_src_list "$apt_dir/parts/keymix-src.sources"
	local aopt=(-o "Dir::Etc::SourceList=/dev/null"
		-o "Dir::Etc::SourceParts=$apt_dir/parts"
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "APT::Sandbox::User=root")
	say "fetching Debian's libsrtp2 source package"
	apt-get "${aopt[@]}" -q update >/dev/null
	rm -rf "$work/srtp"; mkdir -p "$work/srtp"
	(cd "$work/srtp" &&
		apt-get "${aopt[@]}" -q source --download-only libsrtp2 >/dev/null)
}

build_srtp() {
	local want stamp=$prefix/keymix-patches p patches
	want=$(patch_hash)
	mapfile -t patches < <(patch_list)
	if [ -f "$prefix/lib/libsrtp2.a" ] && [ -f "$stamp" ] &&
	   [ "$(cat "$stamp")" = "$want" ]; then
		# up to date: make the library newer than the patches for make
		for p in "${patches[@]}"; do
			if [ "$p" -nt "$prefix/lib/libsrtp2.a" ]; then
				touch "$prefix/lib/libsrtp2.a"
				break
			fi
		done
		return 0
	fi
	# the downloaded source package is reused when only patches changed
	ls "$work"/srtp/*.dsc >/dev/null 2>&1 || fetch_srtp_source
	rm -rf "$work/srtp/src" "$prefix/lib/libsrtp2.a" "$stamp" \
		"$prefix/include/srtp2" "$prefix/include/srtp2-private"
	(cd "$work/srtp" && dpkg-source -x --no-check ./*.dsc src >/dev/null)
	for p in "${patches[@]}"; do
		say "applying ${p##*/}"
		patch -d "$work/srtp/src" -p1 --forward --batch --quiet < "$p" ||
			{ say "patch ${p##*/} does not apply"; exit 1; }
	done
	say "building libsrtp2 with --enable-openssl into $prefix"
	(cd "$work/srtp/src" &&
		./configure --prefix="$prefix" --enable-openssl \
			--disable-pcap CFLAGS="-O2 -fPIC" >/dev/null &&
		make -j"$(nproc)" libsrtp2.a >/dev/null &&
		make install-nopkgconfig >/dev/null 2>&1 || {
			mkdir -p "$prefix/lib" "$prefix/include/srtp2"
			cp libsrtp2.a "$prefix/lib/"
			cp include/srtp.h crypto/include/cipher.h \
				crypto/include/auth.h crypto/include/crypto_types.h \
				"$prefix/include/srtp2/"
		})
	# keep the private headers too: tests read the crypto kernel
	mkdir -p "$prefix/include/srtp2-private"
	cp "$work/srtp/src"/crypto/include/*.h "$work/srtp/src"/include/*.h \
		"$prefix/include/srtp2-private/" 2>/dev/null || true
	[ -f "$prefix/lib/libsrtp2.a" ] || { say "libsrtp2 build failed"; exit 1; }
	# libsrtp2's own test suite (cipher and SRTP drivers, RFC vectors,
	# replay, rtpw) on the patched build: our patches must pass it
	say "running libsrtp2's own tests (make runtest)"
	(cd "$work/srtp/src" &&
		make -j"$(nproc)" runtest > "$work/srtp/runtest.log" 2>&1) ||
		{ tail -n 20 "$work/srtp/runtest.log" >&2
		  say "libsrtp2's tests failed with our patches"; exit 1; }
	printf '%s\n' "$want" > "$stamp"
	say "libsrtp2 ready"
}

case ${1:-all} in
srtp) build_srtp ;;
all) install_packages; build_srtp ;;
*) say "usage: deps.sh [all|srtp]"; exit 2 ;;
esac
