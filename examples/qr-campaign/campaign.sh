#!/usr/bin/env bash
# A marketer's QR campaign with Cornetta: a tracked short link for a poster, its print-ready
# codes, a scan, the campaign's figures, a new message behind the printed code, the end of
# the campaign, and a batch of codes made offline. Run it against a running server
# (`cargo xtask run`):
#
#   export CORNETTA_TOKEN=$(cornetta token create --role marketer)
#   examples/qr-campaign/campaign.sh
#
# Files go to ./qr-campaign-<date>/ (or $OUT). Needs curl and python3; `cornetta` on PATH or
# $CORNETTA_BIN for the offline batch. The same is in the console: $CORNETTA_URL/console.
set -euo pipefail

URL=${CORNETTA_URL:-http://127.0.0.1:8080}
BIN=${CORNETTA_BIN:-cornetta}
: "${CORNETTA_TOKEN:?set CORNETTA_TOKEN to a marketer token: cornetta token create --role marketer}"
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-qr-campaign-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"

api() { curl --silent --show-error --fail-with-body -H "Authorization: Bearer $CORNETTA_TOKEN" "$@"; }
# field FILE a.b: one field of a JSON file.
field() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d = d[k]
print(d)' "$1" "$2"; }

echo "1. A tracked campaign for the spring poster ({ref} becomes a fresh reference at every scan)"
api -X POST -H 'Content-Type: application/json' "$URL/v1/campaigns" \
  -d '{"name": "Spring poster", "text": "Hi! I saw your spring poster (ref {ref})", "source": "poster", "medium": "print"}' \
  > "$OUT/campaign.json"
ID=$(field "$OUT/campaign.json" id)
SHORT=$(field "$OUT/campaign.json" short_url)
echo "   campaign $ID, short link $SHORT"

echo "2. Print-ready codes: SVG (vector) and PNG 3 cm at 300 dpi"
QR="$URL/v1/campaigns/$ID/qr"
api -o "$OUT/poster.svg" "$QR?format=svg"
api -o "$OUT/poster-3cm-300dpi.png" "$QR?format=png&size=3cm&dpi=300&ecc=Q"
echo "   $(wc -c < "$OUT/poster.svg") bytes $OUT/poster.svg, $(wc -c < "$OUT/poster-3cm-300dpi.png") bytes $OUT/poster-3cm-300dpi.png"

echo "3. Someone scans the poster with an iPhone: the short link sends them to WhatsApp"
curl --silent --show-error -o /dev/null -A 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)' \
  -w '   %{http_code} -> %{redirect_url}\n' "$SHORT"

echo "4. The campaign's scans per day and device (CSV)"
api -o "$OUT/stats.csv" "$URL/v1/campaigns/$ID/stats?format=csv"
sed 's/^/   /' "$OUT/stats.csv"

echo "5. The offer changes after printing: the same poster code now opens the new message"
api -X PATCH -H 'Content-Type: application/json' "$URL/v1/campaigns/$ID" \
  -d '{"text": "Hi! I saw your summer poster (ref {ref})"}' > "$OUT/campaign-edited.json"
curl --silent --show-error -o /dev/null -A 'Mozilla/5.0 (Linux; Android 15; Pixel 9)' \
  -w '   %{http_code} -> %{redirect_url}\n' "$SHORT"

echo "6. The season is over: end the campaign; the printed code now says it has ended"
api -X POST "$URL/v1/campaigns/$ID/end" > "$OUT/campaign-ended.json"
curl --silent --show-error -o /dev/null -w '   %{http_code} (the scanner sees "This campaign has ended")\n' "$SHORT"

echo "7. A batch of codes made offline from a CSV (name, phone, text); bad rows are reported by line"
"$BIN" qr --batch "$HERE/codes.csv" -o "$OUT/codes.zip"
python3 -c 'import sys, zipfile; print("\n".join("   " + n for n in zipfile.ZipFile(sys.argv[1]).namelist()))' "$OUT/codes.zip"
echo "Files written to $OUT/"
