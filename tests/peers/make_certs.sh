#!/bin/bash
# Makes the test PKI for smtpsh's TLS tests (openssl CLI only; OpenSSL 3.0).
#
#     tests/peers/make_certs.sh DIR
#
# Creates in DIR (nothing at all when DIR/done already exists):
#   ca.key, ca.pem               test CA "smtpsh test CA", RSA 2048, 10 years
#   mx1.key, mx1.pem             leaf CN=mx1.example.test, SAN DNS:mx1.example.test,
#                                DNS:localhost, IP:127.0.0.1; valid from now for 825 days
#   mx1-chain.pem                mx1.pem followed by ca.pem
#   expired.key, expired.pem     same names as mx1, valid 2020-01-01 to 2021-01-01 only
#   wronghost.key, wronghost.pem leaf CN=other.example.test, SAN DNS:other.example.test only
#   mx1.spki.sha256              lowercase hex SHA-256 of mx1's SubjectPublicKeyInfo (DER),
#                                i.e. the data of a "TLSA 3 1 1" record; no newline
#   done                         written last
# All leaves are RSA 2048, signed by the CA, serverAuth. Prints nothing on success; on
# failure prints openssl's message on stderr and exits non-zero.
set -u -o pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
[ -e "$dir/done" ] && exit 0
mkdir -p "$dir" || exit 1
cd "$dir" || exit 1

work=$(mktemp -d "${TMPDIR:-/tmp}/smtpsh-certs.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

run() {  # runs "$@" quietly; on failure shows what it printed and exits
    if ! "$@" >"$work/out" 2>&1; then
        echo "make_certs.sh: failed: $*" >&2
        cat "$work/out" >&2
        exit 1
    fi
}

cat >"$work/openssl.cnf" <<'EOF'
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ mx1_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:mx1.example.test, DNS:localhost, IP:127.0.0.1
[ wronghost_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:other.example.test
# "openssl ca", only for the expired leaf (x509 -req cannot set a start date in 3.0)
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = WORKDIR
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = CADIR/ca.pem
private_key = CADIR/ca.key
default_md = sha256
policy = any_policy
unique_subject = no
copy_extensions = none
email_in_dn = no
[ any_policy ]
commonName = supplied
EOF
sed -i -e "s|WORKDIR|$work|" -e "s|CADIR|$PWD|" "$work/openssl.cnf"
: >"$work/index.txt"
echo 1003 >"$work/serial"
export OPENSSL_CONF="$work/openssl.cnf"

# key generation is most of the time: do the four in parallel
pids=()
for name in ca mx1 expired wronghost; do
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$name.key" \
        >"$work/$name.keyout" 2>&1 &
    pids+=($!)
done
status=()
for pid in "${pids[@]}"; do  # all of them, so no openssl outlives a failure
    wait "$pid"
    status+=($?)
done
i=0
for name in ca mx1 expired wronghost; do
    if [ "${status[$i]}" -ne 0 ]; then
        echo "make_certs.sh: failed: openssl genpkey for $name.key" >&2
        cat "$work/$name.keyout" >&2
        exit 1
    fi
    i=$((i + 1))
done

run openssl req -new -x509 -key ca.key -subj "/CN=smtpsh test CA" -days 3650 -sha256 \
    -set_serial 0x1000 -extensions ca_ext -out ca.pem

leaf() {  # NAME CN EXTENSIONS SERIAL
    run openssl req -new -key "$1.key" -subj "/CN=$2" -out "$work/$1.csr"
    run openssl x509 -req -in "$work/$1.csr" -CA ca.pem -CAkey ca.key -set_serial "$4" \
        -days 825 -sha256 -extfile "$OPENSSL_CONF" -extensions "$3" -out "$1.pem"
}
leaf mx1 mx1.example.test mx1_ext 0x1001
leaf wronghost other.example.test wronghost_ext 0x1002

run openssl req -new -key expired.key -subj "/CN=mx1.example.test" -out "$work/expired.csr"
run openssl ca -batch -notext -in "$work/expired.csr" -startdate 20200101000000Z \
    -enddate 20210101000000Z -extfile "$OPENSSL_CONF" -extensions mx1_ext \
    -out expired.pem

cat mx1.pem ca.pem >mx1-chain.pem || exit 1

if ! spki=$(openssl x509 -in mx1.pem -pubkey -noout 2>"$work/out" \
        | openssl pkey -pubin -outform DER 2>>"$work/out" \
        | openssl dgst -sha256 -hex 2>>"$work/out"); then
    echo "make_certs.sh: failed: SPKI digest of mx1.pem" >&2
    cat "$work/out" >&2
    exit 1
fi
spki=${spki##*= }
if ! [[ $spki =~ ^[0-9a-f]{64}$ ]]; then
    echo "make_certs.sh: unexpected digest output: $spki" >&2
    exit 1
fi
printf '%s' "$spki" >mx1.spki.sha256 || exit 1

: >./done || exit 1
