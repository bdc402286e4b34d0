#!/usr/bin/env bash
# End-to-end benchmark: `tributary serve` ingesting a stream of ~250-byte
# events to Parquet, side by side with a plain Python consumer (boto3
# GetRecords loop + pyarrow JSON -> Parquet, benches/python_consumer.py) over
# the same kinesis-local stream. Compares each consumer's own CPU seconds per
# 1M records and peak RSS (the emulator's CPU dominates wall time).
#
#   ./scripts/bench-ingest.sh                                          # 100k records over 64 shards
#   TRIBUTARY_BENCH_RECORDS=200000 TRIBUTARY_BENCH_SHARDS=16 ./scripts/bench-ingest.sh
#   TRIBUTARY_BENCH_STREAM_ARN=arn:... ./scripts/bench-ingest.sh         # reuse a filled stream (emulators already up)
#   TRIBUTARY_BENCH_RUNS=5 ./scripts/bench-ingest.sh                                  # mean of 5 runs of ours (CPU is counted in 10 ms ticks)
#   TRIBUTARY_BENCH_S3=1 ./scripts/bench-ingest.sh                                     # also one run on an Iceberg table on moto S3 recorded in moto's Glue, checked by pyiceberg
#   TRIBUTARY_BENCH_CLUSTER=1 ./scripts/bench-ingest.sh                                # also cluster mode with 1, 2 and 3 processes (moto S3, DynamoDB catalog and leases)
#   TRIBUTARY_BENCH_CLUSTER=1 TRIBUTARY_BENCH_CLUSTER_RUNS=3 ./scripts/bench-ingest.sh         # each cluster configuration three times, summed (CPU ticks are 10 ms)
#   TRIBUTARY_BENCH_CLUSTER=1 TRIBUTARY_BENCH_CLUSTER_FLAGS="--flush-rows 10000" ./scripts/bench-ingest.sh
#       # serve flags for every process of the cluster runs, plain included (here: commits triggered by rows, as
#       # at real read rates, rather than by the 10 s timer at kinesis-local's ~5k records/s)
#   TRIBUTARY_BENCH_RECORDS=300000 TRIBUTARY_BENCH_AGGREGATE=50 ./scripts/bench-ingest.sh     # KPL-aggregated, 50 events per Kinesis record
#       # (kinesis-local fills and serves aggregates ~10x faster in events/s, so a run's fixed costs weigh less;
#       # the Python peer de-aggregates with AWS's aws-kinesis-agg; with a reused stream, say how it was filled)
#
# Ours runs twice per run, interleaved so machine drift hits both alike: the
# dataset as plain Parquet files, and as an Iceberg table in a local warehouse
# (its commits, manifests and maintenance included).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
records=${TRIBUTARY_BENCH_RECORDS:-100000}
shards=${TRIBUTARY_BENCH_SHARDS:-64}
aggregate=${TRIBUTARY_BENCH_AGGREGATE:-1}
work=$(mktemp -d)
server_pid=""
started_emulators=""
cluster_pids=()
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -TERM "$server_pid"; wait "$server_pid" || true; fi
  for pid in "${cluster_pids[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" || true; done
  if [ -n "$started_emulators" ]; then scripts/emulators.sh down; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${TRIBUTARY_BENCH_STREAM_ARN:-}" ]; then
  scripts/emulators.sh install
  eval "$(scripts/emulators.sh up)"
  started_emulators=1
fi
python=${TRIBUTARY_TEST_MOTO_PYTHON:?moto venv python}
"$python" -c 'import pyarrow' 2>/dev/null || "$python" -m pip install --quiet 'pyarrow==21.0.0'
if [ -n "${TRIBUTARY_BENCH_S3:-}${TRIBUTARY_BENCH_CLUSTER:-}" ]; then
  "$python" -c 'import pyiceberg' 2>/dev/null || "$python" -m pip install --quiet 'pyiceberg==0.12.0'
fi
if [ "$aggregate" -gt 1 ]; then
  "$python" -c 'import aws_kinesis_agg' 2>/dev/null || "$python" -m pip install --quiet 'aws-kinesis-agg==1.2.3'
fi
cargo build --release --quiet --bin tributary --example producer
stream_arn=${TRIBUTARY_BENCH_STREAM_ARN:-}
if [ -z "$stream_arn" ]; then
  echo "filling a stream with $records events over $shards shards, $aggregate per Kinesis record (kinesis-local is slow to fill)" >&2
  stream_arn=$(target/release/examples/producer --stream "bench-ingest-$$" --create --shards "$shards" --records "$records" --kind events --aggregate "$aggregate")
fi
echo "stream: $stream_arn" >&2

# Ours: the release server, one source, defaults for everything; `runs` times
# over the same stream (a fresh data directory each), as CPU is counted in
# 10 ms ticks and one run of 100k records is about 20 of them.
for format in parquet iceberg; do
  sed -e "s|\${STREAM_ARN}|$stream_arn|" -e "s|^    dataset:\$|    dataset:\n      format: $format|" examples/events.yaml >"$work/events-$format.yaml"
  grep -q "format: $format" "$work/events-$format.yaml" || { echo "bench-ingest.sh: could not make the $format definition" >&2; exit 1; }
done
# run_ours RUN FORMAT [SERVE-FLAGS...]
run_ours() {
  local port
  port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export TRIBUTARY_SERVER="http://127.0.0.1:$port"
  target/release/tributary serve --data-dir "$work/data-$1-$2" --listen "127.0.0.1:$port" "${@:3}" 2>"$work/serve-$1.log" &
  server_pid=$!
  for _ in $(seq 1 100); do curl -fsS "$TRIBUTARY_SERVER/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  local start end rows
  start=$(date +%s.%N)
  target/release/tributary commit "$work/events-$2.yaml" -m bench >&2
  # Watch /metrics (counters only) rather than the status API, whose queries would add to the CPU measured.
  local give_up=$((SECONDS + 900))
  while :; do
    rows=$(curl -fsS "$TRIBUTARY_SERVER/metrics" | awk '/^tributary_(rows_written|records_rejected)_total/ {n += $2} END {print n + 0}')
    [ "$rows" -ge "$records" ] && break
    [ "$SECONDS" -lt "$give_up" ] || { echo "bench-ingest.sh: $rows of $records rows after 15 min; giving up" >&2; exit 1; }
    # About as often as a Prometheus scrape: each one renders every shard's series.
    sleep 2
  done
  end=$(date +%s.%N)
  local ticks hwm
  ticks=$(awk '{print $14 + $15}' "/proc/$server_pid/stat")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
  if [ "$1" = s3 ]; then
    s3_ticks=$ticks
  elif [ "$2" = parquet ]; then
    run_ticks+=("$ticks")
    run_walls+=("$("$python" -c "print($end - $start)")")
    calls=$(curl -fsS "$TRIBUTARY_SERVER/metrics" | awk '/^tributary_shard_calls_total/ {n += $2} END {print n + 0}')
    hwm_kib=$hwm
  else
    iceberg_ticks+=("$ticks")
    iceberg_hwm_kib=$hwm
  fi
  kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
}
runs=${TRIBUTARY_BENCH_RUNS:-1}
run_ticks=(); run_walls=(); iceberg_ticks=(); s3_ticks=""; s3_check=""
for run in $(seq 1 "$runs"); do run_ours "$run" parquet; run_ours "$run" iceberg; done
ticks=$(IFS=,; echo "${run_ticks[*]}")
iceberg=$(IFS=,; echo "${iceberg_ticks[*]}")
if [ -n "${TRIBUTARY_BENCH_S3:-}" ]; then
  # The same run on moto S3 with moto's Glue as the catalog: every record must be in the table once, as pyiceberg
  # reads it through Glue.
  bucket="bench-ingest-$$"
  "$python" -c "import boto3, os; boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL_S3'], region_name='us-east-1').create_bucket(Bucket='$bucket')"
  run_ours s3 iceberg --warehouse "s3://$bucket/tables" --catalog glue --glue-database "bench_$$"
  s3_check=$("$python" - "bench_$$" "$records" <<'PY'
import os, sys
from pyiceberg.catalog.glue import GlueCatalog
keys = {"access-key-id": os.environ["AWS_ACCESS_KEY_ID"], "secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"], "region": "us-east-1"}
properties = {"glue.endpoint": os.environ["AWS_ENDPOINT_URL_GLUE"], "s3.endpoint": os.environ["AWS_ENDPOINT_URL_S3"],
              "s3.force-virtual-addressing": False, **{f"{service}.{k}": v for service in ("glue", "s3") for k, v in keys.items()}}
table = GlueCatalog("glue", **properties).load_table((sys.argv[1], "events"))
ids = table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist()
records = int(sys.argv[2])
print(f"{len(ids)} rows, {len(set(ids))} distinct ids of {records}: {'every record once' if len(ids) == len(set(ids)) == records else 'MISMATCH'}")
PY
)
fi
# Cluster mode: N processes (1, 2, 3) on one stream, moto S3 and DynamoDB (catalog, leases,
# definitions); CPU summed over the processes, lease-table calls counted by each from /metrics.
# "plain" is one process without --cluster on the same S3 warehouse and catalog kind. kinesis-local
# serves ~5k records/s, so a run is mostly time: the fixed costs of a process (start-up; staying up)
# are reported apart from the CPU the records take.
cluster_report=""
if [ -n "${TRIBUTARY_BENCH_CLUSTER:-}" ]; then
  # run_cluster LABEL PROCESSES CLUSTER-FLAG...
  run_cluster() {
    local label=$1 count=$2 bucket="bench-cluster-$$-$1-$cluster_run"
    "$python" -c "import boto3, os; boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL_S3'], region_name='us-east-1').create_bucket(Bucket='$bucket')"
    local urls=() i port
    cluster_pids=()
    for i in $(seq 1 "$count"); do
      port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      target/release/tributary serve --data-dir "$work/cluster-$label-$cluster_run-$i" --listen "127.0.0.1:$port" \
        --warehouse "s3://$bucket/tables" --catalog dynamodb --dynamodb-catalog-table "bench_$$_${label}_$cluster_run" --no-live-validation \
        "${extra_flags[@]}" "${@:3}" 2>"$work/cluster-$label-$cluster_run-$i.log" &
      cluster_pids+=("$!")
      urls+=("http://127.0.0.1:$port")
      for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    done
    local start end rows ticks_now
    # ticks_now: CPU ticks of every process of the run so far.
    ticks_now() { local sum=0 pid; for pid in "${cluster_pids[@]}"; do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$sum"; }
    local started_ticks; started_ticks=$(ticks_now)
    start=$(date +%s.%N)
    TRIBUTARY_SERVER=${urls[0]} target/release/tributary commit "$work/events-iceberg.yaml" -m bench >&2
    local give_up=$((SECONDS + 900))
    # The steady window: from the first poll past 20% of the records at which every process has landed
    # rows (a batch of its own committed) to the first past 90%, with the CPU and rows of both polls,
    # so each process's start (its worker, its shard claim, its first batch's buffers) and the last
    # shards' tail stay out of it.
    local steady_from="" steady_to="" polled_ticks landed idle_process
    # With perf, the steady window's and the idle time's CPU also as perf's task-clock (to the
    # microsecond, all threads): ticks are 10 ms, so a run's few hundred ms shift by a tenth.
    local precise_pid="" pid_list
    pid_list=$(IFS=,; echo "${cluster_pids[*]}")
    start_precise() { [ -n "$have_perf" ] || return 0; perf stat -e task-clock,page-faults,context-switches -x, -p "$pid_list" -o "$1" 2>/dev/null & precise_pid=$!; }
    stop_precise() { [ -n "$precise_pid" ] || return 0; kill -INT "$precise_pid" 2>/dev/null || true; wait "$precise_pid" || true; precise_pid=""; }
    # precise EVENT FILE: perf's count of EVENT in FILE, or - without perf.
    precise() { if [ -s "$2" ]; then awk -F, -v event="$1" '$3 == event {print $1}' "$2"; else echo "-"; fi; }
    while :; do
      rows=0 idle_process=""
      polled_ticks=$(ticks_now)
      for url in "${urls[@]}"; do
        landed=$(curl -fsS "$url/metrics" | awk '/^tributary_(rows_written|records_rejected)_total/ {n += $2} END {print n + 0}')
        [ "$landed" -gt 0 ] || idle_process=1
        rows=$((rows + landed))
      done
      if [ -z "$steady_from" ] && [ -z "$idle_process" ] && [ "$rows" -ge $((records / 5)) ]; then
        steady_from="$polled_ticks,$rows,$(date +%s.%N)"
        start_precise "$work/steady-$label-$cluster_run.perf"
      fi
      if [ -n "$steady_from" ] && [ -z "$steady_to" ] && [ "$rows" -ge $((records * 9 / 10)) ]; then
        steady_to="$polled_ticks,$rows,$(date +%s.%N)"
        stop_precise
      fi
      [ "$rows" -ge "$records" ] && break
      [ "$SECONDS" -lt "$give_up" ] || { echo "bench-ingest.sh: $label: $rows of $records rows after 15 min; giving up" >&2; exit 1; }
      sleep 1
    done
    end=$(date +%s.%N)
    [ -n "$steady_to" ] || { echo "bench-ingest.sh: $label: no steady window (a process landed nothing before 90% of the records)" >&2; exit 1; }
    local ticks=0 lease_calls=0 pid idle_ticks commits=0 retries=0 get_records=0 metrics
    for url in "${urls[@]}"; do
      metrics=$(curl -fsS "$url/metrics")
      lease_calls=$((lease_calls + $(awk '/^tributary_lease_table_calls_total/ {n += $2} END {print n + 0}' <<<"$metrics")))
      commits=$((commits + $(awk '/^tributary_batches_committed_total/ {n += $2} END {print n + 0}' <<<"$metrics")))
      retries=$((retries + $(awk '/^tributary_table_commit_retries_total/ {n += $2} END {print n + 0}' <<<"$metrics")))
      get_records=$((get_records + $(awk '/^tributary_shard_calls_total/ {n += $2} END {print n + 0}' <<<"$metrics")))
    done
    ticks=$(ticks_now)
    # What the processes cost doing nothing but staying up (polling the shards, and in cluster mode the
    # leases, definitions and heartbeats), over a fixed window once every record landed.
    start_precise "$work/idle-$label-$cluster_run.perf"
    sleep "$idle_seconds"
    stop_precise
    idle_ticks=$(( $(ticks_now) - ticks ))
    for pid in "${cluster_pids[@]}"; do kill -TERM "$pid"; wait "$pid" || true; done
    cluster_pids=()
    cluster_report+="$label $count $started_ticks $ticks $idle_ticks $lease_calls $("$python" -c "print($end - $start)") $steady_from $steady_to $commits $retries $get_records $(precise task-clock "$work/steady-$label-$cluster_run.perf") $(precise task-clock "$work/idle-$label-$cluster_run.perf") $(precise page-faults "$work/steady-$label-$cluster_run.perf") $(precise context-switches "$work/steady-$label-$cluster_run.perf");"
  }
  idle_seconds=20
  have_perf=$(perf stat -e task-clock -x, -o /dev/null true >/dev/null 2>&1 && echo 1 || true)
  read -r -a extra_flags <<<"${TRIBUTARY_BENCH_CLUSTER_FLAGS:-}"
  # CPU is counted in 10 ms ticks and a run is about 20 of them: TRIBUTARY_BENCH_CLUSTER_RUNS
  # repeats every configuration (interleaved, so drift hits all alike) and the report sums them.
  for cluster_run in $(seq 1 "${TRIBUTARY_BENCH_CLUSTER_RUNS:-1}"); do
    run_cluster plain 1
    for count in 1 2 3; do run_cluster "n$count" "$count" --cluster "bench-$$-$count-$cluster_run"; done
  done
fi
walls=$(IFS=,; echo "${run_walls[*]}")
hz=$(getconf CLK_TCK)

peer=$(TRIBUTARY_BENCH_AGGREGATE=$aggregate "$python" benches/python_consumer.py "$stream_arn" "$records" "$work/python")

"$python" - "$records" "$shards" "$ticks" "$hz" "$hwm_kib" "$walls" "$peer" "$calls" "$iceberg" "$iceberg_hwm_kib" "${s3_ticks:-}" "${s3_check:-}" "$cluster_report" "$aggregate" <<'PY'
import json, os, sys
records, shards, ticks, hz, hwm_kib, walls, peer, calls, iceberg, iceberg_hwm_kib, s3_ticks, s3_check, cluster, aggregate = sys.argv[1:]
records, aggregate = int(records), int(aggregate)
run_cpu = [int(t) / int(hz) for t in ticks.split(",")]
ours_cpu = sum(run_cpu) / len(run_cpu)
wall = sum(float(w) for w in walls.split(",")) / len(run_cpu)
peer = json.loads(peer)
per_m = lambda cpu: cpu * 1e6 / records
packing = f", KPL-aggregated {aggregate} per Kinesis record" if aggregate > 1 else ""
print(f"end-to-end ingest: {records} events (~250 B{packing}) over {shards} shards, kinesis-local, to Parquet")
if len(run_cpu) > 1:
    print(f"  tributary serve, {len(run_cpu)} runs, CPU s each: {', '.join(f'{c:.2f}' for c in run_cpu)} (mean below)")
print(f"  tributary serve: {wall:7.2f} s wall, {ours_cpu:6.2f} CPU s, {per_m(ours_cpu):6.2f} CPU s per 1M, peak RSS {int(hwm_kib) / 1024:6.1f} MiB, {calls} GetRecords calls")
print(f"  python consumer: {peer['wall_seconds']:7.2f} s wall, {peer['cpu_seconds']:6.2f} CPU s, {per_m(peer['cpu_seconds']):6.2f} CPU s per 1M, peak RSS {peer['peak_rss_mib']:6.1f} MiB")
iceberg_cpu = [int(t) / int(hz) for t in iceberg.split(",")]
iceberg_mean = sum(iceberg_cpu) / len(iceberg_cpu)
print(f"  tributary serve, Iceberg table, CPU s each: {', '.join(f'{c:.2f}' for c in iceberg_cpu)}: {per_m(iceberg_mean):6.2f} CPU s per 1M, peak RSS {int(iceberg_hwm_kib) / 1024:6.1f} MiB")
print(f"  CPU per record: Iceberg table / Parquet files = {iceberg_mean / ours_cpu:.3f}")
if s3_ticks:
    print(f"  tributary serve, Iceberg table on moto S3 (Glue catalog): {int(s3_ticks) / int(hz):.2f} CPU s; pyiceberg: {s3_check}")
print(f"  CPU per record: python / tributary = {peer['cpu_seconds'] / ours_cpu:.1f}x")
if cluster:
    # The runs of each configuration summed (its order kept), wall and calls included.
    summed, steady, calls, precise, idle_seconds_per_run = {}, {}, {}, {}, 20
    for (label, count, started, done, idle, lease_calls, wall, steady_from, steady_to, commits, retries, get_records,
         steady_ms, idle_ms, steady_faults, steady_switches) in (run.split() for run in cluster.strip(";").split(";")):
        counted = calls.setdefault(label, [0, 0, 0])
        for at, value in enumerate((commits, retries, get_records)):
            counted[at] += int(value)
        total = summed.setdefault(label, [label, count, 0, 0, 0, 0, 0.0, 0])
        for at, value in ((2, int(started)), (3, int(done)), (4, int(idle)), (5, int(lease_calls)), (6, float(wall))):
            total[at] += value
        total[7] += 1
        (ticks_from, rows_from, at_from), (ticks_to, rows_to, at_to) = (
            steady_from.split(","), steady_to.split(",")
        )
        # Ticks, rows and seconds of the steady window, and the run's idle ticks per second, summed over runs.
        window = steady.setdefault(label, [0, 0, 0.0, 0.0])
        window[0] += int(ticks_to) - int(ticks_from)
        window[1] += int(rows_to) - int(rows_from)
        window[2] += float(at_to) - float(at_from)
        window[3] += int(idle) / idle_seconds_per_run * (float(at_to) - float(at_from))
        # perf's task-clock of the same window, less the idle task-clock over its length; None without perf.
        if steady_ms != "-" and idle_ms != "-" and precise.get(label, []) is not None:
            net_ms = float(steady_ms) - float(idle_ms) / idle_seconds_per_run * (float(at_to) - float(at_from))
            kept = precise.setdefault(label, [0.0, 0, 0, 0])
            kept[0] += net_ms
            kept[1] += int(rows_to) - int(rows_from)
            kept[2] += int(steady_faults)
            kept[3] += int(steady_switches)
        else:
            precise[label] = None
    runs = [total[:7] for total in summed.values()]
    repeats = next(iter(summed.values()))[7]
    records *= repeats
    idle_seconds = 20 * repeats
    print(f"  cluster mode (moto S3, DynamoDB catalog; CPU summed over the processes and {repeats} run(s) of each;"
          f" serve flags: {os.environ.get('TRIBUTARY_BENCH_CLUSTER_FLAGS') or 'defaults'}):")
    print("    total = from each process's start to the last row; records = from the commit to the last row, less what")
    print("    the processes cost idle over the same time (measured for 20 s after), i.e. the CPU the records themselves take")
    base_total = base_records = None
    for label, count, started, done, idle, lease_calls, wall in runs:
        count, wall = int(count), float(wall)
        total = int(done) / int(hz)
        idle_rate = int(idle) / int(hz) / idle_seconds
        records_cpu = (int(done) - int(started)) / int(hz) - idle_rate * wall
        base_total = base_total or total
        base_records = base_records or records_cpu
        per_minute = int(lease_calls) / int(shards) / (wall / 60)
        print(f"    {label:>5} x{count}: total {per_m(total):5.2f} CPU s per 1M ({total / base_total:.2f} of plain), "
              f"records {per_m(records_cpu):5.2f} CPU s per 1M ({records_cpu / base_records:.2f} of plain), "
              f"start-up {int(started) / int(hz) / count / repeats * 1000:3.0f} ms and idle {idle_rate / count * 1000:4.1f} ms/s per process, "
              f"{wall / repeats:5.1f} s wall per run, {int(lease_calls) // repeats} lease calls per run = {per_minute:4.1f} per shard per minute")
    print("    steady = from the first poll past 20% of the records to the first past 90% (each process's start and the")
    print("    last shards' tail left out), less the idle cost over that window: CPU per record once every process runs")
    base_steady = None
    for label, (window_ticks, window_rows, window_seconds, window_idle_ticks) in steady.items():
        if window_rows == 0:
            print(f"    {label:>5}: no steady window (the records landed between two polls)")
            continue
        per_record = (window_ticks - window_idle_ticks) / int(hz) / window_rows
        base_steady = base_steady or per_record
        print(f"    {label:>5}: steady {per_record * 1e6:5.2f} CPU s per 1M ({per_record / base_steady:.2f} of plain) "
              f"over {window_rows} records in {window_seconds:5.1f} s")
    if precise and all(kept and kept[1] for kept in precise.values()):
        print("    steady, perf task-clock (microseconds, every thread) rather than 10 ms ticks, less the idle task-clock:")
        base_precise = None
        for label, (net_ms, rows, faults, switches) in precise.items():
            per_record = net_ms / 1000 / rows
            base_precise = base_precise or per_record
            print(f"    {label:>5}: steady {per_record * 1e6:5.2f} CPU s per 1M ({per_record / base_precise:.2f} of plain), "
                  f"{faults * 1000 / rows:6.1f} page faults and {switches * 1000 / rows:6.1f} context switches per 1k records")
    print("    per run, summed over the processes: batch commits, table commits tried again (another writer moved the table")
    print("    first), GetRecords calls")
    for label, (commits, retries, get_records) in calls.items():
        print(f"    {label:>5}: {commits / repeats:5.1f} commits, {retries / repeats:5.1f} retries, {get_records / repeats:7.1f} GetRecords")
    print("    KCL 2.x: a renewal call every ~3.3 s per lease (18 per shard per minute) plus a scan every ~20 s per worker")
PY
