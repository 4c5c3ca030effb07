#!/usr/bin/env bash
# 1. Compress a photograph with the model shipped in the package and decode it at three realism
#    weights (seconds). 2. Train the tiny codec on the built-in sample images and evaluate it against
#    JPEG/WebP/AVIF (a few minutes on 2 CPU cores). Offline throughout.
# On a busy machine OMP_NUM_THREADS=1 is often faster than the default thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=runs/quickstart
mkdir -p "$OUT"

"$BIN/python" -c "from skimage import data; from PIL import Image; Image.fromarray(data.astronaut()).save('$OUT/astronaut.png')"
"$BIN/multirealism" compress "$OUT/astronaut.png" "$OUT/astronaut.mrc" --quality 2 --force
"$BIN/multirealism" info "$OUT/astronaut.mrc"
"$BIN/multirealism" decompress "$OUT/astronaut.mrc" "$OUT/astronaut.png.out.png" \
    --beta 0 --beta 2.56 --beta 5.12 --force

"$BIN/multirealism" fit --config configs/tiny.yaml
CKPT=runs/tiny/checkpoints/last.ckpt
"$BIN/multirealism" evaluate --ckpt "$CKPT" --data samples --betas 0 2.56 5.12 \
    --baselines jpeg webp avif --out "$OUT/eval" --fid-extractor none
