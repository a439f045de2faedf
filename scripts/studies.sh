#!/usr/bin/env bash
# The studies behind docs/study.md, each a resumable `gankit study`: run it again (same name) and it continues
# where it stopped (finished seeds are read, stopped ones resume from their last checkpoint).
#   scripts/studies.sh ring8|grid25|mnist_mlp|pacgan [extra gankit study args]
# One thread per process and nice'd, so two studies can share a 2-core machine with other work. Results
# (results.json, table.md, curves.png, samples.png) are copied to docs/studies/NAME/ when the study ends;
# the runs themselves stay in runs/studies/NAME (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/studies.sh ring8|grid25|mnist_mlp|pacgan}
shift
METHODS=(gan gan_r1 wgan wgan_gp sngan lsgan veegan pacgan2)
# Snapshots: the reference README's steps (200..800), then every 1,000 G steps for the curves.
SNAPS="train.snapshot_steps=[200,400,600,800,1000,2000,3000,4000]"
case "$name" in
  ring8)     configs=("${METHODS[@]/#/ring_}"); seeds=5; extra=("$SNAPS") ;;
  grid25)    configs=("${METHODS[@]/#/grid_}"); seeds=5; extra=("$SNAPS") ;;
  mnist_mlp) configs=(mnist_mlp_gan mnist_mlp_gan_r1 mnist_mlp_wgan mnist_mlp_wgan_gp mnist_mlp_sngan mnist_mlp_lsgan
                      mnist_veegan mnist_mlp_pacgan2); seeds=3; extra=() ;;
  # PacGAN's protocol (Table 1) at 20,000 of its 400,000 G steps: 20-35 ms per G step and seed on one loaded
  # core (benchmarks/config_step.py, 2026-12-07), so 5 seeds x 20,000 steps is 35-60 minutes per config; the
  # paper's length would be about 100 CPU-hours per config.
  pacgan)    configs=(pacgan_ring_gan pacgan_ring_pacgan2 pacgan_ring_pacgan3 pacgan_ring_pacgan4
                      pacgan_grid_gan pacgan_grid_pacgan2 pacgan_grid_pacgan3 pacgan_grid_pacgan4); seeds=5
             extra=("train.steps=20000" "train.snapshot_steps=[1000,2000,5000,10000,15000]") ;;
  *) echo "scripts/studies.sh: unknown study '$name' (ring8, grid25, mnist_mlp, pacgan)" >&2; exit 2 ;;
esac
out=runs/studies/$name
keep=docs/studies/$name
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$out" "$keep"
# One config at a time, its results committed-ready in docs/studies/NAME/ as soon as it ends: a config finished in
# an earlier sitting (its entry in docs/studies/NAME/results.json) is skipped, so a study outlives the machine's
# runs/ folder; a config stopped midway resumes from runs/studies/NAME while that folder lasts.
[ -f "$out/results.json" ] || { [ -f "$keep/results.json" ] && cp "$keep/results.json" "$out/results.json"; } || true
for config in "${configs[@]}"; do
  if [ -f "$keep/results.json" ] && .venv/bin/python -c "import json,sys; sys.exit(0 if sys.argv[2] in json.load(open(sys.argv[1])) else 1)" "$keep/results.json" "$config"; then
    echo "studies.sh: $config is in $keep/results.json; skipped" >&2
    continue
  fi
  nice -n 10 .venv/bin/python -m gankit study "$config" --seeds "$seeds" --out "$out" \
    train.progress=false "${extra[@]}" "$@"
  cp "$out"/results.json "$out"/table.md "$keep/"
  [ -f "$out/curves.png" ] && cp "$out/curves.png" "$keep/curves.png"
  [ -f "$out/samples.png" ] && cp "$out/samples.png" "$keep/samples_$config.png"
done
