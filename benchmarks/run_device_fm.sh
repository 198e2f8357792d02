#!/usr/bin/env bash
# The fmnist-cnn16/32 runs of the suite that the 2-core CPU had not done,
# on a lent GPU machine (one H200, 16 cores): each task's runs dealt to
# $WORKERS processes sharing the GPU; what finishes is saved under
# results/suite/runs (as `optax-nowcast bench --worker k/N`), stamped with the
# device, and tarred into $OUT. Step counts compare with the CPU's runs
# (float32 matmuls at 'highest' precision: no TF32); seconds do not, and the
# report does not compare them.
#   OPTAX_NOWCAST_DATA=<dir with fashion_mnist/> bash benchmarks/run_device_fm.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
export JAX_DEFAULT_MATMUL_PRECISION=highest
METHODS=${METHODS:-nino+cosine,nino-mlp+cosine,nino-select,nino-mlp-select}
TASKS=${TASKS:-fmnist-cnn32 fmnist-cnn16}
WORKERS=${WORKERS:-6}
LIMIT=${LIMIT:-470}
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT" /tmp/device_logs
touch /tmp/device_start  # Runs saved after this are the new ones.
python3 -c 'import jax, optax_nowcast; print(jax.__version__, jax.devices())' || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
start=$(date +%s)
for t in $TASKS; do
  for ((k = 0; k < WORKERS; k++)); do
    timeout $LIMIT python3 -m optax_nowcast.lab.cli bench --task "$t" \
      --methods "$METHODS" --seeds 3 --out results/suite --no-progress \
      --worker $k/$WORKERS > "/tmp/device_logs/$t.w$k.log" 2>&1 &
  done
done
wait
echo "workers done after $(( $(date +%s) - start )) s"
tail -qn 1 /tmp/device_logs/*.log
tar czf "$OUT/logs.tgz" -C /tmp device_logs
# Only what this call saved (the tool brings back few files: one archive).
find results/suite/runs -newer /tmp/device_start -name '*.json' \
  | tee "$OUT/new_runs.txt" | tar czf "$OUT/runs.tgz" -T -
wc -l < "$OUT/new_runs.txt"
