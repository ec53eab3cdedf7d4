#!/usr/bin/env bash
# Load test of tarnkappe against 127.0.0.1 only, in one bounded run (about 2.5 minutes
# after the release build):
#
#   (a) wrk -> upstream                        the upstream alone (nginx: reads the body,
#                                              answers a fixed small JSON)
#   (b) wrk -> nginx pass-through -> upstream  the yardstick
#   (c) wrk -> tarnkappe, route without rules -> upstream
#   (d) wrk -> tarnkappe, route sealing 5 fields -> upstream
#   (e) as (d), with the flow log on
#
# each with 1 KB, 64 KB and 1 MB JSON bodies (scripts/load/document.awk), then the peak
# memory of tarnkappe under 64 concurrent 1 MB transforms, then an admin-port storm
# while the public port is measured. Prints requests/s, p50 and p99 per run and the
# ratios the issues set targets for. Results and their reading: docs/benchmarks.md.
#
# Usage: scripts/load.sh   (env: DURATION=4 seconds per run, ROUNDS=5,
#                           PAIRS=30 alternating flow-log pairs (0: none), CONNS=16,
#                           BASE_PORT=18180, SKIP_BUILD=1 to reuse the binary,
#                           KEEP_TMP=1 to keep configs and logs)
# Needs wrk and nginx; installs them with apt-get when missing and run as root.
# Stops every process it started, also on Ctrl-C.

set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-4}
ROUNDS=${ROUNDS:-5}
PAIRS=${PAIRS:-30}
CONNS=${CONNS:-16}
THREADS=2
BASE_PORT=${BASE_PORT:-18180}
LOAD=scripts/load
BIN=target/release/tarnkappe
export TARNKAPPE_LOG=warn

UP_PORT=$BASE_PORT                   # (a) upstream
NGX_PORT=$((BASE_PORT + 1))          # (b) nginx pass-through
TK_PORT=$((BASE_PORT + 2))           # (c), (d) tarnkappe
TK_ADMIN=$((BASE_PORT + 3))
TKLOG_PORT=$((BASE_PORT + 4))        # (e) tarnkappe with the flow log
TKLOG_ADMIN=$((BASE_PORT + 5))
TKMEM_PORT=$((BASE_PORT + 6))        # fresh tarnkappe for the memory peak
TKMEM_ADMIN=$((BASE_PORT + 7))

SIZES=(1KB 64KB 1MB)
declare -A BYTES=([1KB]=1024 [64KB]=65536 [1MB]=1048576)
RUNS=(a b c d e)
declare -A LABEL=(
    [a]="(a) direct to upstream"
    [b]="(b) nginx pass-through"
    [c]="(c) tarnkappe, no rules"
    [d]="(d) tarnkappe, 5 fields"
    [e]="(e) (d) + flow log"
)
declare -A URL=(
    [a]="http://127.0.0.1:$UP_PORT/plain/customers"
    [b]="http://127.0.0.1:$NGX_PORT/plain/customers"
    [c]="http://127.0.0.1:$TK_PORT/plain/customers"
    [d]="http://127.0.0.1:$TK_PORT/sealed/customers"
    [e]="http://127.0.0.1:$TKLOG_PORT/sealed/customers"
)
declare -A RPS P50 P99 ERR EACH
PIDS=()
TMP=""

say() { printf '%s\n' "$*" >&2; }
die() { say "load.sh: $*"; exit 1; }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$TMP" && -z "${KEEP_TMP:-}" ]]; then rm -rf "$TMP"; fi
    if [[ -n "$TMP" && -n "${KEEP_TMP:-}" ]]; then say "kept $TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

apt_install() {
    apt-get install -y -qq "$@" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$@" >/dev/null 2>&1; }
}

have_nginx() { command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]]; }

need_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    have_nginx || missing+=(nginx)
    if ((${#missing[@]})); then
        if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
            die "missing ${missing[*]}: install them (Debian: apt-get install -y wrk nginx-light curl)"
        fi
        say "installing ${missing[*]} with apt-get"
        local tool
        for tool in "${missing[@]}"; do
            case $tool in
            # The light flavour has all this needs (proxy, mirror); newer releases have only nginx.
            nginx) apt_install nginx-light || apt_install nginx ;;
            *) apt_install "$tool" ;;
            esac || die "apt-get could not install $tool"
        done
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT NAME PID: until something accepts on PORT, or the process is gone.
wait_port() {
    local _
    for _ in $(seq 100); do
        port_busy "$1" && return 0
        kill -0 "$3" 2>/dev/null || { tail -n 20 "$TMP/$2.log" >&2; die "$2 exited at start"; }
        sleep 0.1
    done
    tail -n 20 "$TMP/$2.log" >&2
    die "$2 does not listen on port $1"
}

# start NAME PORT CMD...: runs CMD in the background, logs to $TMP/NAME.log.
start() {
    local name=$1 port=$2
    shift 2
    port_busy "$port" && die "port $port is taken: set BASE_PORT"
    "$@" >"$TMP/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_port "$port" "$name" "$LAST_PID"
}

fill() { # fill TEMPLATE OUT KEY=VALUE...
    local tpl=$1 out=$2 kv
    shift 2
    cp "$tpl" "$out"
    for kv in "$@"; do sed -i "s|@${kv%%=*}@|${kv#*=}|g" "$out"; done
}

start_nginx() { # start_nginx NAME TEMPLATE PORT [UPSTREAM]
    local name=$1
    mkdir -p "$TMP/$name"
    fill "$LOAD/$2" "$TMP/$name/nginx.conf" "TMP=$TMP/$name" "PORT=$3" "UPSTREAM=${4:-}"
    # As root, run the workers as root too: the temp dir is private to this user.
    [[ $EUID -eq 0 ]] && sed -i '1i user root;' "$TMP/$name/nginx.conf"
    start "$name" "$3" "$NGINX" -p "$TMP/$name" -e "$TMP/$name/error.log" -c "$TMP/$name/nginx.conf" -g 'daemon off;'
}

start_tarnkappe() { # start_tarnkappe NAME PORT ADMIN [flowlog]
    local name=$1
    fill "$LOAD/tarnkappe.toml" "$TMP/$name.toml" "PORT=$2" "ADMIN=$3" "UPSTREAM=$UP_PORT"
    if [[ ${4:-} == flowlog ]]; then
        printf '\n[flow_log]\npath = "%s"\n' "$TMP/$name-flow.jsonl" >>"$TMP/$name.toml"
    fi
    start "$name" "$2" "$BIN" serve --config "$TMP/$name.toml"
}

# wrk_run URL BODY SECONDS [CONNS]: sets W_RPS, W_P50 and W_P99 (us), W_ERR.
wrk_run() {
    local out line
    out=$(timeout $(($3 + 30)) wrk -t"$THREADS" -c"${4:-$CONNS}" -d"$3s" --timeout 10s \
        -s "$LOAD/post.lua" "$1" -- "$2" 2>&1) || die "wrk failed on $1: $out"
    line=$(grep '^RESULT' <<<"$out") || die "no result from wrk on $1: $out"
    read -r _ W_RPS W_P50 W_P99 W_ERR _ <<<"$line"
}

# measure RUN SIZE ROUND: one measured run; keeps the round with the most requests/s,
# and every round's requests/s for the per-round ratios.
measure() {
    local key="$1/$2" rps p50 p99 err
    wrk_run "${URL[$1]}" "$TMP/body-$2.json" "$DURATION"
    rps=$W_RPS p50=$W_P50 p99=$W_P99 err=$W_ERR
    EACH[$key/$3]=$rps
    ERR[$key]=$((${ERR[$key]:-0} + err))
    if [[ -z "${RPS[$key]:-}" ]] || awk -v a="$rps" -v b="${RPS[$key]}" 'BEGIN { exit !(a > b) }'; then
        RPS[$key]=$rps P50[$key]=$p50 P99[$key]=$p99
    fi
    printf '  %-5s %-26s %10.0f req/s  p50 %8.2f ms  p99 %8.2f ms  errors %s\n' \
        "$2" "${LABEL[$1]}" "$rps" "$(ms "$p50")" "$(ms "$p99")" "$err" >&2
}

ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t ? "ok" : "BELOW TARGET") }'; }

# round_median A B SIZE: the median over the rounds of rps(A)/rps(B) within each round,
# to three decimals (the verdict is taken on what is printed: no rounding up to a target).
round_median() {
    local round
    for round in $(seq "$ROUNDS"); do
        awk -v a="${EACH[$1/$3/$round]}" -v b="${EACH[$2/$3/$round]}" \
            'BEGIN { printf "%.4f\n", (b > 0 ? a / b : 0) }'
    done | sort -n | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f", m }'
}

# flow_pairs: PAIRS alternating 2 s runs of (d) and (e) on the 1 KB body, the order
# flipped every pair, so that neither row always runs first. Sets PAIR_NOTE: the mean of
# (e)/(d) over the pairs (geometric) and its 95 % interval, which the rounds' median
# cannot give: a single round's ratio moves by several percent on a shared machine.
flow_pairs() {
    local i d e
    for i in $(seq "$PAIRS"); do
        if ((i % 2)); then
            wrk_run "${URL[d]}" "$TMP/body-1KB.json" 2
            d=$W_RPS
            wrk_run "${URL[e]}" "$TMP/body-1KB.json" 2
            e=$W_RPS
        else
            wrk_run "${URL[e]}" "$TMP/body-1KB.json" 2
            e=$W_RPS
            wrk_run "${URL[d]}" "$TMP/body-1KB.json" 2
            d=$W_RPS
        fi
        echo "$d $e"
    done >"$TMP/pairs.txt"
    PAIR_NOTE=$(awk '$1 > 0 && $2 > 0 { r = log($2 / $1); s += r; ss += r * r; n++ }
        END {
            if (n < 2) { print "too few pairs"; exit }
            m = s / n; v = (ss - n * m * m) / (n - 1); se = sqrt(v > 0 ? v : 0) / sqrt(n)
            lo = exp(m - 2 * se); hi = exp(m + 2 * se)
            where = lo >= 0.95 ? "all of it >= 0.95" : (hi < 0.95 ? "all of it below 0.95" : "it spans 0.95")
            printf "mean %.3f, 95 %% interval %.3f to %.3f (%s); single pairs %.2f to %.2f", exp(m), lo, hi, where, exp(mn), exp(mx)
        }
        n == 1 || r < mn { mn = r } n == 1 || r > mx { mx = r }' "$TMP/pairs.txt")
}

# metric ADMIN_PORT NAME: the sum of a metric family over its labels, or "?".
metric() {
    curl -s "http://127.0.0.1:$1/metrics" 2>/dev/null |
        awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF; f = 1 } END { if (f) printf "%.0f", s; else print "?" }'
}

vm_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# Every target answers 200 to every body before anything is measured.
smoke() {
    local run size code
    for run in "${RUNS[@]}"; do
        for size in "${SIZES[@]}"; do
            code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H 'Expect:' \
                --data-binary "@$TMP/body-$size.json" "${URL[$run]}")
            [[ $code == 200 ]] || die "${LABEL[$run]} answered $code to the $size body"
        done
    done
}

memory_peak() {
    local pid before after rss
    start_tarnkappe tk-mem "$TKMEM_PORT" "$TKMEM_ADMIN"
    pid=$LAST_PID
    before=$(vm_kb "$pid" VmHWM)
    wrk_run "http://127.0.0.1:$TKMEM_PORT/sealed/customers" "$TMP/body-1MB.json" 5 64
    MEM_RPS=$W_RPS MEM_ERR=$W_ERR
    after=$(vm_kb "$pid" VmHWM)
    rss=$(vm_kb "$pid" VmRSS)
    MEM_BEFORE_MB=$((before / 1024)) MEM_PEAK_MB=$((after / 1024)) MEM_AFTER_MB=$((rss / 1024))
}

# The admin port under a /metrics storm (wrk -c64) while (d) 1 KB runs on the public port.
admin_storm() {
    local code post alone storm storm_pid
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TK_ADMIN/metrics" || true)
    if [[ $code != 200 ]]; then
        STORM_NOTE="skipped: the admin listener does not answer GET /metrics (got '$code')"
        return
    fi
    post=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$TK_ADMIN/metrics" || true)
    wrk_run "${URL[d]}" "$TMP/body-1KB.json" "$DURATION"
    alone=("$W_RPS" "$W_P50" "$W_P99")
    timeout $((DURATION + 30)) wrk -t1 -c64 -d"$((DURATION + 2))s" -s "$LOAD/post.lua" \
        "http://127.0.0.1:$TK_ADMIN/metrics" -- GET >"$TMP/storm.out" 2>&1 &
    storm_pid=$!
    PIDS+=("$storm_pid")
    sleep 1
    wrk_run "${URL[d]}" "$TMP/body-1KB.json" "$DURATION"
    storm=("$W_RPS" "$W_P50" "$W_P99")
    wait "$storm_pid" || true
    unset 'PIDS[-1]'
    local scrapes
    scrapes=$(awk '/^RESULT/ { printf "%.0f", $2 }' "$TMP/storm.out")
    STORM_NOTE=$(printf '%s\n' \
        "  (d) 1KB alone:          $(printf '%8.0f' "${alone[0]}") req/s  p99 $(ms "${alone[2]}") ms" \
        "  (d) 1KB + admin storm:  $(printf '%8.0f' "${storm[0]}") req/s  p99 $(ms "${storm[2]}") ms   (storm: ${scrapes:-?} GET /metrics/s, 64 connections)" \
        "  ratio storm/alone: $(ratio "${storm[0]}" "${alone[0]}");  POST /metrics answered $post (want 405)")
}

report() {
    local size run key
    printf '\n## tarnkappe load run, %s, %s cores, wrk -t%s -c%s -d%ss, %s rounds (table: the best of each row)\n\n' \
        "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$THREADS" "$CONNS" "$DURATION" "$ROUNDS"
    printf 'Binary built %s; source tree at %s.\n\n' "$BUILT" "$COMMIT"
    printf '| body | run | req/s | p50 ms | p99 ms | errors |\n|---|---|---:|---:|---:|---:|\n'
    for size in "${SIZES[@]}"; do
        for run in "${RUNS[@]}"; do
            key="$run/$size"
            printf '| %s | %s | %.0f | %s | %s | %s |\n' "$size" "${LABEL[$run]}" \
                "${RPS[$key]}" "$(ms "${P50[$key]}")" "$(ms "${P99[$key]}")" "${ERR[$key]}"
        done
    done
    # The verdict is on the median over the rounds of the ratio within each round: the
    # runs of one round follow each other within seconds, so a drift of the machine
    # between rounds cancels out, where the best rounds of two rows may come from
    # different minutes.
    printf '\nRatios, each the median over the %s rounds of the ratio within one round:\n\n' "$ROUNDS"
    printf '| body | (c)/(b) no rules vs nginx | (d)/(c) 5 fields vs no rules | (e)/(d) flow log on vs off |\n|---|---|---|---|\n'
    declare -A want=([1KB]=0.7 [64KB]=0.5 [1MB]=0.3)
    local cb dc ed
    for size in "${SIZES[@]}"; do
        cb=$(round_median c b "$size")
        dc=$(round_median d c "$size")
        ed=$(round_median e d "$size")
        printf '| %s | %s (>= 0.9 %s) | %s (>= %s %s) | %s (>= 0.95 %s) |\n' "$size" \
            "$cb" "$(verdict "$cb" 0.9)" "$dc" "${want[$size]}" "$(verdict "$dc" "${want[$size]}")" \
            "$ed" "$(verdict "$ed" 0.95)"
    done
    if ((PAIRS > 0)); then
        printf '\nThe flow log at 1 KB again, %s alternating pairs of 2 s runs of (d) and (e), the\n' "$PAIRS"
        printf 'order flipped each pair: (e)/(d) %s.\n' "$PAIR_NOTE"
    fi
    printf '\nFor reading only: the same ratios between the best rounds of each row, and what\n'
    printf 'the hop through tarnkappe costs at all, (c)/(a):\n\n'
    printf '| body | (c)/(b) | (d)/(c) | (e)/(d) | (c)/(a) |\n|---|---|---|---|---|\n'
    for size in "${SIZES[@]}"; do
        printf '| %s | %s | %s | %s | %s |\n' "$size" \
            "$(ratio "${RPS[c/$size]}" "${RPS[b/$size]}")" "$(ratio "${RPS[d/$size]}" "${RPS[c/$size]}")" \
            "$(ratio "${RPS[e/$size]}" "${RPS[d/$size]}")" "$(ratio "${RPS[c/$size]}" "${RPS[a/$size]}")"
    done
    printf '\nPeak memory, 64 concurrent 1 MB transforms (fresh process, wrk -c64 -d5s on (d), %.0f req/s, %s errors):\n' \
        "$MEM_RPS" "$MEM_ERR"
    printf '  VmHWM %s MB (target < 400 MB); idle before %s MB; VmRSS after %s MB\n' \
        "$MEM_PEAK_MB" "$MEM_BEFORE_MB" "$MEM_AFTER_MB"
    printf '\nAdmin storm:\n%s\n' "$STORM_NOTE"
    printf '\nFlow log of (e): %s\n' "$FLOW_NOTE"
    printf 'Values sealed or opened by tk over the run (tarnkappe_fields_total): %s\n' "$SEALED"
    printf 'Load average (1, 5, 15 min) at start: %s; at the end: %s\n' "$LOAD_AT_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

main() {
    need_tools
    if [[ -z "${SKIP_BUILD:-}" ]]; then
        say "building the release binary"
        cargo build --release --quiet
    fi
    [[ -x $BIN ]] || die "$BIN is missing: run cargo build --release"
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/tarnkappe-load.XXXXXX")
    # A private copy: a rebuild in the shared target dir cannot swap it mid-run.
    BUILT=$(date -u -r "$BIN" +%Y-%m-%dT%H:%MZ)
    cp "$BIN" "$TMP/tarnkappe"
    BIN=$TMP/tarnkappe
    COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || COMMIT="$COMMIT+changes"
    LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
    local size run round
    for size in "${SIZES[@]}"; do
        awk -v target="${BYTES[$size]}" -f "$LOAD/document.awk" >"$TMP/body-$size.json"
    done
    "$BIN" keys generate --out "$TMP/keyring.toml" >/dev/null

    mkdir -p "$TMP/upstream/www"
    printf '{"ok":true}' >"$TMP/upstream/www/ok.json"
    start_nginx upstream upstream.nginx.conf "$UP_PORT"
    start_nginx passthrough passthrough.nginx.conf "$NGX_PORT" "$UP_PORT"
    start_tarnkappe tk "$TK_PORT" "$TK_ADMIN"
    start_tarnkappe tk-log "$TKLOG_PORT" "$TKLOG_ADMIN" flowlog
    smoke

    say "warming up (1 s per run and body)"
    for size in "${SIZES[@]}"; do
        for run in "${RUNS[@]}"; do wrk_run "${URL[$run]}" "$TMP/body-$size.json" 1 >/dev/null; done
    done
    for round in $(seq "$ROUNDS"); do
        say "round $round of $ROUNDS"
        for size in "${SIZES[@]}"; do
            for run in "${RUNS[@]}"; do measure "$run" "$size" "$round"; done
        done
    done
    if ((PAIRS > 0)); then
        say "flow log: $PAIRS alternating pairs of (d) and (e) at 1 KB"
        flow_pairs
    fi
    sleep 1.5 # the flow-log writer catches up
    FLOW_NOTE="$(cat "$TMP"/tk-log-flow*.jsonl 2>/dev/null | wc -l) lines in the files;"
    FLOW_NOTE+=" metrics: $(metric "$TKLOG_ADMIN" tarnkappe_flow_log_events_total) written,"
    FLOW_NOTE+=" $(metric "$TKLOG_ADMIN" tarnkappe_flow_log_errors_total) lost or failed,"
    FLOW_NOTE+=" $(metric "$TKLOG_ADMIN" tarnkappe_requests_total) requests"
    SEALED=$(metric "$TK_ADMIN" tarnkappe_fields_total)

    say "peak memory: 64 concurrent 1 MB transforms"
    memory_peak
    say "admin storm"
    admin_storm
    report
}

main "$@"
