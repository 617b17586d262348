#!/usr/bin/env bash
# HTTP benchmark: lanmirror's distfiles cache side by side with nginx
# serving the same files, in one run, on loopback.
#
#   bench/http.sh                 # 1 GiB large file, 40 KiB small file
#   BENCH_LARGE_MB=256 bench/http.sh
#
# nginx plays two parts: it is the upstream mirror lanmirror fills its cache
# from (one warm-up request per file), and the reference server. Measured
# afterwards, from the warm cache:
#   1. throughput of one client downloading the large file (best of 3),
#   2. requests per second for the 40 KiB file under 64 connections (wrk),
#   3. lanmirror's peak RSS while 100 clients download the large file at once.
# Needs: go, nginx (nginx-light), wrk, curl. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

LARGE_MB=${BENCH_LARGE_MB:-1024}
SMALL_KB=40
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-100}

for tool in go curl wrk; do
	command -v "$tool" >/dev/null || { echo "bench/http.sh: $tool not found" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "bench/http.sh: nginx not found (apt-get install nginx-light)" >&2; exit 1; }

work=$(mktemp -d /tmp/lanmirror-bench-http.XXXXXX)
chmod 755 "$work"
. bench/lib.sh # (the script runs from the repository root)

echo "building lanmirror..." >&2
go build -o "$work/lanmirror" ./cmd/lanmirror

mkdir -p "$work/www/distfiles"
echo "generating files (${LARGE_MB} MiB + ${SMALL_KB} KiB)..." >&2
head -c "$((LARGE_MB * 1024 * 1024))" /dev/urandom >"$work/www/distfiles/large.bin"
head -c "$((SMALL_KB * 1024))" /dev/urandom >"$work/www/distfiles/small.bin"
chmod -R a+rX "$work/www"

nginx_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
$([ "$(id -u)" = 0 ] && echo "user root root;")
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000;
	client_body_temp_path $work/nginx/body;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$nginx_port;
		root $work/www;
	}
}
EOF
"$NGINX" -c "$work/nginx/nginx.conf" -p "$work/nginx" 2>"$work/nginx/stderr" &
nginx_pid=$!
pids+=($nginx_pid)
wait_port "$nginx_port"

lm_port=$(free_port)
"$work/lanmirror" serve --allow-root --data "$work/data" --http "127.0.0.1:$lm_port" --rsync '' \
	--mirror "http://127.0.0.1:$nginx_port" --allow 127.0.0.0/8 \
	--log "$work/access.log" 2>"$work/lanmirror.log" &
lm_pid=$!
pids+=($lm_pid)
wait_port "$lm_port"

nginx_url="http://127.0.0.1:$nginx_port/distfiles"
lm_url="http://127.0.0.1:$lm_port/distfiles"

echo "warming lanmirror's cache from nginx..." >&2
for f in large.bin small.bin; do
	curl -sf -o "$work/warm" "$lm_url/$f"
	cmp -s "$work/warm" "$work/www/distfiles/$f" || { echo "bench/http.sh: $f differs after warm-up" >&2; exit 1; }
done
rm -f "$work/warm"

# throughput URL: best bytes/s of 3 downloads.
throughput() {
	local best=0 s
	for _ in 1 2 3; do
		s=$(curl -sf -o /dev/null -w '%{speed_download}' "$1")
		s=${s%.*}
		[ "$s" -gt "$best" ] && best=$s
	done
	echo "$best"
}

# cpu_ticks PID...: utime+stime of the processes, in clock ticks.
cpu_ticks() {
	local t=0 p rest
	for p in "$@"; do
		# The command name (field 2) may hold spaces: cut after its ")".
		rest=$(sed 's/^.*) //' "/proc/$p/stat")
		# shellcheck disable=SC2086
		set -- $rest
		t=$((t + ${12} + ${13}))
	done
	echo "$t"
}

# server_pids NAME: the processes serving for NAME (nginx: master and workers).
server_pids() {
	case $1 in
	lanmirror) echo "$lm_pid" ;;
	nginx) echo "$nginx_pid" $(cat /proc/"$nginx_pid"/task/*/children) ;;
	esac
}

# rps NAME URL: requests per second with wrk, 64 connections; also sets
# cpu_per_k[NAME], the server's CPU milliseconds per 1000 requests.
declare -A cpu_per_k
TICK=$(getconf CLK_TCK)
rps() {
	local name=$1 url=$2 c0 c1 out r n
	# shellcheck disable=SC2046
	c0=$(cpu_ticks $(server_pids "$name"))
	out=$(wrk -t2 -c64 -d"${WRK_SECONDS}s" "$url")
	# shellcheck disable=SC2046
	c1=$(cpu_ticks $(server_pids "$name"))
	r=$(awk '/^Requests\/sec/ {print int($2)}' <<<"$out")
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	cpu_per_k[$name]=$(awk -v d=$((c1 - c0)) -v t="$TICK" -v n="$n" 'BEGIN { if (n > 0) printf "%.1f", d / t * 1000 / n * 1000; else print "n/a" }')
	echo "$r"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
mib() { awk -v a="$1" 'BEGIN { printf "%.0f MiB/s", a / 1048576 }'; }

echo "measuring large-file throughput..." >&2
lm_tp=$(throughput "$lm_url/large.bin")
ng_tp=$(throughput "$nginx_url/large.bin")

echo "measuring small-file requests/s (${WRK_SECONDS}s each)..." >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rps lanmirror "$lm_url/small.bin" >"$work/rps-lm"
rps nginx "$nginx_url/small.bin" >"$work/rps-ng"
lm_rps=$(cat "$work/rps-lm")
ng_rps=$(cat "$work/rps-ng")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "measuring peak RSS with $CLIENTS concurrent large-file clients..." >&2
cpids=()
for i in $(seq 1 "$CLIENTS"); do
	curl -sf -o /dev/null "$lm_url/large.bin" &
	cpids+=($!)
done
failed=0
for p in "${cpids[@]}"; do wait "$p" || failed=$((failed + 1)); done
peak_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$lm_pid/status")

cat <<EOF

| measure | lanmirror | nginx | ratio (lanmirror/nginx) | target |
|---|---|---|---|---|
| ${LARGE_MB} MiB file, 1 client | $(mib "$lm_tp") | $(mib "$ng_tp") | $(ratio "$lm_tp" "$ng_tp") | ≥ 1.0 |
| ${SMALL_KB} KiB file, 64 connections | ${lm_rps} req/s | ${ng_rps} req/s | $(ratio "$lm_rps" "$ng_rps") | ≥ 0.7 |
| server CPU per 1000 requests of the ${SMALL_KB} KiB file | ${cpu_per_k[lanmirror]} ms | ${cpu_per_k[nginx]} ms | $(ratio "${cpu_per_k[lanmirror]}" "${cpu_per_k[nginx]}") | |
| peak RSS, $CLIENTS clients of the large file | $((peak_kb / 1024)) MB | | | < 100 MB |

$CLIENTS-client run: $failed client(s) failed. $(nproc) cores, $(uname -sr); load average $load_before before the small-file runs, $load_after after.
EOF
