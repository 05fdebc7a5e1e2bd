#!/bin/sh
# Makes the certificates the TLS tests use, with the openssl command, into
# DIR (never committed: they are made fresh by every test run):
#   ca.pem/ca.key          the test CA
#   server.pem/server.key  CA-signed; SANs DNS:localhost, DNS:*.wild.test,
#                          IP:127.0.0.1, IP:::1; CN cn-only.test (never matched)
#   chain.pem              server.pem followed by ca.pem
#   alt.pem/alt.key        CA-signed; SAN DNS:alt.test (an sni context)
#   client.pem/client.key  CA-signed client certificate (mutual TLS)
#   expired.pem/.key       CA-signed, valid 2020-01-01 .. 2020-01-02 only
#   unknown.pem/.key       signed by another CA (unknown-ca.pem), localhost
#   self.pem/self.key      self-signed, localhost
#   enc.key                server.key encrypted with the password "secret"
# Keys are ECDSA P-256 (fast to make). Usage: make-certs.sh DIR
set -eu
d=$1
cd "$d"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ext() {  # ext NAME SAN USAGE
  printf 'basicConstraints=CA:FALSE\nsubjectAltName=%s\nextendedKeyUsage=%s\nkeyUsage=digitalSignature\n' "$2" "$3" > "$1.ext"
}
sign() {  # sign NAME CA SAN USAGE CN
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$5/O=lnet test" -out "$1.csr" 2>/dev/null
  ext "$1" "$3" "$4"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 30 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
ca() {
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2/O=lnet test" -days 30 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem" 2>/dev/null
}
ca ca "lnet test CA"
ca unknown-ca "lnet unknown CA"
sign server ca "DNS:localhost,DNS:*.wild.test,IP:127.0.0.1,IP:::1" serverAuth cn-only.test
sign alt ca "DNS:alt.test" serverAuth alt.test
sign client ca "DNS:client.test" clientAuth "lnet client"
sign unknown unknown-ca "DNS:localhost,IP:127.0.0.1" serverAuth localhost
cat server.pem ca.pem > chain.pem
# Self-signed.
key self.key
openssl req -x509 -new -key self.key -subj "/CN=localhost" -days 30 \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out self.pem 2>/dev/null
# Expired: openssl ca sets the dates in the past.
key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr 2>/dev/null
mkdir -p caroot
: > caroot/index.txt
cat > expired.cnf <<CNF
[ca]
default_ca = test
[test]
database = caroot/index.txt
new_certs_dir = caroot
serial = caroot/serial
default_md = sha256
policy = any
x509_extensions = ext
[any]
commonName = supplied
[ext]
basicConstraints = CA:FALSE
subjectAltName = DNS:localhost,IP:127.0.0.1
CNF
echo 1000 > caroot/serial
openssl ca -batch -config expired.cnf -cert ca.pem -keyfile ca.key -in expired.csr \
  -startdate 20200101000000Z -enddate 20200102000000Z -out expired.pem 2>/dev/null
openssl pkey -in server.key -aes256 -passout pass:secret -out enc.key
echo ok
