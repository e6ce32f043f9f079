#!/usr/bin/env bash
# pgward benchmark (issue #10): direct vs pgbouncer vs pgward, side by side;
# pgward with vs without policies (issue #12); token logins, cold vs warm token cache (issue #11).
#
# Usage: bench/run.sh [--quick] [--no-build]
#   --quick     same as BENCH_QUICK=1
#   --no-build  skip `npm run build` and the bench compile (reuse dist/ and dist-bench/)
#
# Environment:
#   BENCH_QUICK=1      3 s runs and COPY sizes of 20 MB / 200 MB (instead of 200 MB / 2 GB)
#   BENCH_SECONDS=N    length of each pgbench run (-T), and of each token-login batch; default 8, or 3 in quick mode
#   BENCH_ROUNDS=N     runs per target per matrix cell, median reported; default 2
#                      (policy and tokens phases: default 3 rounds, or N when set)
#   BENCH_PHASES=...   any of: pgbench,sessions,copy,policy,tokens (default: all five)
#                        policy: pgbench -S -n c=16, prepared (goal >= 0.95) and simple, as a restricted
#                                identity through pgward with vs without policies; plan cache counters
#                        tokens: conn/s with a new token per connection (cold) vs one cached token (warm)
#                                through pgward in oidc mode, passthrough SCRAM as reference; issuer fetches
#   BENCH_CELLS=goal   run only the goal cell of the pgbench matrix (select-only, prepared, 16 clients),
#                      and of the policy phase (the same cell with and without policies)
#   BENCH_SESSIONS=N   concurrent sessions for the memory-per-session probe; default 500
#   BENCH_SCALE=N      pgbench -i scale factor; default 10
#
# Needs: pgbench and psql on PATH; pgbouncer (installed with apt-get when missing and run as root).
# The report goes to stdout, progress to stderr. Exit 0 unless something broke
# (a failed run, a crashed proxy): the ratios are a report, not a test.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

build=1
for arg in "$@"; do
  case "$arg" in
    --quick) export BENCH_QUICK=1 ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,25p' "$here/run.sh" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if [ "$build" = 1 ]; then
  npm run build --silent
  npx tsc -p bench
fi
exec node dist-bench/bench/main.js
