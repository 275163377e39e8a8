#!/usr/bin/env bash
# `make demo`: the main job on the bundled default, end to end and offline.
# A synthetic world stands in for YouTube: its MP4s are served from a loopback HTTP server and
# collected through the real yt-dlp path. Each later stage adds its step here.
set -euo pipefail
OUT=${1:-demo-out}
mkdir -p "$OUT"
echo "== 1. synthetic world (8 clips of 5 s, gold MS3 release) -> $OUT/world"
avs-tools synth "$OUT/world" --clips 8 --seconds 5 --seed 7 --gold avsbench-ms3
echo "== 2. workspace from the world's recipe -> $OUT/ws"
avs-tools init "$OUT/ws" --recipe "$OUT/world/recipe.toml"
echo "== 3. collect: serve the MP4s on 127.0.0.1 and download them with yt-dlp (--urls); --world keeps the"
echo "   world's video ids, splits and categories, so its gold release can score the export"
fifo=$(mktemp -u); mkfifo "$fifo"
python tools/serve.py "$OUT/world" >"$fifo" & server=$!
trap 'kill $server 2>/dev/null; rm -f "$fifo"' EXIT
read -r base <"$fifo"
sed "s|^|$base|" "$OUT/world/urls.txt" >"$OUT/urls.txt"
# direct media links carry no licence metadata: --any-license keeps them (YouTube results are checked for CC)
avs-tools collect "$OUT/ws" --urls "$OUT/urls.txt" --world "$OUT/world" --any-license --jobs 2
echo "== 4. sample: frames by the recipe's rule, 16 kHz WAV, VGGish log-mel, per-second sound activity"
avs-tools sample "$OUT/ws" --jobs 2
avs-tools preview "$OUT/ws" --out "$OUT/preview.png"
echo "== 5. preannotate: the default backend (weight-free motion + GrabCut, gated by sound activity; no checkpoints here)"
avs-tools preannotate "$OUT/ws"
avs-tools preview "$OUT/ws" --masks --out "$OUT/preview-masks.png"
echo "== 6. export (with the unreviewed proposals), validate, stats, and evaluate against the gold release"
echo "   (every split: predictions are read at the exact path of each gold mask)"
avs-tools export "$OUT/ws" "$OUT/release" --format avsbench-ms3 --include-unreviewed --force
avs-tools validate "$OUT/release" --format avsbench-ms3
avs-tools stats "$OUT/release" --format avsbench-ms3 --out "$OUT/stats.html"
for split in train val test; do
  avs-tools evaluate --format avsbench-ms3 --gt "$OUT/world/gold" --pred "$OUT/release" --split "$split"
done
echo "== 7. review in Label Studio: stage the workspace in a local server (one task per sampled frame, the"
echo "   proposals as predictions), if Label Studio is installed (make studio-install)"
if avs-tools studio start "$OUT/ws" 2>&1 | tee "$OUT/studio-start.log"; then
  avs-tools push "$OUT/ws"
  echo "   open the URL above and log in (password in $OUT/ws/studio/credentials); correct the masks, then:"
  echo "   avs-tools pull $OUT/ws && avs-tools qa $OUT/ws --html $OUT/qa.html   (stop: avs-tools studio stop $OUT/ws)"
elif grep -q "Label Studio is not installed" "$OUT/studio-start.log"; then
  echo "   skipped: Label Studio is not installed. Run \`make studio-install\` (its own virtual environment,"
  echo "   about 1 GB), then \`make demo\` again, or: avs-tools studio start $OUT/ws && avs-tools push $OUT/ws"
else
  exit 1
fi
echo "== status"
avs-tools status "$OUT/ws"
echo "== 8. release-check: is the export learnable, and does audio help? validate, stats, the trivial predictors,"
echo "   and two short baseline runs on this machine (ResNet-18 from scratch on CPU), with and without audio"
avs-tools release-check "$OUT/release" --format avsbench-ms3 --out "$OUT/check" --budget 120 --force
