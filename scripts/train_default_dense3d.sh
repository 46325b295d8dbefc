#!/usr/bin/env bash
# The shipped Dense3D default, end to end: generate the scenes, train the cpu-tiny preset (U-Net stage, then
# the whole model), predict and score the val split beside the blind baselines, and copy the checkpoint to
# assets/dense3d (with --ship).
# Usage: [DENSE3D_SCENES=48] [DENSE3D_EXTRA_TRAIN_SCENES=48] scripts/train_default_dense3d.sh WORK_DIR [SEED] [--ship]
# The defaults are the shipped recipe (48 + 48 rooms, data seed 0). DENSE3D_SCENES rooms are split into
# train and val as usual; DENSE3D_EXTRA_TRAIN_SCENES more all go to train, so the val split and its files
# stay those of the DENSE3D_SCENES rooms.
# Resumable: rerun the same command after an interruption (synth skips finished scenes, training resumes).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:?usage: scripts/train_default_dense3d.sh WORK_DIR [SEED]}
seed=${2:-0}
data="$work/data-seed$seed"
run="$work/dense3d-cpu-tiny"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread: faster than two on a shared 2-core machine

scenes=${DENSE3D_SCENES:-48}
extra=${DENSE3D_EXTRA_TRAIN_SCENES:-48}
python -m core synth --out "$data" --scenes $((scenes + extra)) --val-from-first "$scenes" --seed "$seed" --frames 24
resume=""
[ -d "$run/checkpoints" ] && resume="--resume"
python -m core train dense3d --config cpu-tiny --data "$data" --out "$run" $resume
for task in refseg multi3drefer; do
  gt="$data/annotations/ScanRefer_filtered_val.json"
  [ "$task" = multi3drefer ] && gt="$data/annotations/multi3drefer_val.json"
  python -m core predict dense3d --checkpoint "$run/model" --scans "$data" --queries "$gt" \
      --out "$work/pred-$task.json" --task "$task" --details "$work/details-$task.json"
  python -m core eval "$task" --gt "$gt" --pred "$work/pred-$task.json" --scans "$data" \
      --out "$work/eval-$task.json" --no-meteor
done
python -m core baselines --data "$data" --split val --no-meteor --out "$work/baselines.json"
if [ "${3:-}" = "--ship" ]; then  # only after reading the scores beside the baselines
  rm -rf assets/dense3d && cp -r "$run/model" assets/dense3d
  printf '{"data_seed": %s, "scenes": %s, "extra_train_scenes": %s, "frames": 24, "script": "%s"}\n' \
      "$seed" "$scenes" "$extra" "scripts/train_default_dense3d.sh" > assets/dense3d/data.json
  echo "checkpoint: assets/dense3d (data seed $seed; recipe in assets/dense3d/training.json)"
else
  echo "checkpoint: $run/model (scores in $work/eval-*.json, baselines in $work/baselines.json);"
  echo "rerun with --ship as the third argument to copy it to assets/dense3d"
fi
