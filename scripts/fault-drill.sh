#!/usr/bin/env bash
# Fault drill (issue 9; docs/fault-drill.md). Starts the product (scripts/run.sh --no-sim),
# plays the simulator's calls at real time to the primary and paired bot-hosts, and meanwhile:
#   a) measures, per recorded call, the time from the bot's answer to the call's first
#      appearance in Active Calls (GET /api/v1/interactions/active, polled every 50 ms):
#      fails if the median exceeds 1 s;
#   b) kill -9s the primary bot-host while calls are established with media flowing, restarts
#      it on the same config; then kill -9s recorder-daemon while uploads are in flight
#      (sealed recordings in a spool, or legs Pending), restarts it on its config;
#   c) once the simulator has ended and everything has settled, accounts for every call the
#      simulator placed: recorded (Available), partially recorded and flagged (leg
#      metadata.partial), named by an alarm, or never delivered (its invitation found the bot
#      down, which the simulator reports); nothing duplicated (one interaction per call id,
#      one leg per recording id, one stored copy per recording and storage, upload journal
#      empty, spools drained). Prints a table call id -> outcome; exits 1 on any failed check.
# Everything lands under out/drill/ (logs, simulator report, figures in drill.json).
#   bash scripts/fault-drill.sh
set -euo pipefail
cd "$(dirname "$0")/.."

drill=out/drill
rm -rf "$drill"
mkdir -p "$drill"
rm -f out/live/product.json # a previous run's must not be mistaken for this one's

started=$(date +%s)
run_pid='' monitor_pid='' sim_pid='' primary_pid='' daemon_pid=''
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
# Stops one process we started: SIGTERM (or the given signal), then SIGKILL after 20 s.
stop_pid() { # pid [signal]
  local pid=$1 sig=${2:-TERM}
  alive "$pid" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 200); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    echo "fault-drill: pid $pid still up 20 s after SIG$sig: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$monitor_pid"
  stop_pid "$sim_pid"
  # Bots before the daemon, as run.sh stops them: they seal what they hold, the uploader takes it.
  stop_pid "$primary_pid"
  if alive "$run_pid"; then
    # run.sh waits in `sleep`: the group's SIGINT ends that sleep, and run.sh stops its own.
    kill -INT -- "-$run_pid" 2>/dev/null || true
    for _ in $(seq 300); do alive "$run_pid" || break; sleep 0.1; done
    if alive "$run_pid"; then kill -KILL -- "-$run_pid" 2>/dev/null || true; fi
    wait "$run_pid" 2>/dev/null || true
  fi
  stop_pid "$daemon_pid"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "fault-drill: interrupted" >&2; exit 130' INT TERM

# The drill's Python side: the monitor, the kill triggers and the accounting.
read -r -d '' HELPER <<'PY' || true
import json, os, re, signal, sqlite3, statistics, sys, threading, time, urllib.request
from datetime import datetime

def get(url, token=None, timeout=2.0):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)

def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

def product():
    return json.load(open("out/live/product.json"))

def bot(p, role):
    return next(b for b in p["bots"] if b["role"] == role)

def spool(role, sub):
    d = f"out/live/{role}/spool/{sub}"
    return sorted(e for e in os.listdir(d) if not e.startswith(".")) if os.path.isdir(d) else []

def count(p, status):
    q = f"{p['store']}/api/v1/interactions?mediaStatus={status}&pageSize=1"
    return get(q, p["adminToken"])["total"]

def monitor(out):
    """Polls Active Calls every 50 ms and both bots' call lists every 200 ms until SIGTERM."""
    p = product()
    seen, calls, st = {}, {}, {"activePolls": 0, "activeErrors": 0, "botErrors": 0}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    def active():
        url = f"{p['store']}/api/v1/interactions/active?pageSize=500"
        while not stop.is_set():
            t0 = time.time()
            try:
                items = get(url, p["adminToken"], 1.0)["items"]
                now = time.time()
                st["activePolls"] += 1
                for it in items:
                    seen.setdefault(it["callId"], now)
            except Exception:
                st["activeErrors"] += 1
            stop.wait(max(0.0, 0.05 - (time.time() - t0)))
    def bots():
        while not stop.is_set():
            for b in p["bots"]:
                try:
                    for c in get(b["url"] + "/api/calls", None, 1.0)["calls"]:
                        calls.setdefault(b["role"], {})[c["callId"]] = c
                except Exception:
                    st["botErrors"] += 1
            stop.wait(0.2)
    ts_ = [threading.Thread(target=f, daemon=True) for f in (active, bots)]
    for t in ts_:
        t.start()
    while not stop.is_set():
        stop.wait(1.0)
    for t in ts_:
        t.join(3)
    json.dump({"activeFirstSeen": seen, "botCalls": calls, "stats": st}, open(out, "w"), indent=1)

def primary_in_call():
    """Recording ids established on the primary for >= 2 s with audio on disk; exit 0 when >= 1."""
    p = product()
    calls = get(bot(p, "primary")["url"] + "/api/calls")["calls"]
    ready = []
    for c in calls:
        if c.get("answer") != "recording" or c.get("state") != "established" or c.get("endedAt"):
            continue
        rid = c.get("recordingId")
        d = f"out/live/primary/spool/active/{rid}"
        oggs = [f for f in os.listdir(d) if f.endswith(".ogg")] if os.path.isdir(d) else []
        if c.get("answeredAt") and time.time() - ts(c["answeredAt"]) >= 2.0 and any(os.path.getsize(f"{d}/{f}") > 0 for f in oggs):
            ready.append(c["callId"])
    print(" ".join(ready))
    sys.exit(0 if ready else 1)

def uploads_in_flight():
    """Exit 0 when a sealed recording waits in a spool or a leg is Pending."""
    sealed = spool("primary", "sealed") + spool("paired", "sealed")
    pending = 0
    try:
        pending = count(product(), "Pending")
    except Exception:
        pass
    if sealed or pending:
        print(f"{len(sealed)} sealed recording(s) in the spools, {pending} interaction(s) Pending")
        sys.exit(0)
    sys.exit(1)

def settled():
    """Exit 0 once spools, outboxes and the store are quiet."""
    p = product()
    left = {r: spool(r, "active") + spool(r, "sealed") for r in ("primary", "paired")}
    outbox = sum(len([f for f in os.listdir(f"out/live/{r}/outbox") if f.endswith(".json")])
                 for r in ("primary", "paired") if os.path.isdir(f"out/live/{r}/outbox"))
    busy = count(p, "Recording") + count(p, "Pending")
    print(f"spools: {sum(map(len, left.values()))}, outboxes: {outbox}, store Recording/Pending: {busy}")
    sys.exit(0 if not any(left.values()) and outbox == 0 and busy == 0 else 1)

SIM_ROW = re.compile(r"^\s*(\d+) (\S+)\s+(\d+) (primary|paired)\s+(\S+)\s+(record|skip)\s+(.*?)\s+(\d+ ms|-)\s+(\d+)\s+(\d+)\s+(ok|FAIL)\s*$")

def account(monitor_json, sim_log, events_json, out_json):
    p = product()
    tok = p["adminToken"]
    mon = json.load(open(monitor_json))
    ev = json.load(open(events_json))
    fails = []

    # The simulator's report: one row per leg and bot, error lines below a row.
    legs, last = [], None
    for line in open(sim_log, errors="replace"):
        m = SIM_ROW.match(line.rstrip("\n"))
        if m:
            last = {"call": int(m[1]), "scenario": m[2], "leg": int(m[3]), "role": m[4],
                    "callId": m[5], "expect": m[6] == "record", "observed": m[7].strip(),
                    "answer": m[8], "result": m[11], "errors": []}
            legs.append(last)
        elif last and line.strip().startswith("error:"):
            last["errors"].append(line.strip()[6:].strip())
    if not legs:
        fails.append("no simulator report rows in " + sim_log)

    # Every interaction with its legs.
    details, page = [], 1
    while True:
        r = get(f"{p['store']}/api/v1/interactions?pageSize=500&page={page}", tok, 10)
        for it in r["items"]:
            details.append(get(f"{p['store']}/api/v1/interactions/{it['id']}", tok, 10))
        if page * 500 >= r["total"]:
            break
        page += 1
    alarms = get(f"{p['store']}/api/v1/alarms", tok)["items"]

    # Nothing duplicated.
    by_call, by_rec = {}, {}
    for d in details:
        for l in d["legs"]:
            by_call.setdefault(l["callId"], set()).add(d["id"])
            by_rec.setdefault(l["recordingId"], []).append(d["id"])
    dup_calls = {c: sorted(i) for c, i in by_call.items() if len(i) > 1}
    dup_recs = {r: i for r, i in by_rec.items() if len(i) > 1}
    if dup_calls:
        fails.append(f"call ids in more than one interaction: {dup_calls}")
    if dup_recs:
        fails.append(f"recording ids with more than one leg: {dup_recs}")
    store_cfg = open(p["storeConfig"]).read()
    data_dir = re.search(r'^data_dir\s*=\s*"([^"]+)"', store_cfg, re.M)[1]
    stored = {}
    for root_name in ("storage", "storage-local-geo"):
        root = os.path.join(data_dir, root_name)
        for dirpath, dirs, files in os.walk(root):
            if "/merged" in dirpath[len(root):]:
                continue
            for f in files:
                if f.startswith(".") and f.endswith(".partial"):
                    fails.append(f"half-written object left in storage: {dirpath}/{f}")
            if "manifest.json" in files:
                stored.setdefault(root_name, {}).setdefault(os.path.basename(dirpath), []).append(os.path.relpath(dirpath, root))
    for root_name, recs in stored.items():
        for rid, paths in recs.items():
            if len(paths) > 1:
                fails.append(f"recording {rid} stored {len(paths)} times in {root_name}: {paths}")
    available = {l["recordingId"]: l for d in details for l in d["legs"] if l["mediaStatus"] == "Available"}
    missing_objects = sorted(r for r, l in available.items()
                             if not os.path.isfile(os.path.join(data_dir, "storage", l.get("mediaPath") or "-", "manifest.json")))
    orphans = sorted(set(stored.get("storage", {})) - set(available))
    if missing_objects:
        fails.append(f"Available legs without their stored copy: {missing_objects}")
    if orphans:
        fails.append(f"stored recordings no leg points at: {orphans}")
    journal = os.path.join(data_dir, "upload-journal.db")
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    unfinished = db.execute("SELECT recording_id, step FROM uploads").fetchall()
    db.close()
    if unfinished:
        fails.append(f"upload journal holds unfinished uploads: {unfinished}")
    for r in ("primary", "paired"):
        for sub in ("active", "sealed", "rejected"):
            if spool(r, sub):
                fails.append(f"{r} spool {sub}/ not empty: {spool(r, sub)}")

    # Every call the simulator placed, leg by leg and bot by bot.
    leg_of = {(l["callId"], l["botRole"]): l for d in details for l in d["legs"]}
    down = ev.get("primaryDown", [0, 0])
    table, unaccounted, outcomes = [], 0, {}
    for s in legs:
        key = (s["callId"], s["role"])
        l = leg_of.get(key)
        named = [a["name"] for a in alarms
                 if s["callId"] in a["source"] + a["text"] or (l and l["recordingId"] in a["source"] + a["text"])]
        if not s["expect"]:
            outcome = "not to record (profile)" + (" but stored!" if l else "")
            ok = l is None
        elif l and l["mediaStatus"] == "Available" and l["metadata"].get("partial"):
            outcome, ok = "partial, flagged", True
        elif l and l["mediaStatus"] == "Available":
            outcome, ok = "recorded", True
        elif named:
            outcome, ok = "alarm " + ",".join(sorted(set(named))), True
        elif s["role"] == "primary" and l is None and s["result"] == "FAIL" and any(
                "connect" in e.lower() or "refused" in e.lower() or "error sending request" in e.lower()
                for e in s["errors"]):
            # The invitation found the primary dead: no bot knew of this leg, the platform saw
            # the failure (as the simulator reports it) and applies the policy's rules.
            outcome, ok = "not delivered (primary down)", True
        else:
            outcome = "UNACCOUNTED" + (f" (store: {l['mediaStatus']})" if l else " (not in the store)")
            ok = False
        if l and s["expect"] and l["mediaStatus"] == "Available" and s["role"] == "primary" \
                and s["callId"] in ev.get("killedCalls", []) and not l["metadata"].get("partial"):
            outcome, ok = "killed mid-call but stored as complete", False
        if not ok:
            unaccounted += 1
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        table.append((s["call"], s["scenario"], s["leg"], s["role"], s["callId"], s["result"], outcome))
    unexplained = [(s["call"], s["role"], s["callId"]) for s, row in zip(legs, table)
                   if s["result"] == "FAIL" and not (s["role"] == "primary" and (
                       s["callId"] in ev.get("killedCalls", []) or row[6] == "not delivered (primary down)"
                       or row[6] == "partial, flagged"))]
    if unexplained:
        fails.append(f"simulator failures the kill does not explain: {unexplained}")
    print(f"{'call':>4} {'scenario':<22} {'leg':>3} {'bot':<7} {'call id':<36} {'sim':<4}  outcome")
    for row in table:
        print(f"{row[0]:>4} {row[1]:<22} {row[2]:>3} {row[3]:<7} {row[4]:<36} {row[5]:<4}  {row[6]}")
    if unaccounted:
        fails.append(f"{unaccounted} leg(s) unaccounted for")
    killed = ev.get("killedCalls", [])
    if not any(r[4] in killed and r[6] == "partial, flagged" for r in table):
        fails.append(f"no call killed mid-call on the primary ended partial and flagged (killed: {killed})")

    # Answer -> Active Calls. The bot answers in the invitation's own webhook exchange
    # (invitedAt); the call is established (answeredAt) when the platform says so, later.
    def measure(field):
        t = {}
        for role, calls in mon["botCalls"].items():
            for cid, c in calls.items():
                if c.get("answer") == "recording" and c.get(field):
                    t[cid] = min(t.get(cid, 1e18), ts(c[field]))
        return {cid: mon["activeFirstSeen"][cid] - v for cid, v in t.items() if cid in mon["activeFirstSeen"]}, t
    lat, answered = measure("invitedAt")
    lat_est, _ = measure("answeredAt")
    never = sorted(set(answered) - set(lat))
    dn = ev.get("daemonDown", [0, 0])
    during = sorted(c for c, t in answered.items() if dn[0] <= t <= dn[1] + 1) if dn[1] else []
    vals, vals_est = sorted(lat.values()), sorted(lat_est.values())
    p50 = statistics.median(vals) if vals else None
    ms = lambda x: round(x * 1000)
    figures = {
        "latency": {"calls": len(vals), "fromAnswer": {"p50Ms": ms(p50) if vals else None,
                    "maxMs": ms(vals[-1]) if vals else None, "maxCall": max(lat, key=lat.get) if vals else None},
                    "fromEstablished": {"p50Ms": ms(statistics.median(vals_est)) if vals_est else None,
                    "maxMs": ms(vals_est[-1]) if vals_est else None},
                    "answeredWhileDaemonDown": during, "neverSeenActive": never,
                    "activePolls": mon["stats"]["activePolls"]},
        "legs": len(legs), "calls": len({s["callId"] for s in legs}),
        "outcomes": outcomes, "interactions": len(details),
        "legsInStore": sum(len(d["legs"]) for d in details),
        "activeAlarms": [(a["name"], a["source"]) for a in alarms],
        "storedCopies": {k: len(v) for k, v in stored.items()},
        "events": ev, "failures": fails,
    }
    if vals:
        f = figures["latency"]
        print(f"answer -> Active Calls: {len(vals)} calls, p50 {f['fromAnswer']['p50Ms']} ms, "
              f"max {f['fromAnswer']['maxMs']} ms ({f['fromAnswer']['maxCall']}); from the establishment: "
              f"p50 {f['fromEstablished']['p50Ms']} ms, max {f['fromEstablished']['maxMs']} ms; "
              f"answered while the daemon was down: {len(during)}; Active Calls polled {f['activePolls']} times")
        if p50 > 1.0:
            fails.append(f"median answer -> Active Calls latency {p50:.3f} s exceeds 1 s")
    else:
        fails.append("no answered call was measured")
    if never:
        print(f"answered but never seen in Active Calls (ended before a poll saw it, or never posted): {never}")
    print(f"interactions: {len(details)}, legs: {figures['legsInStore']}, stored copies: {figures['storedCopies']}, "
          f"active alarms: {len(alarms)}")
    print("outcomes: " + ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))
    json.dump(figures, open(out_json, "w"), indent=1)
    for f in fails:
        print("FAIL: " + f)
    sys.exit(1 if fails else 0)

cmd, args = sys.argv[1], sys.argv[2:]
{"monitor": monitor, "primary-in-call": primary_in_call, "uploads-in-flight": uploads_in_flight,
 "settled": settled, "account": account}[cmd](*args)
PY
helper() { python3 -c "$HELPER" "$@"; }
field() { python3 -c 'import json,sys; p=json.load(open("out/live/product.json")); print(eval(sys.argv[1], {"p": p}))' "$1"; }
now() { date +%s.%N; }
events=$drill/events.json
event() { # key value(JSON): recorded for the accounting
  python3 - "$events" "$1" "$2" <<'EV'
import json, os, sys
path, k, v = sys.argv[1:]
d = json.load(open(path)) if os.path.exists(path) else {}
d[k] = json.loads(v)
json.dump(d, open(path, "w"), indent=1)
EV
}
echo '{}' >"$events"
say() { echo "[$(($(date +%s) - started)) s] $*" >&2; }

say "== fault drill: starting the product (scripts/run.sh --no-sim; log $drill/run.log)"
setsid bash scripts/run.sh --no-sim >"$drill/run.log" 2>&1 &
run_pid=$!
for _ in $(seq 2400); do
  [ -s out/live/product.json ] && break
  alive "$run_pid" || { tail -n 30 "$drill/run.log" >&2; echo "fault-drill: run.sh exited before the product was up" >&2; exit 1; }
  sleep 0.5
done
[ -s out/live/product.json ] || { echo "fault-drill: no out/live/product.json after 20 min" >&2; exit 1; }
sleep 0.5 # written by one json.dump; let it finish
store=$(field 'p["store"]')
primary=$(field 'next(b for b in p["bots"] if b["role"]=="primary")["url"]')
paired=$(field 'next(b for b in p["bots"] if b["role"]=="paired")["url"]')
primary_conf=$(field 'next(b for b in p["bots"] if b["role"]=="primary")["config"]')
orig_primary_pid=$(field 'next(b for b in p["bots"] if b["role"]=="primary")["pid"]')
orig_daemon_pid=$(field 'p["daemonPid"]')
store_conf=$(field 'p["storeConfig"]')
# The binaries the product really runs (read from the processes, so a rebuild meanwhile cannot swap them).
bot_bin=$(readlink "/proc/$orig_primary_pid/exe")
daemon_bin=$(readlink "/proc/$orig_daemon_pid/exe")
echo "store $store, primary $primary, paired $paired" >&2

# The reconciler's defaults (grace 120 s) outlast the drill: the restarted daemon reads these.
sed -i 's/^interval_secs = .*/interval_secs = 2/; s/^grace_secs = .*/grace_secs = 20/' "$store_conf"
grep -q '^grace_secs = 20$' "$store_conf" || { echo "fault-drill: cannot set the reconciler's grace in $store_conf" >&2; exit 1; }

python3 -c "$HELPER" monitor "$drill/monitor.json" & # not through helper(): $! must be python's
monitor_pid=$!

say "== simulator: every scenario at real time, primary + paired (report in $drill/simulate.log)"
"$bot_bin" simulate --to "$primary" --paired-to "$paired" --realtime --seal-timeout 45 \
  >"$drill/simulate.log" 2>&1 &
sim_pid=$!
sim_started=$(date +%s)

say "== b) kill -9 of the primary bot-host mid-call"
killed=''
for _ in $(seq 600); do
  if killed=$(helper primary-in-call 2>/dev/null); then break; fi
  alive "$sim_pid" || break
  sleep 0.1
done
[ -n "$killed" ] || { echo "fault-drill: no call established with media on the primary to kill it under" >&2; exit 1; }
in_active=$(ls "out/live/primary/spool/active" | wc -l)
kill -KILL "$orig_primary_pid"
down_at=$(now)
echo "killed primary (pid $orig_primary_pid) with $in_active recording(s) in active/, media flowing on: $killed" >&2
event killedCalls "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1].split()))' "$killed")"
sleep 1
"$bot_bin" serve --config "$primary_conf" >"$drill/primary-restarted.log" 2>&1 &
primary_pid=$!
for _ in $(seq 100); do curl -sf "$primary/api/info" >/dev/null && break; sleep 0.1; done
curl -sf "$primary/api/info" >/dev/null || { cat "$drill/primary-restarted.log" >&2; echo "fault-drill: the primary did not restart" >&2; exit 1; }
up_at=$(now)
event primaryDown "[$down_at, $up_at]"
echo "primary restarted (pid $primary_pid) after $(python3 -c "print(round($up_at-$down_at,1))") s; recovered: $(grep -c 'recovered after a crash' "$drill/primary-restarted.log" || true)" >&2

say "== b) kill -9 of recorder-daemon mid-upload"
flight=''
for _ in $(seq 3000); do
  if flight=$(helper uploads-in-flight 2>/dev/null); then break; fi
  sleep 0.02
done
[ -n "$flight" ] || { echo "fault-drill: no upload in flight to kill the daemon under" >&2; exit 1; }
kill -KILL "$orig_daemon_pid"
ddown_at=$(now)
echo "killed recorder-daemon (pid $orig_daemon_pid) with $flight" >&2
event daemonKilledWith "\"$flight\""
sleep 2
"$daemon_bin" serve --config "$store_conf" >"$drill/store-restarted.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 200); do curl -sf "$store/api/v1/openapi.json" >/dev/null && break; sleep 0.1; done
curl -sf "$store/api/v1/openapi.json" >/dev/null || { cat "$drill/store-restarted.log" >&2; echo "fault-drill: recorder-daemon did not restart" >&2; exit 1; }
dup_at=$(now)
event daemonDown "[$ddown_at, $dup_at]"
echo "recorder-daemon restarted (pid $daemon_pid) after $(python3 -c "print(round($dup_at-$ddown_at,1))") s (reconciler: interval 2 s, grace 20 s)" >&2

say "== c) waiting for the simulator to end"
sim_rc=0
for _ in $(seq 3000); do alive "$sim_pid" || break; sleep 0.1; done
if alive "$sim_pid"; then echo "fault-drill: the simulator still runs after 5 min" >&2; exit 1; fi
wait "$sim_pid" || sim_rc=$?
sim_pid=''
echo "simulator exited $sim_rc after $(($(date +%s) - sim_started)) s (failures expected for the killed primary's calls): $(tail -n 1 "$drill/simulate.log")" >&2

say "== c) waiting for everything to settle (spools, outboxes, store)"
settled=0
for _ in $(seq 180); do
  if helper settled >"$drill/settle.txt" 2>&1; then settled=1; break; fi
  sleep 0.5
done
cat "$drill/settle.txt" >&2
[ "$settled" -eq 1 ] || echo "not settled after 90 s: what is left is accounted below as it stands" >&2
sleep 5 # two reconciler rounds on the settled state
stop_pid "$monitor_pid"
monitor_pid=''

say "== c) accounting for every call the simulator placed"
verdict=0
helper account "$drill/monitor.json" "$drill/simulate.log" "$events" "$drill/drill.json" || verdict=$?
mapfile -t recs < <(find "$(dirname "$store_conf")/storage" "$(dirname "$store_conf")/storage-local-geo" \
  -name manifest.json -not -path '*/merged/*' -printf '%h\n' 2>/dev/null)
echo "recorder-daemon verify: ${#recs[@]} stored recordings (both storages)" >&2
if ! "$daemon_bin" verify "${recs[@]}" >"$drill/verify.txt" 2>&1; then
  tail -n 5 "$drill/verify.txt" >&2
  echo "FAIL: a stored recording does not verify" >&2
  verdict=1
fi
echo "wall time: $(($(date +%s) - started)) s" >&2
if [ "$verdict" -eq 0 ]; then
  echo "FAULT DRILL PASSED: every call accounted for, nothing duplicated (details: $drill/drill.json)"
else
  echo "FAULT DRILL FAILED (details: $drill/drill.json, logs in $drill/)"
fi
exit "$verdict"
