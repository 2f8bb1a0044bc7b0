#!/usr/bin/env bash
# A small SHAKEN PKI for throughput runs, made with the openssl CLI: an STI-CA root and an SP
# leaf (EC P-256, digitalSignature, TNAuthList with SPC 1234) in DIR.
#   DIR/root.pem       trust anchor   ([shaken] trust_anchors)
#   DIR/leaf-bundle.pem what the x5u URL serves ([shaken] certs = [{url, file}])
#   DIR/leaf.key       PKCS#8 private key the generator signs PASSporTs with
set -euo pipefail
dir=${1:?usage: make-pki.sh DIR}
mkdir -p "$dir" && cd "$dir"
openssl ecparam -name prime256v1 -genkey -noout -out root.ec 2>/dev/null
openssl req -x509 -new -key root.ec -subj "/CN=Bench STI-CA" -days 3650 -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out root.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out leaf.ec 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in leaf.ec -out leaf.key
openssl req -new -key leaf.ec -subj "/CN=SHAKEN 1234/O=Bench SP" -out leaf.csr 2>/dev/null
# TNAuthList (RFC 8226): SEQUENCE { [0] EXPLICIT IA5String "1234" }
cat > leaf.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
1.3.6.1.5.5.7.1.26=DER:30:08:a0:06:16:04:31:32:33:34
EXT
openssl x509 -req -in leaf.csr -CA root.pem -CAkey root.ec -CAcreateserial -days 3650 -sha256 \
  -extfile leaf.ext -out leaf.pem 2>/dev/null
cp leaf.pem leaf-bundle.pem
echo "$dir: root.pem leaf-bundle.pem leaf.key"
