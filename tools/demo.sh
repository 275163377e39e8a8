#!/usr/bin/env bash
# `make demo`: the main job on the bundled default, end to end, offline.
# A synthetic world stands in for YouTube; each later stage adds its step here.
set -euo pipefail
OUT=${1:-demo-out}
mkdir -p "$OUT"
echo "== 1. synthetic world (8 clips of 5 s, gold MS3 release) -> $OUT/world"
avs-tools synth "$OUT/world" --clips 8 --seconds 5 --seed 7 --gold avsbench-ms3
echo "== 2. workspace from the world's recipe -> $OUT/ws"
avs-tools init "$OUT/ws" --recipe "$OUT/world/recipe.toml"
echo "== status"
avs-tools status "$OUT/ws"
