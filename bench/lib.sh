# Shared by the bench scripts (sourced, bash): cleanup of the processes a
# script starts and of its temporary directory, and free loopback ports.
# The caller sets $work to its temporary directory and appends the PIDs it
# starts to the pids array.

pids=()

# bench_cleanup stops the script's own processes (by PID) and removes $work.
bench_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${work:-}" ] && rm -rf "$work"
}
trap bench_cleanup EXIT

# free_port prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "${0##*/}: no free port" >&2
	exit 1
}

# wait_port waits (up to 20 s) until something listens on 127.0.0.1:$1.
wait_port() {
	for _ in $(seq 1 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
		sleep 0.1
	done
	echo "${0##*/}: nothing listens on port $1" >&2
	exit 1
}
