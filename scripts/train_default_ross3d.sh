#!/usr/bin/env bash
# The shipped Ross3D default, end to end: generate the scenes, train the cpu-tiny preset (about 25-35 min on
# 2 CPU cores), predict and score the val split on all five benchmarks beside the blind baselines, and copy
# the checkpoint to assets/ross3d. With --text-only, also train and score the same preset on blanked frames
# (the text-only run the README compares against; another 25-35 min).
# Usage: scripts/train_default_ross3d.sh WORK_DIR [SEED] [--text-only]
# Resumable: rerun the same command after an interruption (synth skips finished scenes, training resumes).
# ROSS3D_SCENES rooms (default 48) are split into train and val as usual; ROSS3D_EXTRA_TRAIN_SCENES more rooms
# (default 48) all go to train, so the val split and its files stay those of the ROSS3D_SCENES rooms. The
# defaults are the shipped checkpoint's recipe (86 train rooms, 10 val rooms).
# For a quick check of the pipeline: ROSS3D_SCENES=3 ROSS3D_EXTRA_TRAIN_SCENES=0 ROSS3D_STEPS=2 ROSS3D_ASSETS=/tmp/ross3d-check ...
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:?usage: scripts/train_default_ross3d.sh WORK_DIR [SEED] [--text-only]}
seed=${2:-0}
text_only=${3:-}
scenes=${ROSS3D_SCENES:-48}
extra=${ROSS3D_EXTRA_TRAIN_SCENES:-48}
assets=${ROSS3D_ASSETS:-assets/ross3d}
steps=()
[ -n "${ROSS3D_STEPS:-}" ] && steps=(--steps "$ROSS3D_STEPS")
data="$work/data-seed$seed"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread: faster than two on a shared 2-core machine

gt_of() {  # the val benchmark file `core eval` scores a task against
  case $1 in
    scanqa) echo "$data/annotations/ScanQA_v1.0_val.json" ;;
    sqa3d) echo "$data/annotations/v1_balanced_questions_val_scannetv2.json" ;;
    scan2cap | scanrefer) echo "$data/annotations/ScanRefer_filtered_val.json" ;;
    multi3drefer) echo "$data/annotations/multi3drefer_val.json" ;;
  esac
}

train_and_score() {  # PRESET RUN_DIR TAG
  local preset=$1 run=$2 tag=$3 resume=""
  [ -d "$run/checkpoints" ] && resume="--resume"
  python -m core train ross3d --config "$preset" --data "$data" --out "$run" $resume "${steps[@]}"
  for task in scanqa sqa3d scan2cap scanrefer multi3drefer; do
    python -m core predict ross3d --task "$task" --checkpoint "$run/model" --data "$data" --split val \
        --out "$work/$tag-pred-$task.json" --details "$work/$tag-details-$task.json"
    python -m core eval "$task" --gt "$(gt_of "$task")" --pred "$work/$tag-pred-$task.json" --scans "$data" \
        --out "$work/$tag-eval-$task.json" --no-meteor
  done
}

python -m core synth --out "$data" --scenes $((scenes + extra)) --val-from-first "$scenes" --seed "$seed" --frames 24
train_and_score cpu-tiny "$work/ross3d-cpu-tiny" ross3d
if [ "$text_only" = "--text-only" ]; then
  preset="$work/cpu-tiny-text-only.json"
  python - "$preset" <<'PY'
import json, sys
from core.train.cli import load_preset
preset = load_preset("ross3d", "cpu-tiny")
preset.pop("source")
preset["data"]["blank_frames"] = True
preset["notes"] = "cpu-tiny with every frame blanked (zero pixels, no depth): the text-only run."
open(sys.argv[1], "w").write(json.dumps(preset, indent=1))
PY
  train_and_score "$preset" "$work/ross3d-text-only" text-only
fi
python -m core baselines --data "$data" --split val --no-meteor --out "$work/baselines.json"
rm -rf "$assets" && cp -r "$work/ross3d-cpu-tiny/model" "$assets"
printf '{"data_seed": %s, "scenes": %s, "extra_train_scenes": %s, "frames": 24, "script": "%s"}\n' \
    "$seed" "$scenes" "$extra" "scripts/train_default_ross3d.sh" > "$assets/data.json"
echo "checkpoint: $assets (data seed $seed; recipe in $assets/training.json)"
