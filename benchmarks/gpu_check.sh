#!/usr/bin/env bash
# GPU check for a lent CUDA machine: <= 8 minutes, nothing downloaded. One `gpu_check: NAME: ...` line per check.
#
#   bash benchmarks/gpu_check.sh [WORKDIR]          (PYTHON=... to pick the interpreter; default python3)
#
# 1 gpu        the device torch sees
# 2 build      a random-initialised ~1B Llama + two LoRA adapters (r16, r32) + prompts + a random embedder, locally
# 3 serve      `evalbench run` (diversity suite) on CUDA vLLM: base + both adapters on one engine, CUDA graphs on
#              (no --enforce-eager in the server command), TP=1, max_lora_rank from the adapters (32)
# 4 throughput benchmarks/generation_overhead.py: raw vllm.LLM.generate vs evalbench in-process and server,
#              decode-bound (min_tokens = max_tokens), interleaved rounds, the same engine settings
# 5 qlora      10 QLoRA steps with bitsandbytes 4-bit on the ~1B model
# Checks that cannot run say "skipped: <reason>" (e.g. vllm or bitsandbytes not installed); the script exits 0
# when nothing FAILED. Record the output in results/benchmarks.md.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WORK=${1:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$WORK"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
failed=0
say() { echo "gpu_check: $*"; }
fail() { say "$1: FAILED ($2; log: $3)"; failed=1; }
has() { "$PY" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('$1') else 1)" 2>/dev/null; }
tail_of() { tail -n 5 "$1" 2>/dev/null | tr '\n' ' ' | cut -c1-300; }

# 1 gpu
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  say "gpu: skipped: torch sees no CUDA device (every check below needs one)"
  exit 0
fi
say "gpu: ok ($("$PY" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}')"))"

# 2 build
if timeout 100 "$PY" benchmarks/gpu_check.py build --out "$WORK" --size 1b >"$WORK/build.log" 2>&1; then
  grep '^gpu_check:' "$WORK/build.log"
else
  fail build "$(tail_of "$WORK/build.log")" "$WORK/build.log"
  exit 1
fi
MODEL="$WORK/model"; A16="$WORK/adapters/r16"; A32="$WORK/adapters/r32"

# 3 serve and 4 throughput need CUDA vLLM (and evalbench's own dependencies)
if ! has vllm; then
  say "serve: skipped: vllm not installed"
  say "throughput: skipped: vllm not installed"
elif ! "$PY" -c "import pydantic, openai, yaml, httpx" 2>/dev/null; then
  say "serve: skipped: evalbench's dependencies not installed (pip install -e '.[gpu]')"
  say "throughput: skipped: evalbench's dependencies not installed (pip install -e '.[gpu]')"
else
  t0=$(date +%s)
  if timeout 140 "$PY" -m evalbench -v run --suite diversity --model "$MODEL" --adapter "r16=$A16" --adapter "r32=$A32" \
      --dtype bfloat16 --max-model-len 1024 --gpu-memory-utilization 0.5 --results "$WORK/results" \
      --set suite_options.diversity.prompts="$WORK/prompts.txt" --set suite_options.diversity.n_prompts=64 \
      --set suite_options.diversity.k=4 --set suite_options.diversity.max_tokens=128 \
      --set suite_options.diversity.embedder="$WORK/embedder" >"$WORK/serve.log" 2>&1; then
    cmdline=$(grep -h '^=== evalbench:' "$WORK"/results/runs/*/logs/vllm-*.log 2>/dev/null | tail -n 1)
    if [ -z "$cmdline" ]; then
      fail serve "no vLLM server log found" "$WORK/serve.log"
    elif echo "$cmdline" | grep -q -- '--enforce-eager'; then
      fail serve "the CUDA server was started with --enforce-eager (CPU default leaked)" "$WORK/serve.log"
    else
      rank=$(echo "$cmdline" | sed -n 's/.*--max-lora-rank \([0-9]*\).*/\1/p')
      rate=$(grep -o 'diversity \[.*done in [0-9.]*s ([0-9.]*/s)' "$WORK/serve.log" | tail -n 3 | tr '\n' ' ')
      say "serve: ok (evalbench run, base + 2 adapters on one CUDA vLLM engine, CUDA graphs on, max_lora_rank $rank, $(( $(date +%s) - t0 )) s; $rate)"
    fi
  else
    fail serve "$(tail_of "$WORK/serve.log")" "$WORK/serve.log"
  fi
  if timeout 160 "$PY" benchmarks/generation_overhead.py --model "$MODEL" --adapter "r16=$A16" --adapter "r32=$A32" \
      --dtype bfloat16 --max-model-len 1024 --prompts 256 --max-tokens 128 --rounds 2 --gpu-memory-utilization 0.25 \
      --json "$WORK/throughput.json" >"$WORK/throughput.log" 2>&1; then
    rows=$(grep '^| \(raw\|inprocess\|server\) ' "$WORK/throughput.log" | tr -s ' ' | tr '\n' ' ')
    say "throughput: ok (256 prompts x 128 tokens, base + 2 adapters, tokens/s and ratio to raw vllm.LLM.generate: $rows)"
  else
    fail throughput "$(tail_of "$WORK/throughput.log")" "$WORK/throughput.log"
  fi
fi

# 5 qlora
if ! has bitsandbytes; then
  say "qlora: skipped: bitsandbytes not installed"
elif ! has peft; then
  say "qlora: skipped: peft not installed"
elif timeout 80 "$PY" benchmarks/gpu_check.py qlora --model "$MODEL" --steps 10 >"$WORK/qlora.log" 2>&1; then
  grep '^gpu_check:' "$WORK/qlora.log"
else
  fail qlora "$(tail_of "$WORK/qlora.log")" "$WORK/qlora.log"
fi
say "done (workdir $WORK)"
exit $failed
