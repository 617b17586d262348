#!/usr/bin/env bash
# Load test: one lanmirror (HTTP side and rsync daemon) under many clients
# at once, on loopback, and no leak afterwards.
#
#   bench/load.sh                               # 1000 HTTP + 100 rsync clients, 60 s
#   LOAD_DURATION=10s LOAD_CLIENTS=200 bench/load.sh   # shorter
#
# bench/loadgen serves the upstream distfiles mirror itself and drives
# LOAD_CLIENTS HTTP clients (hits, misses of the same new files at once,
# Ranges; every answer checked byte for byte) and LOAD_RSYNC_CLIENTS stock
# rsync clients doing no-op syncs with Portage's options of a generated
# tree of LOAD_FILES files. It fails on any error. Before and after the
# load the script reads lanmirror's open file descriptors
# (/proc/PID/fd), goroutines (go_goroutines on /metrics) and RSS
# (/proc/PID/status); after the load both counts must come back to their
# level before it (within LOAD_FD_SLACK and LOAD_GOROUTINE_SLACK) within
# 60 s, else the script fails. LOAD_SERVE_ARGS adds flags to lanmirror
# serve. Needs: go, rsync, curl. Prints markdown.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${LOAD_DURATION:-60s}
CLIENTS=${LOAD_CLIENTS:-1000}
RSYNC_CLIENTS=${LOAD_RSYNC_CLIENTS:-100}
FILES=${LOAD_FILES:-3000}
FD_SLACK=${LOAD_FD_SLACK:-10}
GOROUTINE_SLACK=${LOAD_GOROUTINE_SLACK:-20}
# Extra flags for lanmirror serve (e.g. --http-header-timeout 2m).
read -r -a SERVE_ARGS <<<"${LOAD_SERVE_ARGS:-}"

for tool in go rsync curl; do
	command -v "$tool" >/dev/null || { echo "bench/load.sh: $tool not found" >&2; exit 1; }
done

# Every HTTP client holds a connection on both ends, every rsync client one
# more plus its open files: raise the descriptor limit (inherited by
# lanmirror and loadgen) or stop when it cannot be high enough.
need=$((2 * CLIENTS + 4 * RSYNC_CLIENTS + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
	ulimit -Hn "$need" 2>/dev/null || { echo "bench/load.sh: ulimit -n: hard limit $hard < $need needed (run as root or raise it)" >&2; exit 1; }
fi
ulimit -Sn "$need"

base=${BENCH_TMP:-/tmp}
if [ -z "${BENCH_TMP:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] &&
	[ "$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')" -ge $((1024 * 1024)) ]; then
	base=/dev/shm
fi
work=$(mktemp -d "$base/lanmirror-bench-load.XXXXXX")
. bench/lib.sh # (the script runs from the repository root)

echo "building lanmirror, gentree and loadgen..." >&2
go build -o "$work/lanmirror" ./cmd/lanmirror
go build -o "$work/gentree" ./bench/gentree
go build -o "$work/loadgen" ./bench/loadgen
"$work/gentree" -dir "$work/tree" -files "$FILES" >&2

up=$(free_port)
"$work/loadgen" -serve-upstream -upstream "127.0.0.1:$up" &
pids+=($!)
http=$(free_port)
rs=$(free_port)
"$work/lanmirror" serve --allow-root --data "$work/data" --http "127.0.0.1:$http" --rsync "127.0.0.1:$rs" \
	--rsync-module "gentoo-portage=$work/tree" --mirror "http://127.0.0.1:$up" \
	--log "$work/access.log" "${SERVE_ARGS[@]}" 2>"$work/lanmirror.log" &
lm=$!
pids+=("$lm")

for _ in $(seq 1 300); do
	curl -sf "http://127.0.0.1:$http/metrics" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -sf "http://127.0.0.1:$http/metrics" >/dev/null || { echo "bench/load.sh: lanmirror did not start:" >&2; cat "$work/lanmirror.log" >&2; exit 1; }

url="rsync://127.0.0.1:$rs/gentoo-portage/"
rsync -a --exclude=/distfiles --exclude=/local --exclude=/packages --exclude=/.git "$url" "$work/dest/"

fds() { find "/proc/$lm/fd" -mindepth 1 -maxdepth 1 | wc -l; }
goroutines() { curl -sf "http://127.0.0.1:$http/metrics" | awk '$1 == "go_goroutines" { print $2 }'; }
rss() { awk -v k="$1:" '$1 == k { printf "%.0f", $2 / 1024 }' "/proc/$lm/status"; }

fd0=$(fds)
g0=$(goroutines)
rss0=$(rss VmRSS)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "before: $fd0 fds, $g0 goroutines, RSS $rss0 MiB; running the load ($DURATION)..." >&2

status=0
"$work/loadgen" -http "http://127.0.0.1:$http" -rsync "$url" -dest "$work/dest" \
	-clients "$CLIENTS" -rsync-clients "$RSYNC_CLIENTS" -duration "$DURATION" >"$work/result.md" || status=$?
cat "$work/result.md"
if [ "$status" != 0 ]; then
	echo "bench/load.sh: loadgen failed (exit $status); lanmirror's warnings and errors:" >&2
	grep -E 'level=(WARN|ERROR)' "$work/lanmirror.log" | tail -30 >&2 || true
	echo "access log lines other than 200/206:" >&2
	awk '$5 != 200 && $5 != 206' "$work/access.log" | tail -20 >&2 || true
	exit 1
fi
rss_peak=$(rss VmHWM)
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# Back to the level before the load? (Connections end, downloads finish.)
ok=0
for _ in $(seq 1 120); do
	fd1=$(fds)
	g1=$(goroutines)
	if [ "$fd1" -le $((fd0 + FD_SLACK)) ] && [ "$g1" -le $((g0 + GOROUTINE_SLACK)) ]; then
		ok=1
		break
	fi
	sleep 0.5
done
rss1=$(rss VmRSS)
upstream_gets=$(curl -sf "http://127.0.0.1:$up/gets")
kill -0 "$lm" 2>/dev/null || { echo "bench/load.sh: lanmirror died" >&2; exit 1; }

echo
echo "| lanmirror | before | after |"
echo "|---|---|---|"
echo "| open file descriptors | $fd0 | $fd1 |"
echo "| goroutines | $g0 | $g1 |"
echo "| RSS (MiB) | $rss0 | $rss1 (peak $rss_peak) |"
echo
echo "upstream GETs: $upstream_gets (each distfile is downloaded once); tree: $FILES files; load average before $load0, after $load1"
if [ "$ok" != 1 ]; then
	echo "bench/load.sh: after the load lanmirror still holds $fd1 fds (before: $fd0) and $g1 goroutines (before: $g0)" >&2
	exit 1
fi
