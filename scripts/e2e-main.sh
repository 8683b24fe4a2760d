#!/usr/bin/env bash
# End to end against the main job (docs/operations.md, "End-to-end checks"): starts
# scripts/run.sh in waiting mode (in the background, in its own process group), waits until it
# has stored and verified the simulated calls (out/live/stored.json), checks the store (every
# call Available, nothing left in the spools, no alarm, no duplicate interaction), runs the
# Playwright suite e2e/main-job/ (e2e/main-job.config.js) in headless chromium against the
# running product, then stops run.sh with SIGINT as Ctrl-C would and checks the clean stop:
# run.sh exits 0, none of its processes is left, no bot spool holds anything in active/ or
# sealed/.
#   scripts/e2e-main.sh [--postgres] [--azurite] [--pairs N] [--scenario NAME]...
#                       [--timeout SECS]   (for the calls to be stored; default 900)
# The run.sh options are passed on (scripts/run.sh --help). Logs: out/e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

run_args=()
timeout=900
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres | --azurite) run_args+=("$1") ;;
    --pairs | --scenario)
      [ $# -ge 2 ] || { echo "e2e-main: $1 needs a value" >&2; exit 2; }
      run_args+=("$1" "$2"); shift ;;
    --timeout)
      [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "e2e-main: --timeout takes seconds" >&2; exit 2; }
      timeout=$2; shift ;;
    --help | -h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "e2e-main: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

bash scripts/setup.sh # chromium, opus-tools
if ! command -v npm >/dev/null 2>&1; then
  echo "e2e-main: installing nodejs and npm" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get install -y -q nodejs npm >&2
fi
if [ ! -d e2e/node_modules/@playwright/test ]; then
  echo "e2e-main: installing Playwright into e2e/node_modules" >&2
  (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2)
fi

logs=$root/out/e2e
live=$root/out/live
rm -rf "$logs"
mkdir -p "$logs"
rm -f "$live/product.json" "$live/stored.json"
started=$(date +%s)
label="run.sh${run_args[*]:+ ${run_args[*]}}"

fail() {
  echo "e2e-main: FAILED: $*" >&2
  exit 1
}
show_logs() {
  echo "----- $logs/run.log (last 60 lines)" >&2
  tail -n 60 "$logs/run.log" >&2 || true
  for f in "$live"/*.log; do
    [ -f "$f" ] || continue
    echo "----- $f (last 20 lines)" >&2
    tail -n 20 "$f" >&2
  done
}

# run.sh leads its own process group: SIGINT to the group is what a Ctrl-C at its terminal
# sends. A plain `&` would start it with SIGINT ignored (bash does that to background
# commands without job control), and an ignored signal cannot be trapped: the wrapper
# restores the default before exec.
python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
os.execvp(sys.argv[1], sys.argv[1:])' bash scripts/run.sh "${run_args[@]}" >"$logs/run.log" 2>&1 &
run_pid=$!
stopped=0
cleanup() {
  local rc=$?
  if [ "$stopped" -eq 0 ] && kill -0 "$run_pid" 2>/dev/null; then
    echo "e2e-main: stopping $label" >&2
    kill -TERM -- "-$run_pid" 2>/dev/null || true
    for _ in $(seq 600); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
  fi
  [ "$rc" -eq 0 ] || show_logs
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== e2e-main: $label, waiting for out/live/stored.json (up to ${timeout}s)" >&2
deadline=$((started + timeout))
until [ -s "$live/stored.json" ]; do
  kill -0 "$run_pid" 2>/dev/null || { wait "$run_pid" && rc=0 || rc=$?; fail "run.sh ended (exit $rc) before storing the calls"; }
  [ "$(date +%s)" -lt "$deadline" ] || fail "run.sh did not store the calls within ${timeout}s"
  sleep 1
done
stored_at=$(date +%s)
echo "e2e-main: stored after $((stored_at - started))s: $(cat "$live/stored.json")" >&2

# The store after the run: everything Available, the spools empty, no alarm (the reconciler
# found no missing call), each call stored once.
python3 - "$live/product.json" "$live/stored.json" <<'PY' || fail "store checks"
import json, sys, urllib.request
product, stored = (json.load(open(p)) for p in sys.argv[1:3])
def get(path):
    req = urllib.request.Request(product["store"] + path,
                                 headers={"Authorization": "Bearer " + product["adminToken"]})
    return json.load(urllib.request.urlopen(req))
items, page = [], 1
while True:
    j = get(f"/api/v1/interactions?pageSize=100&page={page}")
    items += j["items"]
    if len(items) >= j["total"] or not j["items"]:
        break
    page += 1
ok = True
def check(what, good):
    global ok
    print(f"  {'ok  ' if good else 'FAIL'} {what}", file=sys.stderr)
    ok = ok and good
check(f"{stored['interactions']} interactions, all Available ({stored['available']})",
      stored["interactions"] > 0 and stored["available"] == stored["interactions"] == len(items))
check(f"nothing left in the spools' sealed/ ({stored['inSpools']})", stored["inSpools"] == 0)
check(f"no active alarm ({stored['alarms']})", stored["alarms"] == 0)
keys = [(i["pairingKey"], i["targetDisplayName"]) for i in items]
check(f"no duplicate interaction ({len(set(keys))} distinct call/user of {len(keys)})", len(set(keys)) == len(keys))
# Each recorded call (one per bot) is a leg of one interaction only.
legs = [(i["id"], l["callId"], l["botRole"]) for i in items for l in get(f"/api/v1/interactions/{i['id']}")["legs"]]
seen = {}
for iid, c, role in legs:
    seen.setdefault((c, role), set()).add(iid)
twice = [k for k, v in seen.items() if len(v) > 1]
check(f"no leg in two interactions ({len(legs)} legs, {len(seen)} distinct call/role, in two: {twice[:3]})", not twice)
pairs = product.get("pairs", 1)
bots = product["bots"]
check(f"product.json lists {len(bots)} bots for {pairs} pair(s)",
      len(bots) == 2 * pairs and sorted(b["role"] for b in bots) == sorted(["primary", "paired"] * pairs))
if pairs > 1:
    # Each pair's simulator run made its own calls: the store holds them all, none twice, in
    # equal numbers (the same scenarios per pair).
    per_pair, info = {}, {}
    for b in bots:
        if b["role"] != "primary":
            continue
        calls = json.load(urllib.request.urlopen(b["url"] + "/api/calls"))["calls"]
        # What the bot recorded (a forked duplicate is to record by profile but answered
        # elsewhere: no recording; the reconciler judges those).
        per_pair[b["pair"]] = {c["callId"] for c in calls if c.get("recording") not in (None, "", "none")}
        info.update({c["callId"]: f'{c["answer"]}/{c.get("recording")}: {c["decision"].get("reason", "")}' for c in calls})
    ids = list(per_pair.values())
    overlap = set.intersection(*ids)
    check(f"call ids differ between the pairs (calls recorded per pair: {[len(s) for s in ids]}, shared: {len(overlap)})",
          all(ids) and not overlap)
    # A pair's recorded calls are the store's legs (a transfer's or a meeting's several
    # calls can make one interaction).
    stored_ids = {c for _, c, _ in legs}
    missing = [len(s - stored_ids) for s in ids]
    check(f"every call a pair recorded is stored (missing per pair: {missing})", not any(missing))
    for c in set.union(*ids) - stored_ids:
        print(f"       not stored: {c} ({info[c]})", file=sys.stderr)
sys.exit(0 if ok else 1)
PY

echo "== e2e-main: Playwright (e2e/main-job/) against $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ui"])' "$live/product.json")" >&2
(cd e2e && PRODUCT_JSON="$live/product.json" PW_OUTPUT="$logs/playwright" \
  npx playwright test --config main-job.config.js) || fail "the Playwright suite"
spec_done=$(date +%s)
# The reconciler had the spec's time on top to find a missing call: still no alarm.
alarms=$(python3 - "$live/product.json" <<'PY'
import json, sys, urllib.request
p = json.load(open(sys.argv[1]))
req = urllib.request.Request(p["store"] + "/api/v1/alarms", headers={"Authorization": "Bearer " + p["adminToken"]})
a = json.load(urllib.request.urlopen(req))
a = a if isinstance(a, list) else a.get("items", [])
print(len(a), *[x.get("name", "?") + ":" + str(x.get("source", x.get("subject", ""))) for x in a])
PY
)
[ "${alarms%% *}" = 0 ] || fail "active alarms after the spec: $alarms"
echo "  ok   still no active alarm $((spec_done - stored_at))s after storing" >&2

echo "== e2e-main: stopping run.sh with SIGINT (as Ctrl-C)" >&2
read -r -a procs < <(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(p["runPid"], p["daemonPid"], *[b["pid"] for b in p["bots"]])' "$live/product.json")
read -r -a spools < <(python3 -c 'import json,sys; print(*[b["spool"] for b in json.load(open(sys.argv[1]))["bots"]])' "$live/product.json")
az_port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("azuritePort") or "")' "$live/product.json")
# The throw-away PostgreSQL server of run.sh --postgres (not one RECORDER_TEST_PG_URL names).
pg_port=""
[ -n "${RECORDER_TEST_PG_URL:-}" ] || pg_port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("postgresPort") or "")' "$live/product.json")
stopped=1
kill -INT -- "-$run_pid"
rc=0
for _ in $(seq 1200); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$run_pid" 2>/dev/null; then
  stopped=0
  fail "run.sh still running 120 s after SIGINT"
fi
wait "$run_pid" || rc=$?
stop_done=$(date +%s)
bad=0
report() { if [ "$2" -eq 0 ]; then echo "  ok   $1" >&2; else echo "  FAIL $1" >&2; bad=1; fi; }
report "run.sh exited $rc" "$rc"
left=()
for p in "${procs[@]}"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
mapfile -t group < <(ps -o pid= -g "$run_pid" 2>/dev/null | tr -d ' ')
report "no process left (run.sh, daemon, ${#spools[@]} bots; left: ${left[*]:-none}; in its group: ${group[*]:-none})" \
  $((${#left[@]} + ${#group[@]}))
if [ -n "$az_port" ]; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$az_port") 2>/dev/null; then report "Azurite on $az_port stopped" 1; else report "Azurite on $az_port stopped" 0; fi
fi
if [ -n "$pg_port" ]; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null; then report "PostgreSQL on $pg_port stopped" 1; else report "PostgreSQL on $pg_port stopped" 0; fi
fi
for sp in "${spools[@]}"; do
  n_active=$(find "$sp/active" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  n_sealed=$(find "$sp/sealed" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  report "${sp#"$root"/}: $n_active in active/, $n_sealed in sealed/" $((n_active + n_sealed))
done
[ "$bad" -eq 0 ] || fail "the clean stop"
echo "e2e-main: PASSED ($label): stored in $((stored_at - started))s, spec $((spec_done - stored_at))s, stop $((stop_done - spec_done))s, total $((stop_done - started))s" >&2
