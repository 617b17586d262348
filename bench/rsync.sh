#!/usr/bin/env bash
# rsync benchmark: lanmirror's rsync daemon side by side with stock
# `rsync --daemon` serving the same generated Gentoo-like tree, in one run,
# on loopback, with the stock rsync client and Portage's exact options.
#
#   bench/rsync.sh                      # ~150,000 files, as the gentoo tree
#   BENCH_FILES=20000 bench/rsync.sh    # smaller and quicker
#
# Measured for each server:
#   1. initial sync wall time (empty destination), and the server's CPU
#      time for it (as in 3.; lanmirror's file list is ready before, from
#      its start-up scan, as for every client of a running server):
#      BENCH_INITIAL_RUNS syncs each (default 3), the servers taking
#      turns, each into an emptied destination; the table gives the median
#      and the first sync's figures (lanmirror's first client also encodes
#      the file list that the next ones with the same options share),
#   2. no-op sync wall time (nothing changed; median of BENCH_NOOP_RUNS),
#   3. server CPU time per no-op sync (utime+stime+cutime+cstime of the
#      daemon process from /proc/PID/stat; stock rsyncd forks a child per
#      connection, whose CPU reaches the parent's cutime/cstime when it is
#      reaped, so the script waits for the child to be gone),
#   4. wall time of 10 concurrent no-op clients (BENCH_CLIENTS), and the
#      server CPU they cost.
# Trees live in BENCH_TMP (default: /dev/shm when writable with 4 GiB free,
# so the disk does not dominate; else /tmp). Needs: go, rsync. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${BENCH_FILES:-150000}
INITIAL_RUNS=${BENCH_INITIAL_RUNS:-3}
NOOP_RUNS=${BENCH_NOOP_RUNS:-5}
CLIENTS=${BENCH_CLIENTS:-10}
MODULE=gentoo-portage
PORTAGE_OPTS=(--recursive --links --safe-links --perms --times --omit-dir-times --compress --force --whole-file
	--delete --stats --human-readable --timeout=180 --exclude=/distfiles --exclude=/local --exclude=/packages
	--exclude=/.git)

for tool in go rsync; do
	command -v "$tool" >/dev/null || { echo "bench/rsync.sh: $tool not found" >&2; exit 1; }
done
RSYNC=$(command -v rsync)

base=${BENCH_TMP:-}
if [ -z "$base" ]; then
	base=/tmp
	# /dev/shm when it is writable and has room (about 1.5 GB at 150,000 files).
	if [ -d /dev/shm ] && [ -w /dev/shm ] &&
		[ "$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')" -ge $((4 * 1024 * 1024)) ]; then
		base=/dev/shm
	fi
fi
work=$(mktemp -d "$base/lanmirror-bench-rsync.XXXXXX")
. bench/lib.sh # (the script runs from the repository root)

# wait_greeting PORT: until a daemon on PORT sends its @RSYNCD greeting.
wait_greeting() {
	local line
	for _ in $(seq 1 200); do
		# (The group keeps the 2>/dev/null from sticking to the shell.)
		if { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null; then
			line=""
			read -r -t 2 line <&3 || true
			exec 3<&- 3>&-
			case $line in "@RSYNCD: "*) return ;; esac
		fi
		sleep 0.1
	done
	echo "bench/rsync.sh: no rsync daemon on port $1" >&2
	exit 1
}

# cpu_ticks PID: utime+stime+cutime+cstime of PID, in clock ticks.
cpu_ticks() {
	# The command name (field 2) may hold spaces: cut after its ")".
	local rest
	rest=$(sed 's/^.*) //' "/proc/$1/stat")
	# shellcheck disable=SC2086
	set -- $rest
	# Fields after ")" start at field 3 (state): utime is field 14 -> $12.
	echo $(( ${12} + ${13} + ${14} + ${15} ))
}

# wait_children PID: until PID has no child processes (bounded).
wait_children() {
	for _ in $(seq 1 200); do
		if [ -z "$(cat /proc/"$1"/task/*/children 2>/dev/null | tr -d ' \n')" ]; then
			return
		fi
		sleep 0.02
	done
	echo "bench/rsync.sh: children of $1 did not exit" >&2
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

TICK=$(getconf CLK_TCK)

echo "building lanmirror and gentree..." >&2
go build -o "$work/lanmirror" ./cmd/lanmirror
go build -o "$work/gentree" ./bench/gentree
echo "generating a tree of about $FILES files in $work/tree..." >&2
"$work/gentree" -dir "$work/tree" -files "$FILES" >&2

ids=""
if [ "$(id -u)" = 0 ]; then ids=$'uid = 0\ngid = 0'; fi
# One rsyncd.conf for both; the stock-only lines keep rsyncd out of syslog,
# /var/run and DNS (lanmirror warns about them and carries on).
cat >"$work/rsyncd.conf" <<EOF
use chroot = no
munge symlinks = no
reverse lookup = no
lock file = $work/rsyncd.lock
log file = $work/rsyncd.log
$ids
[$MODULE]
	path = $work/tree
	comment = benchmark tree
	read only = yes
EOF

port_stock=$(free_port)
"$RSYNC" --daemon --no-detach --config="$work/rsyncd.conf" --address=127.0.0.1 --port="$port_stock" &
pid_stock=$!
pids+=("$pid_stock")
wait_greeting "$port_stock"

port_lm=$(free_port)
"$work/lanmirror" serve --allow-root --data "$work/data" --http '' --rsync "127.0.0.1:$port_lm" \
	--rsyncd-conf "$work/rsyncd.conf" >"$work/lanmirror.log" 2>&1 &
pid_lm=$!
pids+=("$pid_lm")
wait_greeting "$port_lm"
# lanmirror scans its modules in the background when it starts: let that
# finish before timing anything, so that it does not slow stock rsyncd's
# runs (lanmirror's initial sync then finds its file list ready).
for _ in $(seq 1 1200); do
	grep -q "rsync module file list ready" "$work/lanmirror.log" && break
	sleep 0.1
done

declare -A initial initial_cpu initial_comp noop cpu conc conc_cpu noop_runs noop_cpus port pid
declare -A initial_runs initial_cpus initial_first initial_cpu_first
port[rsyncd]=$port_stock pid[rsyncd]=$pid_stock
port[lanmirror]=$port_lm pid[lanmirror]=$pid_lm
url() { echo "rsync://127.0.0.1:${port[$1]}/$MODULE/"; }
ticks_to_s() { awk -v d="$1" -v t="$TICK" 'BEGIN { printf "%.3f", d / t }'; }

# initial_sync NAME: a sync into an emptied directory, its wall time,
# the server's CPU and the compression the client negotiated.
initial_sync() {
	local name=$1 t0 t1 c0 c1 wall cpus
	echo "$name: initial sync..." >&2
	rm -rf "$work/dst-$name"
	wait_children "${pid[$name]}"
	c0=$(cpu_ticks "${pid[$name]}")
	t0=$(now)
	"$RSYNC" "${PORTAGE_OPTS[@]}" --debug=nstr "$(url "$name")" "$work/dst-$name/" >"$work/$name-initial.out"
	t1=$(now)
	wait_children "${pid[$name]}"
	c1=$(cpu_ticks "${pid[$name]}")
	wall=$(elapsed "$t0" "$t1")
	cpus=$(ticks_to_s $((c1 - c0)))
	initial_runs[$name]+="$wall"$'\n'
	initial_cpus[$name]+="$cpus"$'\n'
	: "${initial_first[$name]:=$wall}" "${initial_cpu_first[$name]:=$cpus}"
	initial_comp[$name]=$(sed -n 's/^Client negotiated compress: //p' "$work/$name-initial.out")
	if grep -q "Number of regular files transferred: 0" "$work/$name-initial.out"; then
		echo "bench/rsync.sh: $name initial sync transferred nothing" >&2
		exit 1
	fi
}

# noop_sync NAME: one no-op sync, its wall time and the server's CPU.
noop_sync() {
	local name=$1 t0 t1 c0 c1
	wait_children "${pid[$name]}"
	c0=$(cpu_ticks "${pid[$name]}")
	t0=$(now)
	"$RSYNC" "${PORTAGE_OPTS[@]}" "$(url "$name")" "$work/dst-$name/" >"$work/$name-noop.out"
	t1=$(now)
	wait_children "${pid[$name]}"
	c1=$(cpu_ticks "${pid[$name]}")
	if ! grep -q "Number of regular files transferred: 0" "$work/$name-noop.out"; then
		echo "bench/rsync.sh: $name no-op sync transferred files:" >&2
		cat "$work/$name-noop.out" >&2
		exit 1
	fi
	noop_runs[$name]+="$(elapsed "$t0" "$t1")"$'\n'
	noop_cpus[$name]+="$(ticks_to_s $((c1 - c0)))"$'\n'
}

# concurrent NAME: CLIENTS no-op syncs at once.
concurrent() {
	local name=$1 t0 t1 c0 c1 i p failed=0 cpids=()
	echo "$name: $CLIENTS concurrent no-op clients..." >&2
	wait_children "${pid[$name]}"
	c0=$(cpu_ticks "${pid[$name]}")
	t0=$(now)
	for i in $(seq 1 "$CLIENTS"); do
		"$RSYNC" "${PORTAGE_OPTS[@]}" "$(url "$name")" "$work/dst-$name/" >"$work/$name-conc-$i.out" 2>&1 &
		cpids+=($!)
	done
	for p in "${cpids[@]}"; do wait "$p" || failed=1; done
	t1=$(now)
	[ "$failed" = 0 ] || { echo "bench/rsync.sh: a concurrent $name client failed" >&2; exit 1; }
	wait_children "${pid[$name]}"
	c1=$(cpu_ticks "${pid[$name]}")
	conc[$name]=$(elapsed "$t0" "$t1")
	conc_cpu[$name]=$(ticks_to_s $((c1 - c0)))
}

# The two servers take turns at each step, so that a change in the
# machine's load during the run affects both alike.
# alternate STEP N: STEP rsyncd, then STEP lanmirror, N times.
alternate() {
	for _ in $(seq 1 "$2"); do
		"$1" rsyncd
		"$1" lanmirror
	done
}
# medians OUT RUNS: OUT[server] = the median of the lines of RUNS[server].
medians() {
	local -n out=$1 runs=$2
	local name
	for name in rsyncd lanmirror; do
		out[$name]=$(printf '%s' "${runs[$name]}" | median)
	done
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
alternate initial_sync "$INITIAL_RUNS"
medians initial initial_runs
medians initial_cpu initial_cpus
echo "$NOOP_RUNS no-op syncs each, alternating..." >&2
alternate noop_sync "$NOOP_RUNS"
medians noop noop_runs
medians cpu noop_cpus
concurrent rsyncd
concurrent lanmirror
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The two destinations must be the same tree.
if ! diff -r --no-dereference "$work/dst-rsyncd" "$work/dst-lanmirror" >"$work/diff.out" 2>&1; then
	echo "bench/rsync.sh: the trees synced from rsyncd and lanmirror differ:" >&2
	head -20 "$work/diff.out" >&2
	exit 1
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "n/a" }'; }
files=$(grep -m1 '^Number of files:' "$work/rsyncd-initial.out" | sed 's/^Number of files: //')
size=$(grep -m1 '^Total file size:' "$work/rsyncd-initial.out" | sed 's/^Total file size: //')
echo
echo "rsync benchmark: $files, $size; $(nproc) cores; rsync $("$RSYNC" --version | head -1 | awk '{print $3}'); Portage's options (with --compress); trees in $base; load average $load_before before, $load_after after"
echo
echo "| measure | stock rsyncd | lanmirror | lanmirror / rsyncd |"
echo "|---|---:|---:|---:|"
echo "| initial sync, wall (s, median of $INITIAL_RUNS) | ${initial[rsyncd]} | ${initial[lanmirror]} | $(ratio "${initial[rsyncd]}" "${initial[lanmirror]}") |"
echo "| server CPU per initial sync (s, median of $INITIAL_RUNS) | ${initial_cpu[rsyncd]} | ${initial_cpu[lanmirror]} | $(ratio "${initial_cpu[rsyncd]}" "${initial_cpu[lanmirror]}") |"
echo "| initial sync, wall (s, first) | ${initial_first[rsyncd]} | ${initial_first[lanmirror]} | $(ratio "${initial_first[rsyncd]}" "${initial_first[lanmirror]}") |"
echo "| server CPU per initial sync (s, first) | ${initial_cpu_first[rsyncd]} | ${initial_cpu_first[lanmirror]} | $(ratio "${initial_cpu_first[rsyncd]}" "${initial_cpu_first[lanmirror]}") |"
echo "| server CPU per initial sync, each (s) | $(printf '%s' "${initial_cpus[rsyncd]}" | paste -sd' ') | $(printf '%s' "${initial_cpus[lanmirror]}" | paste -sd' ') | |"
echo "| compression negotiated (initial sync) | ${initial_comp[rsyncd]:-?} | ${initial_comp[lanmirror]:-?} | |"
echo "| no-op sync, wall (s, median of $NOOP_RUNS) | ${noop[rsyncd]} | ${noop[lanmirror]} | $(ratio "${noop[rsyncd]}" "${noop[lanmirror]}") |"
echo "| server CPU per no-op sync (s, median) | ${cpu[rsyncd]} | ${cpu[lanmirror]} | $(ratio "${cpu[rsyncd]}" "${cpu[lanmirror]}") |"
echo "| $CLIENTS concurrent no-op syncs, wall (s) | ${conc[rsyncd]} | ${conc[lanmirror]} | $(ratio "${conc[rsyncd]}" "${conc[lanmirror]}") |"
echo "| $CLIENTS concurrent no-op syncs, server CPU (s) | ${conc_cpu[rsyncd]} | ${conc_cpu[lanmirror]} | $(ratio "${conc_cpu[rsyncd]}" "${conc_cpu[lanmirror]}") |"
