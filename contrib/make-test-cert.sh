#!/bin/sh
# Make a test device certificate for trying renewd by hand:
#   contrib/make-test-cert.sh OUT.pem "SUBJECT CN" DAYS_LEFT [LIFETIME_DAYS]
# It is signed by a throwaway CA under var/test-ca/ and was issued
# LIFETIME_DAYS (default 365) before it expires, so a certificate with 10
# days left is a long-lived one near its end, not a 10-day certificate
# (which the short-lived rule would renew at half-life).
set -eu
[ $# -ge 3 ] || { echo "usage: $0 OUT.pem CN DAYS_LEFT [LIFETIME_DAYS]" >&2; exit 2; }
out=$1 cn=$2 left=$3 life=${4:-365}
ca=var/test-ca
mkdir -p "$ca/new"
if [ ! -f "$ca/ca.pem" ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ca/ca.key" \
	    -out "$ca/ca.pem" -days 3650 -subj "/CN=renewd test CA" 2>/dev/null
	: > "$ca/index.txt"
	echo 1000 > "$ca/serial"
fi
cat > "$ca/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
dir = $ca
database = $ca/index.txt
new_certs_dir = $ca/new
serial = $ca/serial
certificate = $ca/ca.pem
private_key = $ca/ca.key
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
CNF
now=$(date -u +%s)
end=$((now + left * 86400))
start=$((end - life * 86400))
fmt=+%Y%m%d%H%M%SZ
openssl req -new -newkey rsa:2048 -nodes -keyout "$out.key" -out "$out.csr" \
    -subj "/CN=$cn" 2>/dev/null
openssl ca -batch -config "$ca/ca.cnf" -in "$out.csr" -out "$out" -notext \
    -startdate "$(date -u -d @"$start" $fmt)" \
    -enddate "$(date -u -d @"$end" $fmt)" 2>/dev/null
rm -f "$out.csr"
echo "$out: CN=$cn, expires in $left days"
