#!/usr/bin/env bash
# Backbone / input-size sweep at equal wall time: every candidate trains from scratch on the
# same data mix, all at once, one thread each, so they share the CPU (and whatever else runs)
# equally. Usage: bash scripts/sweep.sh [MINUTES]   (logs: runs/sweep/NAME/train.log)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-45}
hours=$(python3 -c "print(round($minutes / 60, 4))")
candidates=(
  "mobilenetv4_conv_small 96 fp32"
  "resnet18 64 bf16"
  "efficientnet_b0 64 fp32"
  "resnet18d 80 bf16"
)
for candidate in "${candidates[@]}"; do
  read -r backbone size precision <<<"$candidate"
  run="runs/sweep/${backbone}_${size}"
  mkdir -p "$run"
  nohup python3 -m face_mtl train --backbone "$backbone" --input-size "$size" --precision "$precision" \
    --run-dir "$run" --max-hours "$hours" --epochs 100 --lr 2e-3 --warmup-epochs 0.3 \
    --loss-teacher 0 --threads 1 --seed 0 >"$run/stdout.log" 2>&1 &
  echo "$backbone $size px $precision: pid $! -> $run"
done
