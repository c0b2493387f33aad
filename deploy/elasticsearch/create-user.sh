#!/bin/bash
# Create (or update) the Elasticsearch roles and users finsentry and Grafana connect with.
#
# Runs in the Elasticsearch image once the cluster is healthy. It authenticates as the
# `elastic` superuser (ELASTIC_PASSWORD) only here. Workers, scrapers and the trainer use
# FINSENTRY_ES_USERNAME / FINSENTRY_ES_PASSWORD, whose role reaches only the finsentry
# indices (FINSENTRY_ES_INDEX_PREFIX*), index templates and ILM policies (the store creates
# its retention policy at start-up). Grafana uses GRAFANA_ES_USERNAME / GRAFANA_ES_PASSWORD,
# whose role only reads those indices. Idempotent: PUT replaces the roles and sets the
# passwords again.
set -euo pipefail

ES="${ES_URL:-https://elasticsearch:9200}"
CA="${ES_CA:-/usr/share/elasticsearch/config/certs/ca/ca.crt}"
PREFIX="${FINSENTRY_ES_INDEX_PREFIX:-finsentry}"
USER_NAME="${FINSENTRY_ES_USERNAME:?set FINSENTRY_ES_USERNAME}"
: "${FINSENTRY_ES_PASSWORD:?set FINSENTRY_ES_PASSWORD}"
: "${ELASTIC_PASSWORD:?set ELASTIC_PASSWORD}"

if [ "$USER_NAME" = elastic ]; then
    echo "FINSENTRY_ES_USERNAME is the superuser 'elastic': no restricted user to create"
    exit 0
fi

# curl reads the superuser's credentials from its config on stdin: never on a command line
# (visible in `ps`) and never echoed.
# Backslash and double quote escaped, for a curl config or a JSON string alike.
curl_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }

call() {  # call METHOD PATH JSON_BODY
    body=$(mktemp)
    printf '%s' "$3" > "$body"
    curl --silent --show-error --fail --cacert "$CA" --config - -X "$1" "$ES$2" \
         -H 'Content-Type: application/json' --data-binary "@$body" <<CFG
user = "elastic:$(curl_escape "$ELASTIC_PASSWORD")"
CFG
    rm -f "$body"
}

role=$(cat <<JSON
{"cluster": ["monitor", "manage_index_templates", "manage_ilm"],
 "indices": [{"names": ["${PREFIX}*"],
              "privileges": ["create_index", "write", "read", "view_index_metadata", "manage", "delete_index"]}]}
JSON
)
call PUT "/_security/role/finsentry" "$role" >/dev/null

password_json=$(curl_escape "$FINSENTRY_ES_PASSWORD")  # JSON escapes \ and " alike
user=$(cat <<JSON
{"password": "${password_json}", "roles": ["finsentry"], "full_name": "finsentry services"}
JSON
)
call PUT "/_security/user/${USER_NAME}" "$user" >/dev/null
echo "Elasticsearch user ${USER_NAME} ready (role finsentry on ${PREFIX}*)"

if [ -n "${GRAFANA_ES_USERNAME:-}" ]; then
    : "${GRAFANA_ES_PASSWORD:?set GRAFANA_ES_PASSWORD}"
    if [ "$GRAFANA_ES_USERNAME" = "$USER_NAME" ]; then
        echo "GRAFANA_ES_USERNAME must differ from FINSENTRY_ES_USERNAME: Grafana gets a read-only user" >&2
        exit 1
    fi
    # `monitor` only for the cluster's version and health, which Grafana's datasource asks.
    reader=$(cat <<JSON
{"cluster": ["monitor"],
 "indices": [{"names": ["${PREFIX}*"], "privileges": ["read", "view_index_metadata"]}]}
JSON
)
    call PUT "/_security/role/finsentry_reader" "$reader" >/dev/null
    reader_password=$(curl_escape "$GRAFANA_ES_PASSWORD")
    reader_user=$(cat <<JSON
{"password": "${reader_password}", "roles": ["finsentry_reader"], "full_name": "finsentry dashboards (read-only)"}
JSON
)
    call PUT "/_security/user/${GRAFANA_ES_USERNAME}" "$reader_user" >/dev/null
    echo "Elasticsearch user ${GRAFANA_ES_USERNAME} ready (role finsentry_reader: read on ${PREFIX}*)"
fi
