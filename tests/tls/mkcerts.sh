#!/bin/sh
# SPDX-License-Identifier: MIT
# Make the throw-away certificates the TLS tests use, in DIR, with the
# openssl command: a CA; server.pem (localhost, 127.0.0.1, ::1) and
# other.pem (other.test, for SNI) signed by it; client.pem, a client
# certificate it signed; expired.pem, signed by it but valid only in 2020;
# self.pem, a self-signed localhost; roots/, a directory holding only the
# CA, as Twisted's trustRoots takes it. Keys are P-256, unencrypted, *.key.
# Nothing here is ever committed: every run makes new keys.
# Usage: mkcerts.sh DIR
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
[ -f done ] && exit 0

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -subj "/CN=twine test CA" -days 30 -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# sign NAME SUBJECT EXTENSIONS: NAME.key and NAME.pem, signed by the CA.
sign() {
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
sign server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth"
sign other "/CN=other.test" "subjectAltName=DNS:other.test
extendedKeyUsage=serverAuth"
sign client "/CN=twine client" "extendedKeyUsage=clientAuth"

# expired: openssl ca is the one that takes explicit dates.
key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr
mkdir -p ca.db
: >ca.db/index.txt
echo 1000 >ca.db/serial
cat >ca.cnf <<CNF
[ca]
default_ca = test
[test]
dir = ca.db
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = ext
[any]
commonName = supplied
[ext]
subjectAltName = DNS:localhost,IP:127.0.0.1
CNF
openssl ca -batch -notext -config ca.cnf -cert ca.pem -keyfile ca.key \
    -startdate 20200101000000Z -enddate 20200201000000Z -in expired.csr -out expired.pem 2>/dev/null
rm -f expired.csr

key self.key
openssl req -x509 -new -key self.key -subj "/CN=localhost" -days 30 -out self.pem \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
# Twisted's trustRoots is a directory of PEM files.
mkdir -p roots
cp ca.pem roots/
touch done
