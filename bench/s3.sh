#!/usr/bin/env bash
# Object-storage benchmark: lanmirror serving cache hits from an S3 bucket
# (versitygw, POSIX backend, on this machine) side by side with lanmirror
# serving them from its local disk, in one run, on loopback; then the
# aggregate throughput of 2 nodes on the bucket against 1.
#
#   bench/s3.sh                                 # 256 MiB large file, 8 MiB file x 100 clients
#   BENCH_LARGE_MB=64 BENCH_CLIENTS=50 bench/s3.sh
#
# nginx is the upstream mirror the caches are filled from (one warm-up
# request per file). Measured afterwards, from the warm caches:
#   1. one client downloading the large file (best of 3): S3 node vs disk node,
#   2. 100 clients downloading the medium file at once (one curl --parallel):
#      S3 node vs disk node (best of 2, alternating),
#   3. the same 100 clients split over 2 S3 nodes vs all on 1 S3 node.
# Everything (nginx, versitygw, the nodes, the clients) shares this
# machine's cores: 2 nodes against 1 measures lanmirror's own limit only
# where the CPU is not already the bottleneck.
# Needs: go, nginx (nginx-light), curl; versitygw v1.8.0 (built from the Go
# module proxy into $TMPDIR/lanmirror-tools when missing). Prints a
# markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

LARGE_MB=${BENCH_LARGE_MB:-256}
MEDIUM_MB=${BENCH_MEDIUM_MB:-8}
CLIENTS=${BENCH_CLIENTS:-100}

for tool in go curl; do
	command -v "$tool" >/dev/null || { echo "bench/s3.sh: $tool not found" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "bench/s3.sh: nginx not found (apt-get install nginx-light)" >&2; exit 1; }
vgw_dir="${TMPDIR:-/tmp}/lanmirror-tools/versitygw-v1.8.0"
if [ ! -x "$vgw_dir/versitygw" ]; then
	echo "building versitygw v1.8.0..." >&2
	GOBIN="$vgw_dir" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi

work=$(mktemp -d /tmp/lanmirror-bench-s3.XXXXXX)
chmod 755 "$work"
. bench/lib.sh # (the script runs from the repository root)

echo "building lanmirror..." >&2
go build -o "$work/lanmirror" ./cmd/lanmirror

mkdir -p "$work/www/distfiles"
echo "generating files (${LARGE_MB} MiB + ${MEDIUM_MB} MiB)..." >&2
head -c "$((LARGE_MB * 1024 * 1024))" /dev/urandom >"$work/www/distfiles/large.bin"
head -c "$((MEDIUM_MB * 1024 * 1024))" /dev/urandom >"$work/www/distfiles/medium.bin"
chmod -R a+rX "$work/www"

nginx_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
$([ "$(id -u)" = 0 ] && echo "user root root;")
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
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
pids+=($!)
wait_port "$nginx_port"

export AWS_ACCESS_KEY_ID=lanmirrorbench AWS_SECRET_ACCESS_KEY=lanmirror-bench-secret AWS_REGION=us-east-1
s3_port=$(free_port)
mkdir -p "$work/s3root"
"$vgw_dir/versitygw" --port "127.0.0.1:$s3_port" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" \
	--quiet posix "$work/s3root" >"$work/versitygw.log" 2>&1 &
pids+=($!)
wait_port "$s3_port"
s3_url="http://127.0.0.1:$s3_port"
curl -sf -X PUT -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$s3_url/bench" >/dev/null ||
	{ echo "bench/s3.sh: cannot create the bucket" >&2; exit 1; }

start_node() { # name port [serve flags...]
	local name=$1 port=$2
	shift 2
	"$work/lanmirror" serve --allow-root --data "$work/$name" --http "127.0.0.1:$port" --rsync '' \
		--mirror "http://127.0.0.1:$nginx_port" --allow 127.0.0.0/8 \
		--log "$work/$name.access.log" "$@" 2>"$work/$name.log" &
	pids+=($!)
	wait_port "$port"
}
disk_port=$(free_port)
start_node disk "$disk_port"
n1_port=$(free_port)
start_node s3a "$n1_port" --store s3://bench/cache --s3-endpoint "$s3_url"
n2_port=$(free_port)
start_node s3b "$n2_port" --store s3://bench/cache --s3-endpoint "$s3_url"

disk_url="http://127.0.0.1:$disk_port/distfiles"
n1_url="http://127.0.0.1:$n1_port/distfiles"
n2_url="http://127.0.0.1:$n2_port/distfiles"

echo "warming the caches from nginx..." >&2
for f in large.bin medium.bin; do
	for u in "$disk_url" "$n1_url"; do
		curl -sf -o "$work/warm" "$u/$f"
		cmp -s "$work/warm" "$work/www/distfiles/$f" || { echo "bench/s3.sh: $f differs after warm-up" >&2; exit 1; }
	done
done
rm -f "$work/warm"
# node 2 finds the objects in the bucket (no download of its own).
curl -sf -o /dev/null "$n2_url/medium.bin"

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

# aggregate URL...: CLIENTS concurrent downloads of medium.bin (one curl
# process, --parallel), spread over the given base URLs in turn; prints
# total bytes/s.
aggregate() {
	local urls=("$@") args=() i t0 t1
	for i in $(seq 0 $((CLIENTS - 1))); do
		args+=(-o /dev/null "${urls[$((i % ${#urls[@]}))]}/medium.bin")
	done
	t0=$(date +%s.%N)
	curl -sf --no-progress-meter --parallel --parallel-immediate --parallel-max "$CLIENTS" "${args[@]}" ||
		{ echo "bench/s3.sh: some of the $CLIENTS clients failed" >&2; exit 1; }
	t1=$(date +%s.%N)
	awk -v n="$CLIENTS" -v sz="$((MEDIUM_MB * 1048576))" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n * sz / (b - a) }'
}

# best of two alternating runs of aggregate for two setups (A: "$1", B: "$2",
# each a space-separated URL list); prints "A B".
best_pair() {
	local a=0 b=0 x
	for _ in 1 2; do
		# shellcheck disable=SC2086
		x=$(aggregate $1); [ "$x" -gt "$a" ] && a=$x
		# shellcheck disable=SC2086
		x=$(aggregate $2); [ "$x" -gt "$b" ] && b=$x
	done
	echo "$a $b"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
mib() { awk -v a="$1" 'BEGIN { printf "%.0f MiB/s", a / 1048576 }'; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "measuring large-file throughput (1 client)..." >&2
s3_tp=$(throughput "$n1_url/large.bin")
disk_tp=$(throughput "$disk_url/large.bin")

echo "measuring $CLIENTS clients of the ${MEDIUM_MB} MiB file..." >&2
read -r s3_agg disk_agg < <(best_pair "$n1_url" "$disk_url")
read -r two_agg one_agg < <(best_pair "$n1_url $n2_url" "$n1_url")

cat <<EOF

| measure | S3 | local disk | S3 / disk |
|---|---|---|---|
| hit, ${LARGE_MB} MiB file, 1 client | $(mib "$s3_tp") | $(mib "$disk_tp") | $(ratio "$s3_tp" "$disk_tp") |
| hits, $CLIENTS clients of a ${MEDIUM_MB} MiB file, aggregate | $(mib "$s3_agg") | $(mib "$disk_agg") | $(ratio "$s3_agg" "$disk_agg") |

| measure | 2 nodes | 1 node | 2 / 1 |
|---|---|---|---|
| hits from S3, $CLIENTS clients of a ${MEDIUM_MB} MiB file, aggregate | $(mib "$two_agg") | $(mib "$one_agg") | $(ratio "$two_agg" "$one_agg") |

S3: versitygw v1.8.0 (POSIX backend) on the same machine. $(nproc) cores, $(uname -sr); load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after.
EOF
