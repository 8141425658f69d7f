#!/usr/bin/env bash
# Rebuild the shipped default model from nothing: data set, float models, NetSpec, samples,
# and the accuracy figures quoted in README.md. About 30 minutes on 2 CPU cores (two trainings side
# by side, one thread each: sparse 40 epochs, cosine learning rate, weight decay; dense 24 epochs).
#   bash scripts/make_default_model.sh [WORK_DIR]      (default WORK_DIR: runs/default)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-runs/default}
data=data/gsc-synth
assets=sw/assets
SPARSE_EPOCHS=${SPARSE_EPOCHS:-40}
DENSE_EPOCHS=${DENSE_EPOCHS:-24}
LR=${LR:-0.05}

[ -d "$data" ] || cosparse data synth --out "$data" --seed 0
cosparse train --data "$data" --out "$work/sparse" --epochs "$SPARSE_EPOCHS" --lr "$LR" \
  --lr-schedule cosine --weight-decay 5e-4 --kwta-noise 0.25 --threads 1 --quiet &
cosparse train --data "$data" --out "$work/dense" --dense --epochs "$DENSE_EPOCHS" --lr "$LR" --threads 1 --quiet &
wait
# Default precision: 16-bit conv1 weights, 4 fraction bits before the local k-WTAs
# (docs/default-model.md, "Precision").
cosparse export --checkpoint "$work/sparse/best.pt" --data "$data" --out "$assets/default/netspec" \
  --name gsc-sparse
cp "$work/sparse/best.pt" "$assets/default/sparse.pt"
cosparse data synth --out "$assets/samples" --samples --quiet
cosparse evaluate --dataset "$data" --split testing --dense-checkpoint "$work/dense/best.pt" --json \
  | tee "$assets/default/evaluation.json"
