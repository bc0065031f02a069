#!/usr/bin/env bash
# The accelerator figures of docs/gpu.md, measured in one go on a machine with one NVIDIA GPU and jax[cuda]
# (plus jgen's requirements) installed:
#     bash benchmarks/gpu_checks.sh OUT_DIR [STAGE ...]
# Stages (default: all but suite and torch, in this order): env throughput variants loop samplers determinism
# torch suite. VARIANTS names the variants stage's variants (benchmarks/unet_variants.py). Each stage runs under its own time limit and appends to OUT_DIR/<stage>.log, so a stage that hangs or
# fails leaves the others' figures; OUT_DIR/summary.log collects the tables. PYTHON (default python3) runs them.
# TINY=1 shrinks every model, batch and run so the script can be tried on a CPU in minutes (the figures are then
# meaningless).
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_checks.sh OUT_DIR [STAGE ...]}
shift
stages=${*:-env throughput variants loop samplers determinism}
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1
# one persistent compilation cache for the stages (the variants' base step is the throughput stage's program)
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$work/jax_cache} JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
summary="$out/summary.log"
stamp() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$summary"; }
run() {  # run LIMIT_S STAGE_LOG CMD...: the command's output to the stage's log and the terminal
  local limit=$1 log=$2; shift 2
  echo "\$ $*" >>"$log"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || stamp "exit $rc (limit ${limit}s): $*"
  return 0
}
tiny=${TINY:-}
cifar=(); mnist=(); mnist_flags=(); scale=1
if [ -n "$tiny" ]; then
  cifar=(model.channels=16 model.num_res_blocks=1 data.batch_size=8); mnist=(model.channels=8 data.batch_size=8)
  mnist_flags=(--config.model.channels=8 --config.data.batch_size=8); scale=50
fi
mnist_cmd() {  # mnist_cmd WORKDIR STEPS OVERRIDES...: sets CMD, ddpm_mnist without evaluation, samples or progress
  local wd=$1 steps=$(( $2 / scale )); shift 2
  CMD=($PY -m jgen train --config experiments/configs/ddpm_mnist.py --workdir "$wd" --config.train.steps="$steps"
    --config.train.log_every=$(( 50 / scale > 0 ? 50 / scale : 1 )) --config.train.eval_every=-1
    --config.train.sample_every=-1 --config.train.checkpoint_every="$steps" --config.train.progress=False
    --config.train.num_eval_examples=200 "${mnist_flags[@]}" "$@")
}
loop_rate() {  # median steps/s of a run's train rows, the first (compiling) one left out
  $PY -c "import json,statistics,sys; r=[json.loads(l) for l in open(sys.argv[1]+'/metrics.jsonl')]; \
v=[x['steps_per_sec'] for x in r if x['split']=='train'][1:]; print(f'{statistics.median(v):.1f}')" "$1"
}

for stage in $stages; do
  log="$out/$stage.log"
  stamp "stage $stage"
  case $stage in
  env)
    run 60 "$log" nvidia-smi
    run 120 "$log" $PY -c "import jax, jaxlib, flax, optax; print(jax.__version__, jaxlib.__version__, flax.__version__, \
optax.__version__, jax.devices())"
    # the flag train.deterministic sets must be known to this XLA
    XLA_FLAGS=--xla_gpu_deterministic_ops=true run 120 "$log" $PY -c "import jax; print(jax.numpy.ones(3).sum())"
    ;;
  throughput)  # ddpm_cifar10 (35.7M) bf16 train step: FLOPs, MFU, profile and HLO (TF32: the torch stage)
    run 240 "$log" $PY benchmarks/train_throughput.py --config experiments/configs/ddpm_cifar10.py --mock_tfds 256 \
      --steps 20 --trials 5 --input_workers 0 --input_batches 20 --profile "$out/profile_bf16" --profile_steps 5 \
      --hlo "$out/step_bf16.hlo.gz" model.dtype=bfloat16 "${cifar[@]}"
    grep -A3 "^devices" "$log" >>"$summary"
    ;;
  variants)  # changes to the bf16 UNet step, interleaved in one process
    run 300 "$log" $PY benchmarks/unet_variants.py --config experiments/configs/ddpm_cifar10.py --mock_tfds 512 \
      --variants "${VARIANTS:-base,flax_groupnorm,batch256}" --steps 10 --trials 5 model.dtype=bfloat16 \
      "${cifar[@]}"
    grep "^|" "$log" >>"$summary"
    ;;
  loop)  # ddpm_mnist: the step alone against the real loop (auto steps_per_call; K=1; K=1 without the feed thread)
    run 120 "$log" $PY benchmarks/train_throughput.py --config experiments/configs/ddpm_mnist.py --steps 100 \
      --trials 5 --input_workers 0 --input_batches 50 "${mnist[@]}"
    XLA_FLAGS=--xla_gpu_deterministic_ops=true run 120 "$log" $PY benchmarks/train_throughput.py \
      --config experiments/configs/ddpm_mnist.py --steps 100 --trials 5 --input_workers 0 --input_batches 50 \
      "${mnist[@]}"
    grep -A2 "^devices" "$log" >>"$summary"
    mnist_cmd "$work/mnist_auto" 1000; run 150 "$log" "${CMD[@]}"
    mnist_cmd "$work/mnist_k1" 1000 --config.train.steps_per_call=1; run 150 "$log" "${CMD[@]}"
    mnist_cmd "$work/mnist_k1_inline" 1000 --config.train.steps_per_call=1 --config.data.prefetch=0
    run 150 "$log" "${CMD[@]}"
    for r in mnist_auto mnist_k1 mnist_k1_inline; do
      [ -f "$work/$r/metrics.jsonl" ] && stamp "loop $r: $(loop_rate "$work/$r") steps/s"
    done
    ;;
  samplers)  # each sampler at 20 NFE against 20 bare network calls, on the loop stage's run
    [ -d "$work/mnist_auto" ] || { mnist_cmd "$work/mnist_auto" 500; run 150 "$log" "${CMD[@]}"; }
    run 240 "$log" $PY benchmarks/diffusion_samplers.py --skip_mixture --workdir "$work/mnist_auto" \
      --timing_batch $(( 256 / (scale > 1 ? 32 : 1) )) --repeats 5 --samplers ddim,dpm_solver,dpm_solver_sde,unipc
    grep -E "^\||bare" "$log" >>"$summary"
    ;;
  determinism)  # two same-seed runs, default and train.deterministic=true; a SIGTERM resume of the latter
    d=$work/det
    mkdir -p "$d"
    unset JAX_COMPILATION_CACHE_DIR  # each run compiles (and autotunes) its own program
    export XLA_PYTHON_CLIENT_PREALLOCATE=false
    every=--config.train.log_every=$(( 10 / scale > 0 ? 10 / scale : 1 ))
    for r in plain_a plain_b det_a det_b; do
      extra=(); case $r in det_*) extra=(--config.train.deterministic=true) ;; esac
      mnist_cmd "$d/$r" 300 "$every" "${extra[@]}"
      "${CMD[@]}" >"$d/$r.out" 2>&1 &
    done
    wait
    mnist_cmd "$d/det_resumed" 300 "$every" --config.train.deterministic=true
    "${CMD[@]}" >"$d/det_resumed.out" 2>&1 &
    pid=$!
    for _ in $(seq 1200); do  # SIGTERM once the run has logged a third of its steps
      [ "$($PY -c "import json,sys; print(max([json.loads(l)['step'] for l in open(sys.argv[1])] or [0]))" \
        "$d/det_resumed/metrics.jsonl" 2>/dev/null || echo 0)" -ge $(( 100 / scale )) ] && break
      sleep 0.1
    done
    kill -TERM $pid; wait $pid; stamp "det_resumed: first attempt exited $? (75: interrupted, checkpoint saved)"
    "${CMD[@]}" >>"$d/det_resumed.out" 2>&1
    stamp "det_resumed: second attempt exited $?"
    unset XLA_PYTHON_CLIENT_PREALLOCATE
    run 240 "$log" $PY benchmarks/compare_runs.py "$d/plain_a" "$d/plain_b" "$d/det_a" "$d/det_b" "$d/det_resumed"
    tail -n 8 "$log" >>"$summary"
    ;;
  torch)  # jgen against the PyTorch twin of ddpm_cifar10's UNet
    run 420 "$log" $PY benchmarks/vs_pytorch.py --device cuda --trials 5 --parallel-build --json "$out/vs_pytorch.json"
    grep "^|" "$log" >>"$summary"
    ;;
  suite)  # make test's tests on the GPU (pytest-xdist spreads them over the cores)
    XLA_PYTHON_CLIENT_PREALLOCATE=false run "${SUITE_LIMIT:-400}" "$log" $PY -m pytest -v -n 12 \
      -p no:cacheprovider --junitxml="$out/suite.xml"
    tail -n 30 "$log" | grep -E "passed|failed|error" >>"$summary"
    ;;
  *) stamp "unknown stage $stage" ;;
  esac
done
rm -rf "$work"
stamp "done"
