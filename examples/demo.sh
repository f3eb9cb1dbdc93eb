#!/usr/bin/env bash
# Runs each example program on this machine's own files and processes, with
# a heading that describes what it shows. Takes about 4 seconds.
#
# Usage: examples/demo.sh EXAMPLES_DIR
#   EXAMPLES_DIR is the directory of the built examples: `make demo` passes
#   build/examples.
#
# Exits 1 if any example is missing, fails or runs longer than 30 seconds.
set -euo pipefail

if (($# != 1)); then
  echo "usage: $0 EXAMPLES_DIR (the directory of the built examples," \
    "build/examples after make build)" >&2
  exit 2
fi
if [[ ! -d $1 ]]; then
  echo "demo: $1 is not a directory; run make build first" >&2
  exit 1
fi
# Absolute, because the first example runs in another directory.
examples_dir=$(cd "$1" && pwd)
# The examples' sources, for the Node.js script that fork-node runs.
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

passed=0
failed=0

# heading LINE...: prints the lines between two rules of '#'.
heading() {
  local rule
  rule=$(printf '%.0s#' {1..72})
  printf '\n%s\n' "$rule"
  printf '# %s\n' "$@"
  printf '%s\n' "$rule"
}

# run NAME [ARG...]: runs one example, stdin closed, and counts the outcome.
run() {
  local name=$1
  local program=$examples_dir/$name
  local status=0
  shift

  if [[ ! -x $program ]]; then
    echo "demo: $program not found or not executable; run make build" >&2
    failed=$((failed + 1))
    return
  fi

  timeout 30 "$program" "$@" </dev/null || status=$?
  if ((status == 0)); then
    passed=$((passed + 1))
  elif ((status == 124)); then
    echo "demo: $name timed out after 30 s and was stopped" >&2
    failed=$((failed + 1))
  else
    echo "demo: $name failed with exit status $status" >&2
    failed=$((failed + 1))
  fi
}

# A file big enough to give scene 7 of signals a few tens of milliseconds of
# CPU time: gcc's compiler proper, present wherever this project was built.
hash_file=$(gcc -print-prog-name=cc1 2>/dev/null || true)
if [[ ! -f $hash_file ]]; then
  hash_file=/usr/bin/cmake
fi

heading "first: spawn \`ls -l\` in /usr, print its stdout and exit code" \
  "(the program in README.md)"
cd /usr
run first
cd - >/dev/null

heading "pipeline: find /usr/include | sort | head as three children joined" \
  "by cp_stream_pipe(). The bytes pass through this process with" \
  "backpressure, and sort dies of SIGPIPE once head stops reading, as in a" \
  "shell."
run pipeline /usr/include

heading "follow: read a shell loop's output line by line, with UTF-8 decoding" \
  "and a line buffer. The timeout option stops it with SIGTERM after 2.1 s."
run follow

heading "signals: kill by number and by name, a SIGTERM trap, SIGKILL after a" \
  "grace period, a process group, kill after exit, and resource usage" \
  "(CPU time, peak RSS) of sha256sum over $hash_file."
run signals "$hash_file"

heading "spawn_errors: a missing program, a file without execute permission" \
  "and bad working directories arrive as ERROR events, then CLOSE."
run spawn_errors

heading "worker-pool: 4 forked C workers each read files under /usr/include" \
  "and send back byte and line counts and an FNV-1a hash over the IPC" \
  "channel, with at most 2 jobs in flight per worker. -k kills worker 1" \
  "halfway: its jobs in flight go to the others."
run worker-pool -k /usr/include 4

heading "prefork-server: the parent listens on a loopback port and sends the" \
  "listening socket to 4 forked C workers as a net.Server handle, then" \
  "closes its own copy. The workers accept on it in competition and answer" \
  "300 HTTP requests that the parent makes, 16 at a time. The kernel picks" \
  "the worker for each connection, so the spread is uneven."
run prefork-server --workers 4 --requests 300

heading "fork-node: a C parent forks a Node.js script and exchanges messages" \
  "with it (non-ASCII text, a nested object, an internal NODE_ message)," \
  "then disconnects. Prints a note and passes when node is not installed."
run fork-node "$script_dir/node/worker.js"

printf '\ndemo: %d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
