#!/bin/bash
# Create the TLS material of the Elasticsearch HTTP and transport layers, once.
#
# Runs in the Elasticsearch image (its elasticsearch-certutil) with the `es-certs` volume
# mounted at $CERTS. A self-made CA signs one node certificate valid for the names the
# other services use (elasticsearch, localhost). The CA certificate (not its key) is what
# finsentry (FINSENTRY_ES_CA_CERTS) and Grafana trust. To use your own PKI instead, put
# ca/ca.crt and elasticsearch/elasticsearch.{crt,key} into the volume: this job then
# leaves them alone.
set -euo pipefail

CERTS="${CERTS:-/usr/share/elasticsearch/config/certs}"
NODE="${ES_NODE_NAME:-elasticsearch}"
cd /usr/share/elasticsearch

if [ -f "$CERTS/$NODE/$NODE.crt" ] && [ -f "$CERTS/ca/ca.crt" ]; then
    echo "certificates present in $CERTS; nothing to do"
    exit 0
fi

work=$(mktemp -d)
bin/elasticsearch-certutil ca --silent --pem --days "${ES_CERT_DAYS:-1095}" --out "$work/ca.zip"
unzip -q -o "$work/ca.zip" -d "$CERTS"
cat > "$work/instances.yml" <<YAML
instances:
  - name: $NODE
    dns: [$NODE, localhost]
    ip: [127.0.0.1]
YAML
bin/elasticsearch-certutil cert --silent --pem --days "${ES_CERT_DAYS:-1095}" --in "$work/instances.yml" \
    --ca-cert "$CERTS/ca/ca.crt" --ca-key "$CERTS/ca/ca.key" --out "$work/certs.zip"
unzip -q -o "$work/certs.zip" -d "$CERTS"
rm -rf "$work"

# Elasticsearch runs as uid 1000 in group 0: group-readable node key. finsentry (uid 10001)
# and Grafana (uid 472) read only the CA certificate. The CA key stays root's.
chown -R root:root "$CERTS"
chmod 755 "$CERTS" "$CERTS/ca"
chmod 644 "$CERTS/ca/ca.crt"
chmod 600 "$CERTS/ca/ca.key"
chmod 750 "$CERTS/$NODE"
chmod 640 "$CERTS/$NODE/$NODE.crt" "$CERTS/$NODE/$NODE.key"
echo "certificates written to $CERTS"
