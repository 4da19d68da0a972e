#!/usr/bin/env bash
# An auditor's questions to Cornetta's consent ledger, answered from the API and checked
# offline. Run it against a running server (`cargo xtask run`):
#
#   export CORNETTA_TOKEN=$(cornetta token create --role auditor)
#   examples/auditor/queries.sh "+39 333 1234567" pk_…        # the person's number, the site key
#
# It writes its evidence into ./audit-<date>/ (or $OUT): the person's events, their status
# now and at a past moment, a consent receipt verified offline against the published key,
# every notice version with its hash recomputed, the signed checkpoints, the whole log's
# verification, and a CSV export.
# Needs curl and python3 (show.py prints the JSON answers); `cornetta` on PATH or $CORNETTA_BIN.
set -euo pipefail

URL=${CORNETTA_URL:-http://127.0.0.1:8080}
BIN=${CORNETTA_BIN:-cornetta}
: "${CORNETTA_TOKEN:?set CORNETTA_TOKEN to an auditor token: cornetta token create --role auditor}"
PHONE=${1:?usage: $0 PHONE SITE_KEY   (e.g. $0 "+39 333 1234567" pk_…)}
SITE=${2:?usage: $0 PHONE SITE_KEY   (cornetta site list shows the keys)}
OUT=${OUT:-audit-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"

urlencode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
show() { python3 "$(dirname "$0")/show.py" "$@"; }
api() { curl --silent --show-error --fail-with-body -H "Authorization: Bearer $CORNETTA_TOKEN" "$URL$1"; }

P=$(urlencode "$PHONE")

echo "1. Every event of $PHONE at $SITE (oldest first, decrypted, with the notice text shown)"
api "/v1/consents?site=$SITE&phone=$P&limit=100" > "$OUT/events.json"
show events "$OUT/events.json"
FIRST=$(show first-event "$OUT/events.json")
if [ -z "$FIRST" ]; then
  echo "   no events: nothing more to ask about this person" >&2
  exit 1
fi

echo "2. May the business send order updates (utility) and marketing to $PHONE now?"
api "/v1/subjects/$P/status?site=$SITE" > "$OUT/status-now.json"
show status "$OUT/status-now.json"

AT=${AT:-2020-01-01T00:00:00Z}
echo "3. ...and on $AT (before any record)?"
api "/v1/subjects/$P/status?site=$SITE&purpose=utility&at=$AT" > "$OUT/status-then.json"
show status "$OUT/status-then.json"

echo "4. A receipt for the first event, verified offline against the published key"
api "/v1/consents/$FIRST/receipt" > "$OUT/receipt.json"
api "/v1/ledger/public-key" > "$OUT/public-key.json"
KEY=$(show verifier-key "$OUT/public-key.json")
echo "   public key: $KEY"
"$BIN" receipt verify "$OUT/receipt.json" --public-key "$KEY" | sed 's/^/   /'

echo "5. Every notice version the site published, each hash recomputed from its exact text"
api "/v1/sites/$SITE/notices" > "$OUT/notices.json"
show notices "$OUT/notices.json"

echo "6. The site's signed checkpoints"
api "/v1/ledger/checkpoints?site=$SITE" > "$OUT/checkpoints.json"
show checkpoints "$OUT/checkpoints.json"

echo "7. Was any record altered since? (recomputes the whole log and every checkpoint)"
api "/v1/ledger/verify?site=$SITE" > "$OUT/verify.json"
show verify "$OUT/verify.json"

echo "8. CSV export of the person's records (for the file)"
api "/v1/consents/export?site=$SITE&phone=$P&format=csv" > "$OUT/consents.csv"
echo "   $(($(wc -l < "$OUT/consents.csv") - 1)) rows in $OUT/consents.csv"
echo "Evidence written to $OUT/"
