#!/usr/bin/env bash
# Smoke test of a running sandbox: sandbox/hapi/smoke.sh [BASE_URL]
# (default http://127.0.0.1:${HRM_SANDBOX_PORT:-8080}/fhir). Needs curl and python3.
# Writes a few Patients/Tasks; run it against a fresh sandbox. Exit 0 when every check passes.
set -u
BASE="${1:-http://127.0.0.1:${HRM_SANDBOX_PORT:-8080}/fhir}"
CT='Content-Type: application/fhir+json'
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0

check() { # name expected actual [detail]
	if [ "$2" = "$3" ]; then
		pass=$((pass + 1)); echo "ok   $1: $3${4:+ ($4)}"
	else
		fail=$((fail + 1)); echo "FAIL $1: expected $2, got $3${4:+ ($4)}"
	fi
}
code() { curl -s -o "$TMP/body" -D "$TMP/head" -w '%{http_code}' "$@"; }
header() { grep -i "^$1:" "$TMP/head" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
json() { python3 -c "import json,sys; d=json.load(open('$TMP/body')); print($1)"; }

# 1. CapabilityStatement
c=$(code "$BASE/metadata")
types=$(json "','.join(sorted(r['type'] for r in d['rest'][0]['resource'] if r['type'] in ('Task','Flag','Communication','Provenance','MeasureReport','Patient','MedicationRequest','Observation')))")
check "GET /metadata" 200 "$c" "$types"
check "metadata lists the monitored types" "Communication,Flag,MeasureReport,MedicationRequest,Observation,Patient,Provenance,Task" "$types"

# 2. Client-assigned ids (referential integrity is on, so the Patient comes first)
c=$(code -X PUT -H "$CT" -d '{"resourceType":"Patient","id":"hrm-smoke-p1","name":[{"family":"Smoke"}]}' "$BASE/Patient/hrm-smoke-p1")
check "PUT Patient/hrm-smoke-p1 (create)" 201 "$c"
TASK='{"resourceType":"Task","id":"hrm-test1","status":"requested","intent":"order","for":{"reference":"Patient/hrm-smoke-p1"}}'
c=$(code -X PUT -H "$CT" -d "$TASK" "$BASE/Task/hrm-test1")
check "PUT Task/hrm-test1 (create)" 201 "$c" "ETag $(header etag)"
c=$(code -X PUT -H "$CT" -d "$TASK" "$BASE/Task/hrm-test1")
check "PUT Task/hrm-test1 again (update)" 200 "$c" "ETag $(header etag)"

# 3. If-Match: update to v2, then a PUT carrying the stale version must fail
TASK2='{"resourceType":"Task","id":"hrm-test1","status":"in-progress","intent":"order","for":{"reference":"Patient/hrm-smoke-p1"}}'
c=$(code -X GET "$BASE/Task/hrm-test1"); etag=$(header etag)
c=$(code -X PUT -H "$CT" -H "If-Match: $etag" -d "$TASK2" "$BASE/Task/hrm-test1")
check "PUT with current If-Match $etag" 200 "$c" "ETag $(header etag)"
c=$(code -X PUT -H "$CT" -H "If-Match: $etag" -d "$TASK" "$BASE/Task/hrm-test1")
check "PUT with stale If-Match $etag" 412 "$c"

# 4. Conditional create
CTASK='{"resourceType":"Task","status":"requested","intent":"order","identifier":[{"system":"urn:hrm:smoke","value":"cc-1"}],"for":{"reference":"Patient/hrm-smoke-p1"}}'
c1=$(code -X POST -H "$CT" -H 'If-None-Exist: identifier=urn:hrm:smoke|cc-1' -d "$CTASK" "$BASE/Task"); l1=$(header location)
c2=$(code -X POST -H "$CT" -H 'If-None-Exist: identifier=urn:hrm:smoke|cc-1' -d "$CTASK" "$BASE/Task"); l2=$(header location)
check "conditional create #1" 201 "$c1" "$l1"
check "conditional create #2" 200 "$c2" "$l2"
c=$(code "$BASE/Task?identifier=urn%3Ahrm%3Asmoke%7Ccc-1&_summary=count")
check "resources with that identifier" 1 "$(json "d.get('total')")"

# 5. Paging: 600 Patients in one batch Bundle, then _count=1000
python3 - "$TMP/bundle.json" <<'EOF'
import json, sys
entries = [{"resource": {"resourceType": "Patient",
                         "identifier": [{"system": "urn:hrm:smoke-load", "value": str(i)}],
                         "name": [{"family": "Load%d" % i}]},
            "request": {"method": "POST", "url": "Patient"}} for i in range(600)]
json.dump({"resourceType": "Bundle", "type": "batch", "entry": entries}, open(sys.argv[1], "w"))
EOF
c=$(code -X POST -H "$CT" --data-binary @"$TMP/bundle.json" "$BASE")
check "POST batch Bundle of 600 Patients" 200 "$c" "$(json "sum(1 for e in d['entry'] if e['response']['status'].startswith('201'))") created"
c=$(code "$BASE/Patient?identifier=urn%3Ahrm%3Asmoke-load%7C&_count=1000")
n1=$(json "len(d.get('entry', []))"); next=$(json "next((l['url'] for l in d['link'] if l['relation']=='next'), '')")
check "search _count=1000, page 1 entries" 500 "$n1"
check "page 1 has a next link" yes "$([ -n "$next" ] && echo yes || echo no)"
c=$(code "$next")
check "page 2 entries" 100 "$(json "len(d.get('entry', []))")"

# 6. $validate
c=$(code -X POST -H "$CT" -d "$TASK" "$BASE/Task/\$validate")
check "POST Task/\$validate" 200 "$c" "$(json "d['resourceType']")"
check "\$validate returns an OperationOutcome" OperationOutcome "$(json "d['resourceType']")"

# 7. Bulk export kick-off
c=$(code -H 'Prefer: respond-async' -H 'Accept: application/fhir+json' "$BASE/\$export?_type=Patient,Task")
poll=$(header content-location)
check "GET \$export (Prefer: respond-async)" 202 "$c" "$poll"
if [ -n "$poll" ]; then
	for _ in $(seq 1 60); do
		c=$(code "$poll"); [ "$c" != 202 ] && break; sleep 2
	done
	check "\$export-poll-status finishes" 200 "$c" "$( [ "$c" = 200 ] && json "', '.join('%s x%d' % (t, n) for t, n in __import__('collections').Counter(o['type'] for o in d.get('output', [])).items())")"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
