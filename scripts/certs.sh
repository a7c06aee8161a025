#!/usr/bin/env bash
# certs.sh  Demo operator CA and NDS/IP certificates (openssl command only)
#
#   bash scripts/certs.sh DIR
#
# Makes, in DIR (see docs/nds.md "Certificates"):
#   ca.crt ca.key                   demo operator domain CA
#   kmsd-nds.crt/.key               kmsd's NDS server certificate
#                                   (SAN DNS:localhost, IP:127.0.0.1, ::1)
#   bridge1, bridge2                two conference bridges (role bridge)
#   transcoder1                     a transcoder (role transcoder)
#   mailbox1                        a mailbox AS (role mailbox)
#   test/                           negatives for the tests: other-ca.*,
#                                   other-bridge1 (same name, other CA),
#                                   expired-bridge1 (real CA, 2020),
#                                   norole1 (real CA, no role URI),
#                                   badrole1 (real CA, unknown role)
# Identity = the first SAN DNS name (else the CN); role = the SAN URI
# "keymix-role:<role>".  Keys are ECDSA P-256.  Existing files are kept
# unless FORCE=1 (a complete set is detected by DIR/.complete).
set -euo pipefail
dir=${1:?usage: certs.sh DIR}
days=${CERT_DAYS:-825}
mkdir -p "$dir/test"
dir=$(cd "$dir" && pwd)
if [ -f "$dir/.complete" ] && [ "${FORCE:-0}" != 1 ]; then
	echo "certs: $dir already complete (FORCE=1 to remake)"
	exit 0
fi
rm -f "$dir/.complete"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dom=keymix.test

newkey() { # file
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$1" 2>/dev/null
}

mkca() { # base cn
	newkey "$1.key"
	openssl req -new -x509 -key "$1.key" -out "$1.crt" -days "$days" \
		-subj "/O=Keymix demo operator/CN=$2" -sha256 \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash"
}

# ext file for one leaf: name role eku [extra SAN]
mkext() {
	local san="DNS:$1"
	[ -n "$2" ] && san="$san,URI:keymix-role:$2"
	[ -n "${4:-}" ] && san="$san,$4"
	cat >"$tmp/ext.cnf" <<EOT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=$3
subjectAltName=$san
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOT
}

# leaf: out-base ca-base name role eku [extra SAN]
leaf() {
	newkey "$1.key"
	openssl req -new -key "$1.key" -out "$tmp/req.csr" \
		-subj "/O=Keymix demo operator/OU=${4:-none}/CN=$3"
	mkext "$3" "$4" "$5" "${6:-}"
	openssl x509 -req -in "$tmp/req.csr" -CA "$2.crt" -CAkey "$2.key" \
		-CAcreateserial -CAserial "$tmp/serial" -days "$days" \
		-sha256 -extfile "$tmp/ext.cnf" -out "$1.crt" 2>/dev/null
}

mkca "$dir/ca" "Keymix Demo Operator CA"
leaf "$dir/kmsd-nds" "$dir/ca" "kms.$dom" kms serverAuth \
	"DNS:localhost,IP:127.0.0.1,IP:::1"
for n in bridge1 bridge2; do
	leaf "$dir/$n" "$dir/ca" "$n.$dom" bridge clientAuth
done
leaf "$dir/transcoder1" "$dir/ca" "transcoder1.$dom" transcoder clientAuth
leaf "$dir/mailbox1" "$dir/ca" "mailbox1.$dom" mailbox clientAuth

# Negatives.
t=$dir/test
mkca "$t/other-ca" "Some Other CA"
leaf "$t/other-bridge1" "$t/other-ca" "bridge1.$dom" bridge clientAuth
leaf "$t/norole1" "$dir/ca" "norole1.$dom" "" clientAuth
leaf "$t/badrole1" "$dir/ca" "badrole1.$dom" admin clientAuth
leaf "$t/serveronly1" "$dir/ca" "bridge1.$dom" bridge serverAuth
# Expired: `openssl ca` takes explicit start and end dates (OpenSSL 3.0's
# x509 command has no backdating option).
mkdir -p "$tmp/db"
: >"$tmp/db/index.txt"
echo 1000 >"$tmp/db/serial"
cat >"$tmp/ca.cnf" <<EOT
[ca]
default_ca = demo
[demo]
database = $tmp/db/index.txt
serial = $tmp/db/serial
new_certs_dir = $tmp/db
default_md = sha256
policy = anything
copy_extensions = none
unique_subject = no
[anything]
organizationName = optional
organizationalUnitName = optional
commonName = supplied
EOT
newkey "$t/expired-bridge1.key"
openssl req -new -key "$t/expired-bridge1.key" -out "$tmp/req.csr" \
	-subj "/O=Keymix demo operator/OU=bridge/CN=bridge1.$dom"
mkext "bridge1.$dom" bridge clientAuth
openssl ca -batch -config "$tmp/ca.cnf" -cert "$dir/ca.crt" \
	-keyfile "$dir/ca.key" -in "$tmp/req.csr" -out "$t/expired-bridge1.crt" \
	-startdate 20200101000000Z -enddate 20200201000000Z \
	-extfile "$tmp/ext.cnf" -notext 2>/dev/null
chmod 0644 "$dir"/*.crt "$t"/*.crt
touch "$dir/.complete"
echo "certs: made in $dir"
