#!/usr/bin/env bash
# Go micro-benchmarks of the hot path (docs/performance.md): the wire
# codec, one PLAIN request through the engine, and one PLAIN request through
# a real client socket, each with allocations; then where the allocations
# and the CPU time of the client-socket request go.
#
#   scripts/bench-micro.sh [OUTDIR]     (default: bin/bench-micro)
#
# Environment: GO (default go), BENCHTIME (default 2s), COUNT (default 1),
# SUB: the client-socket sub-benchmark to profile (default the cached PLAIN
# request, ClientSocketPlain/cached-plain/conns=8/depth=8; the passwd-file
# one is ClientSocketPlain/passwd-file/conns=8/depth=8).
set -euo pipefail
GO=${GO:-go}
BENCHTIME=${BENCHTIME:-2s}
COUNT=${COUNT:-1}
out=${1:-bin/bench-micro}
mkdir -p "$out"

echo "== benchmarks (-benchtime $BENCHTIME, -count $COUNT)"
"$GO" test -run '^$' -bench 'Codec|ClientSocket' -benchmem -benchtime "$BENCHTIME" -count "$COUNT" ./internal/dovecot | tee "$out/dovecot.txt"
"$GO" test -run '^$' -bench 'Verify' -benchmem -benchtime "$BENCHTIME" -count "$COUNT" ./internal/engine | tee "$out/engine.txt"

# One sub-benchmark, so the profiles are not a mix of passdbs and
# concurrency levels. Anchored per level, so it matches exactly one.
sub=${SUB:-ClientSocketPlain/cached-plain/conns=8/depth=8}
sub="$(printf %s "$sub" | sed 's,/,$/^,g')\$"

echo
echo "== allocations per client-socket PLAIN request, by function (every allocation sampled)"
"$GO" test -run '^$' -bench "$sub" -benchmem -benchtime 100000x -memprofilerate 1 \
	-memprofile "$out/mem.out" -o "$out/dovecot.test" ./internal/dovecot >/dev/null
"$GO" tool pprof -sample_index=alloc_objects -top -nodecount 30 "$out/dovecot.test" "$out/mem.out" 2>/dev/null | sed -n '5,40p'

echo
echo "== CPU of the client-socket PLAIN request (client and server in one process)"
"$GO" test -run '^$' -bench "$sub" -benchtime 300000x -cpuprofile "$out/cpu.out" -o "$out/dovecot.test" ./internal/dovecot >/dev/null
"$GO" tool pprof -top -cum -nodecount 45 "$out/dovecot.test" "$out/cpu.out" 2>/dev/null | sed -n '5,55p'

echo
echo "profiles in $out: go tool pprof -http=: $out/dovecot.test $out/cpu.out"
