#!/usr/bin/env bash
# Runs every ctest case of a configured and built tree under valgrind's
# memcheck, and fails if any case fails or valgrind reports an error or a
# definite or indirect leak.
#
# Usage: scripts/valgrind.sh [BUILD_DIR] [CTEST_ARGS...]   (default: build)
#
# Only the test programs run under valgrind: the processes they start (sh,
# cat, helper programs) run natively, because of --trace-children=no.
set -euo pipefail

build_dir=${1:-build}
shift || true

if ! command -v valgrind >/dev/null 2>&1; then
  echo "valgrind.sh: valgrind not found; install it with:" \
    "apt-get install valgrind" >&2
  exit 1
fi
if [[ ! -f $build_dir/CTestTestfile.cmake ]]; then
  echo "valgrind.sh: $build_dir has no tests; configure and build it first" \
    "(make build)" >&2
  exit 1
fi

valgrind_options=(
  --leak-check=full
  --errors-for-leak-kinds=definite,indirect
  --error-exitcode=99
  --track-fds=no
  --trace-children=no
  # Under valgrind every spawn takes the fork path; a forked child that
  # fails to exec would print the parent's heap, other threads' included.
  --child-silent-after-fork=yes
  --num-callers=40
)

log_dir=$build_dir/Testing/Temporary
mkdir -p "$log_dir"
rm -f "$log_dir"/MemoryChecker.*.log

# `ctest -T memcheck` reads its settings from DartConfiguration.tcl, which
# only include(CTest) writes. An empty file stops ctest from warning about
# its absence; the --overwrite options below supply every setting it needs.
if [[ ! -f $build_dir/DartConfiguration.tcl ]]; then
  : >"$build_dir/DartConfiguration.tcl"
fi

status=0
(cd "$build_dir" && ctest -T memcheck \
  --overwrite "MemoryCheckCommand=$(command -v valgrind)" \
  --overwrite "MemoryCheckCommandOptions=${valgrind_options[*]}" \
  -j2 --output-on-failure --no-label-summary "$@") || status=$?

# A failed case's program output is above; valgrind's report went to a log
# file per test, named by test number.
shopt -s nullglob
for log in "$log_dir"/MemoryChecker.*.log; do
  if grep -q -E 'ERROR SUMMARY: [1-9]' "$log"; then
    echo "==== valgrind report: $log"
    cat "$log"
    status=1
  fi
done

if ((status == 0)); then
  echo "valgrind.sh: no valgrind errors in any test case"
else
  echo "valgrind.sh: failed (see the output above)" >&2
fi
exit "$status"
