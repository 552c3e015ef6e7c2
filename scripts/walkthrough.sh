#!/usr/bin/env bash
# Runs the README walkthrough against a running server and checks every
# response. Usage: scripts/walkthrough.sh [BASE_URL]  (default http://127.0.0.1:8080)
# RPC_URL names the chain node for the receipt check (default
# http://127.0.0.1:$ANVIL_PORT, port 8545 unless ANVIL_PORT is set).
set -euo pipefail
cd "$(dirname "$0")/.."

API="${1:-http://127.0.0.1:8080}/api/v1"
SAMPLE=docs/examples/observation-glucose.json
user="walk$(date +%s%N | tail -c 9)"
password="correct horse battery"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

fail() { echo "walkthrough failed: $*" >&2; exit 1; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

status=$(curl -s -o $scratch/register.json -w '%{http_code}' -X POST "$API/auth/register" \
  -H 'content-type: application/json' \
  -d "{\"username\":\"$user\",\"email\":\"$user@example.org\",\"password\":\"$password\",\"role\":\"PATIENT\"}")
[ "$status" = 201 ] || fail "register answered $status: $(cat $scratch/register.json)"
echo "registered $user as $(field '["did"]' <$scratch/register.json)"

TOKEN=$(curl -sf -X POST "$API/auth/login/json" -H 'content-type: application/json' \
  -d "{\"username_or_email\":\"$user\",\"password\":\"$password\"}" | field '["access_token"]')

BODY=$(python3 -c "import json; print(json.dumps({'record_type': 'LAB_RESULT', 'record_metadata': {'source': 'walkthrough'}, 'raw_data': open('$SAMPLE').read()}))")
created=$(curl -sf -X POST "$API/medical-records" -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d "$BODY")
RECORD=$(echo "$created" | field '["id"]')
echo "created record $RECORD, anchor $(echo "$created" | field '["anchor"]["status"]')"

listed=$(curl -sf "$API/medical-records/patient/me" -H "authorization: Bearer $TOKEN" | field '[0]["id"]')
[ "$listed" = "$RECORD" ] || fail "the list does not start with the new record"

for _ in $(seq 1 100); do
  anchor=$(curl -sf "$API/medical-records/$RECORD" -H "authorization: Bearer $TOKEN" | field '["anchor"]["status"]')
  [ "$anchor" = anchored ] && break
  sleep 0.2
done
[ "$anchor" = anchored ] || fail "the record was not anchored within 20 s"

same=$(curl -sf "$API/medical-records/$RECORD" -H "authorization: Bearer $TOKEN" \
  | python3 -c "import json,sys; print(json.load(sys.stdin)['raw_data'] == open('$SAMPLE').read())")
[ "$same" = True ] || fail "raw_data differs from $SAMPLE"

report=$(curl -sf "$API/medical-records/$RECORD/verify" -H "authorization: Bearer $TOKEN")
[ "$(echo "$report" | field '["verified"]')" = True ] || fail "verify did not pass: $report"
echo "verified: tx $(echo "$report" | field '["anchor"]["tx_hash"]') in block $(echo "$report" | field '["anchor"]["block_number"]')"

history=$(curl -sf "$API/audit/my-record-access-history" -H "authorization: Bearer $TOKEN")
summary=$(echo "$history" | python3 -c "
import json, sys
events = [e for e in json.load(sys.stdin) if e['record_id'] == '$RECORD']
print(events[0]['action'], sum(e['action'] == 'record.read' for e in events))")
[ "${summary%% *}" = record.verify ] || fail "the access history does not start with the verify: $history"
[ "${summary##* }" -ge 2 ] || fail "the access history has fewer than 2 reads of $RECORD: $history"
echo "access history: newest ${summary%% *}, ${summary##* } reads of the record"

# The anchor receipt, checked against the chain without our database.
curl -sf "$API/medical-records/$RECORD/proof" -H "authorization: Bearer $TOKEN" \
  >"$scratch/receipt.json" || fail "GET /proof did not return a receipt"
target/debug/meditrustal verify-receipt "$scratch/receipt.json" \
  --rpc "${RPC_URL:-http://127.0.0.1:${ANVIL_PORT:-8545}}" --content "$SAMPLE" \
  >"$scratch/receipt.log" || { cat "$scratch/receipt.log"; fail "verify-receipt failed"; }
tail -1 "$scratch/receipt.log"

# Consent: a doctor reads the record only between grant and revocation.
doctor="dr$user"
status=$(curl -s -o /tmp/walk-doctor.json -w '%{http_code}' -X POST "$API/auth/register" \
  -H 'content-type: application/json' \
  -d "{\"username\":\"$doctor\",\"email\":\"$doctor@example.org\",\"password\":\"$password\",\"role\":\"DOCTOR\"}")
[ "$status" = 201 ] || fail "doctor register answered $status: $(cat /tmp/walk-doctor.json)"
DOCTOR_ADDRESS=$(field '["blockchain_address"]' </tmp/walk-doctor.json)
DOCTOR_TOKEN=$(curl -sf -X POST "$API/auth/login/json" -H 'content-type: application/json' \
  -d "{\"username_or_email\":\"$doctor\",\"password\":\"$password\"}" | field '["access_token"]')
doctor_read() {
  curl -s -o /dev/null -w '%{http_code}' "$API/medical-records/$RECORD" -H "authorization: Bearer $DOCTOR_TOKEN"
}
[ "$(doctor_read)" = 403 ] || fail "the doctor read the record without consent"

granted=$(curl -sf -X POST "$API/medical-records/$RECORD/grant-access" -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d "{\"doctor_address\":\"$DOCTOR_ADDRESS\"}")
CONSENT=$(echo "$granted" | field '["consent_id"]')
[ "$(doctor_read)" = 200 ] || fail "the doctor could not read the record after the grant"
for _ in $(seq 1 100); do
  grant=$(curl -sf "$API/consents" -H "authorization: Bearer $TOKEN" \
    | python3 -c "import json,sys; print(next(c for c in json.load(sys.stdin) if c['id'] == '$CONSENT')['grant']['status'])")
  [ "$grant" = anchored ] && break
  sleep 0.2
done
[ "$grant" = anchored ] || fail "the patient-signed grant was not recorded on chain within 20 s"
echo "consent $CONSENT granted to $DOCTOR_ADDRESS and recorded on chain"

curl -sf -X POST "$API/medical-records/$RECORD/revoke-access" -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d "{\"doctor_address\":\"$DOCTOR_ADDRESS\"}" >/dev/null
[ "$(doctor_read)" = 403 ] || fail "the doctor still read the record after the revocation"
echo "consent revoked; the doctor's next request is refused"

# Sessions, passwords and two-factor login, as in the README section.
DB_URL="${MEDITRUSTAL__DATABASE__URL:-postgres://postgres@127.0.0.1:5432/meditrustal}"
login() { curl -s -X POST "$API/auth/login/json" -H 'content-type: application/json' \
  -d "{\"username_or_email\":\"$user\",\"password\":\"$1\"}"; }
post() { curl -s -o /tmp/walk-answer.json -w '%{http_code}' -X POST "$API$1" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "${2:-{\}}"; }
totp() { python3 - "$1" "${2:-0}" <<'PY'
import base64, hmac, struct, sys, time
key = base64.b32decode(sys.argv[1] + "=" * (-len(sys.argv[1]) % 8))
step = (int(time.time()) + int(sys.argv[2])) // 30
mac = hmac.new(key, struct.pack(">Q", step), "sha1").digest()
offset = mac[-1] & 15
print("%06d" % ((struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7fffffff) % 1000000))
PY
}

REFRESH=$(login "$password" | field '["refresh_token"]')
pair=$(curl -sf -X POST "$API/auth/refresh" -H 'content-type: application/json' -d "{\"refresh_token\":\"$REFRESH\"}")
TOKEN=$(echo "$pair" | field '["access_token"]')
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$API/auth/refresh" \
  -H 'content-type: application/json' -d "{\"refresh_token\":\"$REFRESH\"}")
[ "$status" = 401 ] || fail "a spent refresh token answered $status"
status=$(curl -s -o /dev/null -w '%{http_code}' "$API/users/me" -H "authorization: Bearer $TOKEN")
[ "$status" = 401 ] || fail "the session survived refresh token reuse ($status)"
echo "refresh token reuse ended the session"

TOKEN=$(login "$password" | field '["access_token"]')
count=$(curl -sf "$API/auth/sessions" -H "authorization: Bearer $TOKEN" | field '.__len__()')
[ "$count" -ge 2 ] || fail "expected at least two active sessions, got $count"
[ "$(post /auth/logout-all)" = 204 ] || fail "logout-all failed"

TOKEN=$(login "$password" | field '["access_token"]')
new_password="a brand new passphrase"
[ "$(post /auth/password "{\"current_password\":\"$password\",\"new_password\":\"$new_password\"}")" = 200 ] \
  || fail "password change failed: $(cat /tmp/walk-answer.json)"
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$API/auth/password-reset" \
  -H 'content-type: application/json' -d "{\"email\":\"$user@example.org\"}")
[ "$status" = 202 ] || fail "password reset request answered $status"
RESET=$(psql -At "$DB_URL" -c "SELECT body FROM mail_outbox ORDER BY id DESC LIMIT 1" | grep -o 'mtr_reset_[A-Za-z0-9_-]*')
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$API/auth/password-reset/confirm" \
  -H 'content-type: application/json' -d "{\"token\":\"$RESET\",\"new_password\":\"$password\"}")
[ "$status" = 204 ] || fail "password reset confirmation answered $status"
echo "password changed and reset"

TOKEN=$(login "$password" | field '["access_token"]')
[ "$(post /auth/mfa/totp)" = 200 ] || fail "TOTP enrollment failed: $(cat /tmp/walk-answer.json)"
SECRET=$(field '["secret"]' </tmp/walk-answer.json)
[ "$(post /auth/mfa/totp/confirm "{\"code\":\"$(totp "$SECRET")\"}")" = 200 ] \
  || fail "TOTP confirmation failed: $(cat /tmp/walk-answer.json)"
RECOVERY=$(field '["recovery_codes"][0]' </tmp/walk-answer.json)
MFA=$(login "$password" | field '["mfa_token"]')
TOKEN=$(curl -sf -X POST "$API/auth/login/mfa" -H 'content-type: application/json' \
  -d "{\"mfa_token\":\"$MFA\",\"code\":\"$(totp "$SECRET" 30)\"}" | field '["access_token"]')
[ "$(post /auth/mfa/totp/disable "{\"password\":\"$password\",\"recovery_code\":\"$RECOVERY\"}")" = 204 ] \
  || fail "TOTP disable failed: $(cat /tmp/walk-answer.json)"
echo "two-factor login passed"
echo "walkthrough passed"
