#!/usr/bin/env bash
# `make bench`: every benchmark script; each prints its ratios against a named baseline.
set -euo pipefail
cd "$(dirname "$0")"
for b in bench_*.py; do
  echo "== $b"
  python "$b"
done
