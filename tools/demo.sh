#!/usr/bin/env bash
# `make demo`: the main job on the bundled default, end to end and offline.
# A synthetic world stands in for YouTube: its MP4s are served from a loopback HTTP server and
# collected through the real yt-dlp path; Label Studio (make studio-install) runs on loopback, and a scripted
# annotator reviews a few tasks through its API.
set -euo pipefail
OUT=${1:-demo-out}
TONES_CLIPS=${TONES_CLIPS:-60}  # the release-check world: 60 clips -> 42 train, 9 val, 9 test (a verdict needs 5)
CHECK_BUDGET=${CHECK_BUDGET:-360}  # seconds of training, both runs together (wall time: a loaded machine gets fewer epochs)
mkdir -p "$OUT"
echo "== 1. synthetic world (8 clips of 5 s, gold MS3 release) -> $OUT/world"
avs-tools synth "$OUT/world" --clips 8 --seconds 5 --seed 7 --gold avsbench-ms3
echo "== 2. workspace from the world's recipe -> $OUT/ws"
avs-tools init "$OUT/ws" --recipe "$OUT/world/recipe.toml"
echo "== 3. collect: serve the MP4s on 127.0.0.1 and download them with yt-dlp (--urls); --world keeps the"
echo "   world's video ids, splits and categories, so its gold release can score the export"
fifo=$(mktemp -u); mkfifo "$fifo"
python tools/serve.py "$OUT/world" >"$fifo" & server=$!
trap 'rc=$?; kill $server 2>/dev/null; rm -f "$fifo"; if [ $rc -ne 0 ] && [ -f "$OUT/ws/studio/server.json" ]; then
  echo "demo stopped (exit $rc); Label Studio may still be running: avs-tools studio stop $OUT/ws"; fi' EXIT
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
echo "== 6. review in Label Studio (make demo installed it: make studio-install): the workspace's own server on"
echo "   127.0.0.1, one task per sampled frame with the proposals as predictions"
avs-tools studio start "$OUT/ws"
avs-tools push "$OUT/ws"
echo "== 7. a SCRIPTED annotator (not a person: the Label Studio user scripted-annotator@avs-tools.invalid, its"
echo "   lead_time its real decision time) reviews a few tasks through the Label Studio API: accept one unchanged,"
echo "   grow one mask, delete the objects of a second the audio says is silent, relabel one object"
python -m avsbench_tools.studio.scripted "$OUT/ws"
echo "== 8. pull the reviews, and qa: what the review changed, per object; time per frame (the script's)"
avs-tools pull "$OUT/ws"
avs-tools qa "$OUT/ws" --html "$OUT/qa.html"
echo "== 9. export the reviewed release (reviewed frames carry their review, the others their proposals:"
echo "   --include-unreviewed), validate, stats, and evaluate against the gold release"
echo "   (every split: predictions are read at the exact path of each gold mask)"
avs-tools export "$OUT/ws" "$OUT/release" --format avsbench-ms3 --include-unreviewed --force
avs-tools validate "$OUT/release" --format avsbench-ms3
avs-tools stats "$OUT/release" --format avsbench-ms3 --out "$OUT/stats.html"
for split in train val test; do
  avs-tools evaluate --format avsbench-ms3 --gt "$OUT/world/gold" --pred "$OUT/release" --split "$split"
done
echo "== status"
avs-tools status "$OUT/ws"
echo "== 10. release-check: is a release learnable, and does audio help? The 8-clip release above has 1 test clip,"
echo "   too few for a verdict, so the check runs on the gold release of a tones world sized for one ($TONES_CLIPS"
echo "   clips of 3 same-shape circles, one sounding per clip: only the audio says which; about $(( TONES_CLIPS * 15 / 100 ))"
echo "   test clips): validate, stats, the trivial predictors, and two short baseline runs on this machine"
echo "   (a quarter-width ResNet-18 from scratch on CPU, ${CHECK_BUDGET} s in all), with and without audio"
avs-tools synth "$OUT/tones" --clips "$TONES_CLIPS" --seconds 5 --size 64x64 --fps 10 --seed 2 \
  --gold avsbench-ms3 --scene tones
# one torch thread: on a shared 2-core machine two threads wait on each other (an epoch of 21 steps took 146 s
# under a load of 10, 1 epoch per run and "cannot tell"); the budget is wall time either way
OMP_NUM_THREADS=1 avs-tools release-check "$OUT/tones/gold" --format avsbench-ms3 --out "$OUT/check" \
  --budget "$CHECK_BUDGET" --force
echo "== done in $(( SECONDS / 60 )) min $(( SECONDS % 60 )) s. Label Studio is still running (the reviews: open its URL,"
echo "   password in $OUT/ws/studio/credentials); stop it with: avs-tools studio stop $OUT/ws"
