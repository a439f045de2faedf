#!/usr/bin/env bash
# The studies behind docs/study.md, each a resumable `gankit study`: run it again (same name) and it continues
# where it stopped (finished seeds are read, stopped ones resume from their last checkpoint).
#   scripts/studies.sh ring8|grid25|mnist_mlp [extra gankit study args]
# One thread per process and nice'd, so two studies can share a 2-core machine with other work. Results
# (results.json, table.md, curves.png, samples.png) are copied to docs/studies/NAME/ when the study ends;
# the runs themselves stay in runs/studies/NAME (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/studies.sh ring8|grid25|mnist_mlp}
shift
METHODS=(gan gan_r1 wgan wgan_gp sngan lsgan veegan pacgan2)
# Snapshots: the reference README's steps (200..800), then every 1,000 G steps for the curves.
SNAPS="train.snapshot_steps=[200,400,600,800,1000,2000,3000,4000]"
case "$name" in
  ring8)     configs=("${METHODS[@]/#/ring_}"); seeds=5; extra=("$SNAPS") ;;
  grid25)    configs=("${METHODS[@]/#/grid_}"); seeds=5; extra=("$SNAPS") ;;
  mnist_mlp) configs=(mnist_mlp_gan mnist_mlp_gan_r1 mnist_mlp_wgan mnist_mlp_wgan_gp mnist_mlp_sngan mnist_mlp_lsgan
                      mnist_veegan mnist_mlp_pacgan2); seeds=3; extra=() ;;
  *) echo "scripts/studies.sh: unknown study '$name' (ring8, grid25, mnist_mlp)" >&2; exit 2 ;;
esac
out=runs/studies/$name
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
nice -n 10 .venv/bin/python -m gankit study "${configs[@]}" --seeds "$seeds" --out "$out" \
  train.progress=false "${extra[@]}" "$@"
mkdir -p "docs/studies/$name"
cp "$out"/results.json "$out"/table.md "$out"/*.png "docs/studies/$name/"
