#!/usr/bin/env bash
# Tree verification benchmark and cross-check: `lanmirror verify-tree` side by
# side with gemato (what Portage runs after emerge --sync) on the same
# generated, signed Gentoo-like tree, in one run.
#
#   GEMATO='env PYTHONPATH=/path/to/gemato-checkout python3 -m gemato' bench/treeverify.sh
#   BENCH_FILES=20000 GEMATO=... bench/treeverify.sh     # smaller and quicker
#
# gemato is not part of this project and not installed by it: GEMATO is the
# command that runs it (a checkout of github.com/gentoo/gemato run with
# PYTHONPATH, or an installed `gemato`); it needs gpg. The script fails when
# GEMATO is not set or does not run.
#
# 1. Speed: bench/gentree writes a tree of BENCH_FILES files (default
#    150,000, the size of the gentoo tree) with GLEP 74 Manifests in the
#    gentoo rsync tree's layout, the top-level one clear-signed with a
#    generated key. Both verifiers check it with that key, warm page cache,
#    taking turns, BENCH_RUNS times each (default 3); the table gives the
#    median wall time, the CPU time (user+sys, children included) and the
#    ratio lanmirror / gemato (target: <= 0.3). Both must say the tree is good.
# 2. Verdicts: bench/treecases writes a good tree of BENCH_CROSS_FILES files
#    (default 2000) and copies broken one way each (a changed byte, a missing
#    file, an unlisted file, a corrupt Manifest.gz, a bad signature, a wrong
#    key, an expired signature, an expired key, no signature, unsigned data
#    after the signature, a too old TIMESTAMP); each tool's verdict is
#    printed with its first error line. Two rows are expected differences:
#    gemato verify does not check the TIMESTAMP's age (Portage does that
#    itself), and gemato accepts a signature made before its key expired
#    where lanmirror refuses any signature by an expired key. The script
#    exits non-zero on any other disagreement.
#
# Commands: lanmirror verify-tree --openpgp-key K DIR; gemato verify -K K -R -s DIR
# (-R: no key refresh over the network; -s: the top-level Manifest must be signed).
# Trees live in BENCH_TMP (default /dev/shm when it has 4 GiB free, else /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${BENCH_FILES:-150000}
RUNS=${BENCH_RUNS:-3}
CROSS_FILES=${BENCH_CROSS_FILES:-2000}

if [ -z "${GEMATO:-}" ]; then
	echo "bench/treeverify.sh: set GEMATO to the gemato command, e.g." >&2
	echo "  GEMATO='env PYTHONPATH=/src/gemato python3 -m gemato' $0" >&2
	echo "(gemato is not installed by lanmirror; a checkout of https://github.com/gentoo/gemato runs from its directory with python3 and gpg)" >&2
	exit 1
fi
read -r -a gemato <<<"$GEMATO"
if ! "${gemato[@]}" verify --help >/dev/null 2>&1; then
	echo "bench/treeverify.sh: GEMATO='$GEMATO' does not run (\`$GEMATO verify --help\` failed)" >&2
	exit 1
fi
for tool in go gpg; do
	command -v "$tool" >/dev/null || { echo "bench/treeverify.sh: $tool not found" >&2; exit 1; }
done

base=${BENCH_TMP:-}
if [ -z "$base" ]; then
	base=/tmp
	if [ -d /dev/shm ] && [ -w /dev/shm ] &&
		[ "$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')" -ge $((4 * 1024 * 1024)) ]; then
		base=/dev/shm
	fi
fi
work=$(mktemp -d "$base/lanmirror-bench-treeverify.XXXXXX")
. bench/lib.sh # (the script runs from the repository root)

go build -o "$work/lanmirror" ./cmd/lanmirror
go build -o "$work/gentree" ./bench/gentree
go build -o "$work/treecases" ./bench/treecases
lanmirror=("$work/lanmirror" verify-tree)

# timed OUT CMD...: runs CMD, stdout+stderr to OUT, prints "wall cpu status".
timed() {
	local out=$1 t status
	shift
	TIMEFORMAT='%R %U %S'
	set +e
	t=$({ time "$@" >"$out" 2>&1; } 2>&1)
	status=$?
	set -e
	awk -v s="$status" '{ printf "%.3f %.3f %d\n", $1, $2 + $3, s }' <<<"$t"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "generating a signed tree of about $FILES files in $work ..." >&2
"$work/gentree" -dir "$work/tree" -files "$FILES" -sign-key "$work/key.asc" >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# Warm the page cache (and check both accept the tree) before timing.
read -r _ _ s <<<"$(timed "$work/warm-lanmirror.out" "${lanmirror[@]}" --openpgp-key "$work/key.asc" "$work/tree")"
[ "$s" = 0 ] || { echo "lanmirror refused the good tree:" >&2; cat "$work/warm-lanmirror.out" >&2; exit 1; }
read -r _ _ s <<<"$(timed "$work/warm-gemato.out" "${gemato[@]}" verify -K "$work/key.asc" -R -s "$work/tree")"
[ "$s" = 0 ] || { echo "gemato refused the good tree:" >&2; cat "$work/warm-gemato.out" >&2; exit 1; }

: >"$work/gemato.times"
: >"$work/lanmirror.times"
for i in $(seq 1 "$RUNS"); do
	read -r w c s <<<"$(timed "$work/gemato.out" "${gemato[@]}" verify -K "$work/key.asc" -R -s "$work/tree")"
	[ "$s" = 0 ] || { echo "gemato run $i failed:" >&2; cat "$work/gemato.out" >&2; exit 1; }
	echo "$w $c" >>"$work/gemato.times"
	read -r w c s <<<"$(timed "$work/lanmirror.out" "${lanmirror[@]}" --openpgp-key "$work/key.asc" "$work/tree")"
	[ "$s" = 0 ] || { echo "lanmirror run $i failed:" >&2; cat "$work/lanmirror.out" >&2; exit 1; }
	echo "$w $c" >>"$work/lanmirror.times"
	echo "run $i: gemato $(tail -1 "$work/gemato.times"), lanmirror $(tail -1 "$work/lanmirror.times") (wall cpu, s)" >&2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
gw=$(cut -d' ' -f1 "$work/gemato.times" | median)
gc=$(cut -d' ' -f2 "$work/gemato.times" | median)
lw=$(cut -d' ' -f1 "$work/lanmirror.times" | median)
lc=$(cut -d' ' -f2 "$work/lanmirror.times" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo
echo "Tree: $(head -1 "$work/lanmirror.out" | sed 's/^.*good tree, //')"
echo "Machine: $(nproc) cores; load average before $load_before, after $load_after; gemato $(git -C "${GEMATO_SRC:-.}" describe --tags 2>/dev/null || echo '(version unknown)'), $(gpg --version | head -1)"
echo
echo "| measure (median of $RUNS) | gemato | lanmirror | lanmirror / gemato | target |"
echo "|---|---:|---:|---:|---|"
echo "| verify the tree, wall (s) | $gw | $lw | $(ratio "$lw" "$gw") | <= 0.3 |"
echo "| verify the tree, CPU user+sys (s) | $gc | $lc | $(ratio "$lc" "$gc") | |"

echo
echo "generating the cross-check trees (about $CROSS_FILES files each) ..." >&2
"$work/treecases" -dir "$work/cases" -files "$CROSS_FILES" >"$work/cases.txt"
verdict() { if [ "$1" = 0 ]; then echo good; else echo refused; fi; }
# first_error FILE: the first line saying why: lanmirror prints one problem
# per line; gemato logs "[  ERROR] ..." (else its last line says why).
first_error() {
	local l
	l=$(grep -m1 -E '^\[ *ERROR\]' "$1" || true)
	[ -n "$l" ] || l=$(grep -v -E '^\[ *INFO\]' "$1" | grep -v '^lanmirror: ' | head -1 || true)
	[ -n "$l" ] || l=$(tail -1 "$1")
	l=$(sed -E 's/^\[ *ERROR\] *//; s/\|/\\|/g' <<<"$l" | cut -c1-160)
	echo "${l:--}"
}
bad=0
echo "| tree | expected | lanmirror | gemato | agree | lanmirror says | gemato says |"
echo "|---|---|---|---|---|---|---|"
while IFS=$'\t' read -r name tree key args want; do
	extra=()
	[ "$args" = - ] || extra=("$args")
	read -r _ _ ls <<<"$(timed "$work/l.out" "${lanmirror[@]}" --openpgp-key "$key" "${extra[@]}" "$tree")"
	read -r _ _ gs <<<"$(timed "$work/g.out" "${gemato[@]}" verify -K "$key" -R -s "$tree")"
	lv=$(verdict "$ls")
	gv=$(verdict "$gs")
	agree=yes
	if [ "$lv" != "$gv" ]; then
		if [ "$name" = timestamp-too-old ] && [ "$gv" = good ]; then
			agree="expected: gemato verify does not check the age"
		elif [ "$name" = key-expired-since-signing ] && [ "$gv" = good ]; then
			agree="expected: gemato accepts a signature made before the key expired"
		else
			agree=NO
			bad=1
		fi
	fi
	[ "$lv" = "$want" ] || { agree="$agree; lanmirror NOT $want"; bad=1; }
	lmsg=-
	[ "$lv" = good ] || lmsg=$(first_error "$work/l.out")
	gmsg=-
	[ "$gv" = good ] || gmsg=$(first_error "$work/g.out")
	echo "| $name | $want | $lv | $gv | $agree | $lmsg | $gmsg |"
done <"$work/cases.txt"
if [ "$bad" != 0 ]; then
	echo "bench/treeverify.sh: verdicts disagree (see the table)" >&2
	exit 1
fi
