#!/usr/bin/env bash
# make fuzz: every fuzz target of the module for FUZZTIME each, one after
# the other (go test -fuzz takes one target per run). A failing target
# does not stop the others; the run fails at the end and names them. Go
# writes each failing input to the package's testdata/fuzz/<target>/;
# committed, it is a seed that plain go test replays (docs/testing.md §6.1).
#
# Environment: GO (go), FUZZTIME (10s), FUZZMINIMIZE (50x: the executions
# spent minimizing each new input; the session targets take milliseconds
# per execution, and minimizing every input that adds coverage would eat
# their short run), PKGS (./...).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
FUZZMINIMIZE=${FUZZMINIMIZE:-50x}
PKGS=${PKGS:-./...}

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# "package target" pairs, from the test files of the default build (a file
# behind a build tag is not compiled, so its targets are not listed).
# shellcheck disable=SC2086 # PKGS is a list of patterns
listing=$("$GO" list -f '{{.ImportPath}}{{range .TestGoFiles}} {{$.Dir}}/{{.}}{{end}}{{range .XTestGoFiles}} {{$.Dir}}/{{.}}{{end}}' $PKGS)
targets=()
while read -r pkg files; do
  [[ -n $files ]] || continue
  # shellcheck disable=SC2086 # files is a list of paths without spaces
  while read -r t; do
    targets+=("$pkg $t")
  done < <(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $files)
done <<<"$listing"

# deadline_flake: the run of target $1 failed only with the bare "context
# deadline exceeded" Go 1.26's fuzzing coordinator reports when -fuzztime
# ends while a worker is busy (golang/go#75804), and wrote no failing input.
deadline_flake() {
  ! grep -q 'Failing input written to' "$log" &&
    [[ $(sed -n "/^--- FAIL: $1 (/,/^FAIL\$/p" "$log" | sed '1d;$d') == '    context deadline exceeded' ]]
}

echo "fuzz: ${#targets[@]} targets, $FUZZTIME each"
start=$SECONDS
failed=() flaked=()
for entry in "${targets[@]}"; do
  read -r pkg t <<<"$entry"
  t0=$SECONDS
  if "$GO" test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZE" "$pkg" >"$log" 2>&1; then
    execs=$(sed -n 's/.*execs: \([0-9]*\) .*/\1/p' "$log" | tail -n 1)
    echo "ok    $pkg $t ($((SECONDS - t0))s, ${execs:-?} execs)"
  elif deadline_flake "$t" && "$GO" test -count=1 -run "^$t\$" "$pkg" >/dev/null 2>&1; then
    # Not a finding: nothing was written, and the seeds still pass.
    echo "flake $pkg $t: Go's \"context deadline exceeded\" at the end of -fuzztime, no failing input; the seeds pass"
    flaked+=("$pkg.$t")
  else
    echo "FAIL  $pkg $t"
    cat "$log"
    failed+=("$pkg.$t")
  fi
done

echo "fuzz: ${#targets[@]} targets in $((SECONDS - start))s; ${#flaked[@]} deadline flakes${flaked[*]:+: ${flaked[*]}}"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
