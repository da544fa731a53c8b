"""End-to-end MT-bench work, evalbench vs FastChat's own llm_judge scripts, same endpoints, equal concurrency.

Not a test: run it by hand,

    EVALBENCH_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/e2e_vs_fastchat.py \\
        [--questions 20] [--max-new-tokens 512] [--concurrency 16] [--latency 0.2] [--repeats 3] \\
        [--workdir DIR]

The work: generate both turns of N MT-bench questions, then grade every turn with single-answer
grading (`single-v1` / `single-v1-multi-turn`, and the reference-guided `single-math-v1*` prompts with
GPT-4's reference answers for math, reasoning and coding), as FastChat's README runs it:

    FastChat   `python -m fastchat.llm_judge.gen_api_answer --model M --force-temperature 0
                --max-tokens T --parallel C --openai-api-base VLLM`, then
               `python -m fastchat.llm_judge.gen_judgment --mode single --judge-model gpt-4
                --model-list M --parallel C` (OPENAI_API_BASE = the stub), both in a run directory
               holding FastChat's `data/` layout
    evalbench  `python -m evalbench run --suite mtbench --model M --model-url VLLM --judge
                url=STUB,model=gpt-4 --judge-concurrency C --set model.endpoint.max_concurrency=C
                --set suite_options.mtbench.{questions_file,max_new_tokens=T,temperature=0}
                --set cache_path=<fresh> --results <fresh>` (the whole command: imports, generation,
               judging, summary, comparison and leaderboard export)

FastChat is installed into its own venv, `<workdir>/fcvenv` (created on the first run, reused after):
`fschat[llm_judge]==0.2.36` (the last release; its judge code calls the pre-1.0 `openai.ChatCompletion`,
and the extra pins `openai<1`), plus what its `fastchat.model.model_adapter` imports at module level
but fschat declares only in the `model_worker` extra or not at all: psutil, torch (the CPU build this
checkout's venv has), transformers 4.x and accelerate. Nothing is installed into evalbench's venv.
fschat ships no data: both tools read the question subset written to `<workdir>/questions.jsonl`
(N questions stratified over the 8 categories, evalbench's `--limit` rule, in file order) and the
judge prompts and GPT-4 reference answers of the evalbench data dir (FastChat's own files, see
shared/data/README.md), symlinked into each FastChat run directory; nothing is copied into the repo.

Endpoints, shared by both tools and started once:
- generator: one vLLM server (CPU build) with the tiny local model (`evalbench.models.tiny`), prefix
  caching off so that the tool running second gains nothing from the first. It is served as
  `tiny-llama-2` because FastChat picks the conversation template from the model name: that name
  selects its `llama-2` template, whose OpenAI messages are the bare user/assistant turns with no
  system message, which is what evalbench sends (the default `one_shot` template would add a system
  prompt; vLLM applies the tiny model's own chat template to the messages either way);
- judge: evalbench's stub (`evalbench.serve.stub`) in this process, OpenAI-compatible, serving
  `gpt-4` (the judge name gen_judgment uses for its prompts and reference file) with a fixed
  latency (default 200 ms). Its verdict is "Rating: [[r]]" with r = 1 + hash(user prompt) mod 10,
  so identical judge prompts get identical ratings and the two tools' scores must then agree.

Greedy for both (FastChat `--force-temperature 0`; evalbench `temperature=0`), the same token budget
(default 512: the tiny model has 2048 positions and the longest turn-2 prompts take ~1000 of them, so
FastChat's default of 1024 could pass the context, which vLLM refuses and FastChat retries 16
times) and the same concurrency C: FastChat's `--parallel C` for both scripts (threads, each a
question's two turns in turn, then C judgments at a time), evalbench's endpoint `max_concurrency`
and `--judge-concurrency`.

Equal work is checked on every run: requests, prompt tokens and generated tokens counted by the vLLM
server (`/metrics` deltas around each tool) and requests received by the stub; within each repeat the
two tools' judge request bodies (model, messages, temperature, max_tokens) are compared as multisets,
and their answers and mean scores are compared. Both must send 2 generation requests and 2 judge
requests per question (turn 2 is graded with the multi-turn prompt, one request).

Interleaved A/B/A/B: the order alternates per repeat, each run in fresh directories and caches; the
whole-process wall time of each tool's complete work (FastChat: both scripts, start to end) is taken,
the ratio per repeat from the adjacent pair; medians with min-max. To show where the time goes, each
run also reports its request phases as the tool itself times them (evalbench: its progress lines for
turn 1 + turn 2 and for judging; FastChat: each script's tqdm loop, run with TQDM_SMOOTHING=0 so its
closing rate is total / elapsed; its bar starts once every question is submitted), the generation
span seen by the vLLM server (its /metrics read every 0.1 s: first request in the engine to the last
one done), the judging span seen by the stub (first request in to last answer out; both spans are
the same clock for both tools), and, untimed, the start-up of two processes that only import what
FastChat's scripts import (torch and transformers, through fastchat.model.model_adapter). The evalbench
run is this checkout's (PYTHONPATH), whatever is installed. Everything goes to
<workdir>/e2e_vs_fastchat.json (per-run logs, answers and judge requests under <workdir>/rep<k>/); the
rows for results/benchmarks.md are printed last; the exit code is 1 when the work was not equal.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run standalone from a checkout without installing the package

SERVED = "tiny-llama-2"  # FastChat maps this name to its llama-2 template: no system message
JUDGE_MODEL = "gpt-4"
FASTCHAT_VERSION = "0.2.36"
_METRICS = ("vllm:request_success_total", "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
            "vllm:num_requests_running", "vllm:num_requests_waiting")
POLL_S = 0.1  # how often the vLLM poller reads /metrics (the resolution of the server-side span)


# -- setup ---------------------------------------------------------------------------------------


def fastchat_requirements() -> list[str]:
    """FastChat's llm_judge scripts and what `fastchat.model.model_adapter` imports at module level."""
    torch = metadata.version("torch")  # this venv's CPU build: an unpinned torch may resolve to CUDA (GBs)
    return [f"fschat[llm_judge]=={FASTCHAT_VERSION}", "openai<1", "psutil", f"torch=={torch}",
            "transformers<5", "accelerate"]


def ensure_fastchat_venv(workdir: Path) -> Path:
    """`<workdir>/fcvenv/bin/python` with FastChat's judge scripts importable (created if needed)."""
    venv = workdir / "fcvenv"
    python = venv / "bin" / "python"
    probe = ("import openai, fastchat.llm_judge.gen_api_answer, fastchat.llm_judge.gen_judgment; "
             "assert openai.__version__ < '1', openai.__version__")
    if python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True,
                                          check=False).returncode == 0:
        return python
    if not python.exists():
        print(f"creating {venv} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print("installing " + " ".join(fastchat_requirements()) + " into it ...", file=sys.stderr, flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *fastchat_requirements()], check=True)
    check = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise SystemExit(f"FastChat is not importable in {venv}:\n{check.stderr[-2000:]}")
    return python


def write_question_subset(workdir: Path, n: int | None) -> tuple[Path, list[dict]]:
    """The first `n` questions by evalbench's stratified `--limit` rule, as FastChat question lines."""
    from evalbench.suites.mtbench.suite import MTBench, select_questions

    source = MTBench().questions_path()
    chosen = {q.question_id for q in select_questions(MTBench().questions(), limit=n)}
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["question_id"] in chosen]  # file order, the original lines' fields
    path = workdir / "questions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def stub_responder(body: dict) -> str:
    """A FastChat-parseable verdict that depends only on the judge prompt (the user message)."""
    from evalbench.io import stable_hash

    users = [m.get("content", "") for m in body.get("messages") or [] if m.get("role") == "user"]
    user = users[-1] if users else ""
    return f"The assistant's answer is judged here by a stub. Rating: [[{1 + stable_hash(user) % 10}]]"


def vllm_counters(base_url: str) -> dict[str, float]:
    """Cumulative request/token counters of the vLLM server (its Prometheus /metrics)."""
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out = dict.fromkeys(_METRICS, 0.0)
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:]+)(\{[^}]*\})?\s+([0-9.eE+-]+)$", line.strip())
        if m and m.group(1) in out:
            out[m.group(1)] += float(m.group(3))
    return out


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    names = {"vllm:request_success_total": "requests", "vllm:prompt_tokens_total": "prompt_tokens",
             "vllm:generation_tokens_total": "generation_tokens"}
    return {names[k]: round(after[k] - before[k]) for k in names}


class VLLMPoller(threading.Thread):
    """Reads the server's /metrics every POLL_S s: (time, requests running + waiting, requests done).

    Gives each tool's generation span as the server saw it, the same clock for both: from the first
    reading with a request in the engine to the first reading with all of the tool's requests done
    (resolution POLL_S; the reads cost the API server a little CPU, the same during both tools).
    """

    def __init__(self, base_url: str):
        super().__init__(daemon=True)
        self.base_url = base_url
        self.samples: list[tuple[float, float, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(POLL_S):
            try:
                c = vllm_counters(self.base_url)
            except OSError:
                continue
            busy = c["vllm:num_requests_running"] + c["vllm:num_requests_waiting"]
            self.samples.append((time.monotonic(), busy, c["vllm:request_success_total"]))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def span(self, since: float, done_before: float, expected: int) -> float | None:
        window = [s for s in self.samples if s[0] >= since]
        start = next((t for t, busy, done in window if busy > 0 or done > done_before), None)
        end = next((t for t, _, done in window if done >= done_before + expected), None)
        return end - start if start is not None and end is not None else None


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path, stdin: str | None = None) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as logf:
        proc = subprocess.run(cmd, cwd=cwd, env=env, input=stdin, text=True, stdout=logf,
                              stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}); log {log}:\n"
                         + log.read_text()[-3000:])
    return wall


# -- the two tools -------------------------------------------------------------------------------


def run_fastchat(fc_python: Path, run_dir: Path, questions: Path, data_files: dict[str, Path], vllm_url: str,
                 stub_url: str, max_new_tokens: int, concurrency: int) -> dict:
    """gen_api_answer then gen_judgment (single), each a whole process, in FastChat's data layout."""
    data = run_dir / "data"
    (data / "mt_bench" / "reference_answer").mkdir(parents=True)
    (data / "mt_bench" / "question.jsonl").symlink_to(questions)
    (data / "mt_bench" / "reference_answer" / "gpt-4.jsonl").symlink_to(data_files["reference"])
    (data / "judge_prompts.jsonl").symlink_to(data_files["prompts"])
    gen_cmd = [str(fc_python), "-m", "fastchat.llm_judge.gen_api_answer", "--model", SERVED,
               "--force-temperature", "0", "--max-tokens", str(max_new_tokens), "--parallel", str(concurrency),
               "--openai-api-base", vllm_url]
    judge_cmd = [str(fc_python), "-m", "fastchat.llm_judge.gen_judgment", "--mode", "single",
                 "--judge-model", JUDGE_MODEL, "--model-list", SERVED, "--parallel", str(concurrency)]
    t0 = time.perf_counter()
    # TQDM_SMOOTHING=0: tqdm's closing rate is then total / elapsed (not a moving average), so
    # tqdm_seconds() reads each script's request loop from its log; it changes nothing else.
    env = _child_env(OPENAI_API_KEY="sk-local", TQDM_SMOOTHING="0")
    gen_s = _run(gen_cmd, cwd=run_dir, env=env, log=run_dir / "gen_api_answer.log")
    judge_s = _run(judge_cmd, cwd=run_dir, env={**env, "OPENAI_API_BASE": stub_url},
                   log=run_dir / "gen_judgment.log", stdin="\n")  # it asks "Press Enter to confirm..."
    wall = time.perf_counter() - t0
    phases = {"generate_phase_s": tqdm_seconds(run_dir / "gen_api_answer.log"),
              "judge_phase_s": tqdm_seconds(run_dir / "gen_judgment.log")}
    answer_file = data / "mt_bench" / "model_answer" / f"{SERVED}.jsonl"
    answers = {r["question_id"]: r["choices"][0]["turns"] for r in _jsonl(answer_file)}
    judgments = _jsonl(data / "mt_bench" / "model_judgment" / f"{JUDGE_MODEL}_single.jsonl")
    scores = [j["score"] for j in judgments if j["score"] != -1]
    return {"wall_s": wall, "gen_api_answer_s": gen_s, "gen_judgment_s": judge_s, **phases,
            "commands": [gen_cmd, judge_cmd], "answers": answers, "n_judgments": len(judgments),
            "n_failed": len(judgments) - len(scores),
            "score": statistics.fmean(scores) if scores else None,
            "api_errors": sum(t == "$ERROR$" for turns in answers.values() for t in turns)
            + sum(j["judgment"] == "$ERROR$" for j in judgments)}


def run_evalbench(run_dir: Path, questions: Path, vllm_url: str, stub_url: str, max_new_tokens: int,
                  concurrency: int) -> dict:
    """The one `evalbench run` command, fresh cache and results directory."""
    cmd = [sys.executable, "-m", "evalbench", "run", "--suite", "mtbench", "--model", SERVED,
           "--model-url", vllm_url, "--judge", f"url={stub_url},model={JUDGE_MODEL}",
           "--judge-concurrency", str(concurrency),
           "--set", f"model.endpoint.max_concurrency={concurrency}",
           "--set", f"suite_options.mtbench.questions_file={questions}",
           "--set", f"suite_options.mtbench.max_new_tokens={max_new_tokens}",
           "--set", "suite_options.mtbench.temperature=0",
           "--set", f"cache_path={run_dir / 'cache.sqlite'}",
           "--results", str(run_dir / "results"), "--run-id", "e2e"]
    # PYTHONPATH: the evalbench of this checkout (the one this script imports), not an installed one.
    env = _child_env(EVALBENCH_HOME=str(run_dir / "home"), PYTHONPATH=str(ROOT))
    wall = _run(cmd, cwd=run_dir, env=env, log=run_dir / "evalbench.log")
    run = run_dir / "results" / "runs" / "e2e"
    answers = {r["question_id"]: r["choices"][0]["turns"]
               for r in _jsonl(run / "artifacts" / "mtbench" / "model_answer" / f"{SERVED}.jsonl")}
    metrics = json.loads((run / "summary.json").read_text())["results"][0]["metrics"]
    log = (run_dir / "evalbench.log").read_text()
    # Its progress lines: "mtbench turn 1 [tiny-llama-2 seed 0]: 80/80 done in 0.9s (87.52/s)", or
    # with turn 2 chained to turn 1 (an HTTP server): "mtbench turn 1 [...] + follow-ups: 160/160 ...".
    gen = [float(x) for x in re.findall(
        r"mtbench turn [12] \[[^]]*\](?: \+ follow-ups)?: \d+/\d+ done in ([0-9.]+)s", log)]
    judge = [float(x) for x in re.findall(r"mtbench single judge \[[^]]*\]: \d+/\d+ done in ([0-9.]+)s", log)]
    return {"wall_s": wall, "command": cmd, "answers": answers, "score": metrics.get("score"),
            "n_failed": metrics.get("n_failed"), "generate_phase_s": sum(gen) if gen else None,
            "judge_phase_s": sum(judge) if judge else None}


def tqdm_seconds(log: Path) -> float | None:
    """A FastChat script's request loop, from its last tqdm line: total / rate (with TQDM_SMOOTHING=0)."""
    found = re.findall(r"(\d+)/\1 \[[0-9:]+<[0-9:]+,\s*([0-9.]+)(it/s|s/it)\]", log.read_text())
    if not found:
        return None
    total, rate, unit = found[-1]
    return int(total) / float(rate) if unit == "it/s" else int(total) * float(rate)


def fastchat_startup_s(fc_python: Path) -> float:
    """Untimed side measurement: two processes that only import what FastChat's two scripts import
    before their first request (torch and transformers come with fastchat.model.model_adapter)."""
    t0 = time.perf_counter()
    for module in ("gen_api_answer", "gen_judgment"):
        subprocess.run([str(fc_python), "-c", f"import fastchat.llm_judge.{module}"], env=_child_env(),
                       capture_output=True, check=True)
    return time.perf_counter() - t0


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _judge_key(body: dict) -> str:
    # What decides the verdict; evalbench also sends top_p 1.0 (the API default), FastChat does not.
    return json.dumps({"model": body.get("model"), "messages": body.get("messages"),
                       "temperature": float(body.get("temperature") or 0), "max_tokens": body.get("max_tokens"),
                       "n": body.get("n", 1)}, sort_keys=True)


def _spread(values: list[float], fmt: str = ".1f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=20,
                        help="MT-bench questions, stratified over the categories (default 20; 80 = all)")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=16,
                        help="requests in flight, both tools, generation and judging (default 16)")
    parser.add_argument("--latency", type=float, default=0.2,
                        help="stub judge latency per request, s (default 0.2)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed repeats, alternating which tool goes first (default 3)")
    parser.add_argument("--evalbench-first", action="store_true",
                        help="run evalbench first in the first repeat")
    parser.add_argument("--model", help="model directory (default: the tiny local model, built if missing)")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--workdir", type=Path, help="working directory (default: a new temporary one); "
                        "its fcvenv is reused by later runs")
    parser.add_argument("--data-dir", type=Path, help="benchmark data (default: $EVALBENCH_DATA_DIR, else "
                        "../shared/data beside the checkout)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    shared = ROOT.parent / "shared" / "data"
    if args.data_dir is None and not os.environ.get("EVALBENCH_DATA_DIR") and shared.is_dir():
        args.data_dir = shared
    if args.data_dir is not None:
        os.environ["EVALBENCH_DATA_DIR"] = str(args.data_dir.resolve())  # for the evalbench children too
    if os.environ.get("EVALBENCH_DATA_DIR"):
        from evalbench.data import set_data_dir

        set_data_dir(os.environ["EVALBENCH_DATA_DIR"])

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="e2e_vs_fastchat-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    fc_python = ensure_fastchat_venv(workdir)
    versions = ("import fastchat, openai, torch, transformers; "
                "print(fastchat.__version__, openai.__version__, torch.__version__, transformers.__version__)")
    fc_versions = subprocess.run([str(fc_python), "-c", versions], capture_output=True, text=True,
                                 check=True).stdout.split()

    from evalbench.serve.stub import StubServer, StubState
    from evalbench.suites.mtbench.suite import MTBench

    questions_path, questions = write_question_subset(workdir, args.questions)
    suite = MTBench()
    data_files = {"reference": suite.reference_path().resolve(), "prompts": suite.prompts_path().resolve()}
    n = len(questions)
    if args.model is None:
        from evalbench.models.tiny import ensure_tiny_model

        args.model = str(ensure_tiny_model())

    from evalbench.config import ServerSpec
    from evalbench.serve.vllm_server import VLLMServer

    spec = ServerSpec(model=args.model, served_name=SERVED, dtype="float32", max_model_len=args.max_model_len,
                      extra_args=("--no-enable-prefix-caching",))
    answered: list[float] = []  # when the stub answered each request (after its latency)

    def responder(body: dict) -> str:
        answered.append(time.monotonic())
        return stub_responder(body)

    stub = StubServer(models=(JUDGE_MODEL,), state=StubState(responder=responder, latency_s=args.latency))
    print(f"starting vLLM ({args.model}) and the stub judge ...", file=sys.stderr, flush=True)
    reps = []
    with stub, VLLMServer(spec, log_dir=workdir / "logs") as server:
        vllm_url = server.base_url
        # Warm the server outside both timings (first request, chat template compilation).
        warm = {"model": SERVED, "max_tokens": 8, "temperature": 0,
                "messages": [{"role": "user", "content": "warm up"}]}
        req = urllib.request.Request(vllm_url + "/chat/completions", data=json.dumps(warm).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(req, timeout=120).read()
        poller = VLLMPoller(vllm_url)
        poller.start()
        for rep in range(args.repeats):
            rep_dir = workdir / f"rep{rep}"
            if rep_dir.exists():
                shutil.rmtree(rep_dir)
            # Alternate which tool goes first, so neither always meets a server the other just used.
            eb_first = (rep % 2 == 1) != args.evalbench_first
            order = ("evalbench", "fastchat") if eb_first else ("fastchat", "evalbench")
            res: dict = {"first": order[0]}
            for tool in order:
                run_dir = rep_dir / tool
                run_dir.mkdir(parents=True)
                print(f"[{rep + 1}/{args.repeats}] {tool}: {n} questions ...", file=sys.stderr, flush=True)
                counters0, stub0, answered0 = vllm_counters(vllm_url), stub.request_count, len(answered)
                t_tool = time.monotonic()
                if tool == "fastchat":
                    r = run_fastchat(fc_python, run_dir, questions_path, data_files, vllm_url, stub.base_url,
                                     args.max_new_tokens, args.concurrency)
                else:
                    r = run_evalbench(run_dir, questions_path, vllm_url, stub.base_url, args.max_new_tokens,
                                      args.concurrency)
                r["vllm"] = _delta(counters0, vllm_counters(vllm_url))
                done0 = counters0["vllm:request_success_total"]
                r["generate_span_at_vllm_s"] = poller.span(t_tool, done0, 2 * n)
                bodies = stub.state.requests[stub0:]
                (run_dir / "judge_requests.jsonl").write_text("".join(json.dumps(b) + "\n" for b in bodies))
                r["judge_requests"] = len(bodies)
                times = answered[answered0:]
                # Seen from the stub, the same clock for both tools: first request in to last answer out.
                r["judge_span_at_stub_s"] = max(times) - min(times) + args.latency if times else None
                r["judge_keys"] = collections.Counter(_judge_key(b) for b in bodies)
                print(f"    {r['wall_s']:.1f} s; vLLM {r['vllm']}; judge requests {len(bodies)}; "
                      f"score {r['score']}", file=sys.stderr, flush=True)
                res[tool] = r
            res["fastchat_startup_s"] = fastchat_startup_s(fc_python)
            fc, eb = res["fastchat"], res["evalbench"]
            res["same_judge_requests"] = sum((fc["judge_keys"] & eb["judge_keys"]).values())
            res["same_answers"] = sum(fc["answers"].get(q) == a for q, a in eb["answers"].items())
            reps.append(res)
        poller.stop()
    total_s = time.perf_counter() - t_start

    # -- checks and report -----------------------------------------------------------------------
    problems = []
    for i, r in enumerate(reps):
        for tool in ("fastchat", "evalbench"):
            if r[tool]["vllm"]["requests"] != 2 * n:
                problems.append(f"rep {i} {tool}: {r[tool]['vllm']['requests']} generation requests, "
                                f"expected {2 * n}")
            if r[tool]["judge_requests"] != 2 * n:
                problems.append(f"rep {i} {tool}: {r[tool]['judge_requests']} judge requests, expected {2 * n}")
        if r["fastchat"].get("api_errors"):
            problems.append(f"rep {i} fastchat: {r['fastchat']['api_errors']} $ERROR$ outputs")
        for key in ("generation_tokens", "prompt_tokens"):
            a, b = r["fastchat"]["vllm"][key], r["evalbench"]["vllm"][key]
            if a != b:
                problems.append(f"rep {i}: {key} differ: fastchat {a}, evalbench {b}")
        if r["same_judge_requests"] != 2 * n:
            problems.append(f"rep {i}: only {r['same_judge_requests']} of {2 * n} judge requests identical")
        if r["fastchat"]["score"] is None or r["evalbench"]["score"] is None or \
                abs(r["fastchat"]["score"] - r["evalbench"]["score"]) > 1e-9:
            problems.append(f"rep {i}: scores differ: fastchat {r['fastchat']['score']}, "
                            f"evalbench {r['evalbench']['score']}")
    ratios = [r["evalbench"]["wall_s"] / r["fastchat"]["wall_s"] for r in reps]
    ideal_judge_s = math.ceil(2 * n / args.concurrency) * args.latency
    result = {
        "questions": n, "question_ids": [q["question_id"] for q in questions],
        "categories": dict(collections.Counter(q["category"] for q in questions)),
        "max_new_tokens": args.max_new_tokens, "concurrency": args.concurrency, "stub_latency_s": args.latency,
        "ideal_judge_phase_s": ideal_judge_s, "model": args.model, "served_name": SERVED,
        "judge_model": JUDGE_MODEL, "fastchat_venv": {"python": str(fc_python), **dict(zip(
            ("fschat", "openai", "torch", "transformers"), fc_versions))},
        "repeats": [{"first": r["first"], "fastchat_startup_s": r["fastchat_startup_s"],
                     "same_judge_requests": r["same_judge_requests"], "same_answers": r["same_answers"],
                     **{tool: {k: v for k, v in r[tool].items() if k not in ("answers", "judge_keys")}
                        for tool in ("fastchat", "evalbench")}} for r in reps],
        "ratios_evalbench_over_fastchat": ratios, "median_ratio": statistics.median(ratios),
        "equal_work": not problems, "problems": problems, "total_s": total_s,
    }
    out = workdir / "e2e_vs_fastchat.json"
    out.write_text(json.dumps(result, indent=2))

    def both(key: str, fmt: str = ".1f") -> str:
        vals = {t: [r[t][key] for r in reps if r[t].get(key) is not None] for t in ("fastchat", "evalbench")}
        return " / ".join(_spread(v, fmt) if v else "-" for v in vals.values())

    cats = ", ".join(f"{c} {k}" for c, k in result["categories"].items())
    print(f"\nMT-bench work: {n} questions ({cats}), both turns generated greedily (max {args.max_new_tokens} "
          f"new tokens) and single-graded; concurrency {args.concurrency}; stub judge latency "
          f"{args.latency * 1000:.0f} ms (ideal judging phase {ideal_judge_s:.1f} s); {args.repeats} "
          "repeat(s), order alternating")
    print(f"equal work: {'yes' if not problems else 'NO'}" + "".join(f"\n  - {p}" for p in problems))
    print(f"total benchmark time {total_s / 60:.1f} min; details: {out}")
    print("\nrows for results/benchmarks.md (median (min-max) over repeats; FC = FastChat, EB = evalbench):\n")
    print("| questions | C | stub latency | FastChat s (both scripts) | evalbench s (one command) | "
          "evalbench / FastChat (per pair) | generation, as the tools time it, s FC / EB | "
          "generation seen by vLLM s FC / EB | judging, as the tools time it, s FC / EB (ideal) | "
          "judging seen by the stub s FC / EB | FastChat start-up s (2 imports, no work) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    walls = [_spread([r[t]["wall_s"] for r in reps]) for t in ("fastchat", "evalbench")]
    print(f"| {n} | {args.concurrency} | {args.latency * 1000:.0f} ms | {walls[0]} | {walls[1]} | "
          f"{_spread(ratios, '.2f')} | {both('generate_phase_s')} | {both('generate_span_at_vllm_s')} | "
          f"{both('judge_phase_s')} ({ideal_judge_s:.1f}) | {both('judge_span_at_stub_s')} | "
          f"{_spread([r['fastchat_startup_s'] for r in reps])} |")
    print("\n| rep | first | FastChat s (gen_api_answer + gen_judgment) | evalbench s | ratio | "
          "vLLM requests FC / EB | prompt tokens FC / EB | generated tokens FC / EB | judge requests FC / EB | "
          "identical judge requests | identical answers | score FC / EB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(reps):
        fc, eb = r["fastchat"], r["evalbench"]
        print(f"| {i} | {r['first']} | {fc['wall_s']:.1f} ({fc['gen_api_answer_s']:.1f} + "
              f"{fc['gen_judgment_s']:.1f}) | {eb['wall_s']:.1f} | {ratios[i]:.2f} | "
              f"{fc['vllm']['requests']} / {eb['vllm']['requests']} | "
              f"{fc['vllm']['prompt_tokens']} / {eb['vllm']['prompt_tokens']} | "
              f"{fc['vllm']['generation_tokens']} / {eb['vllm']['generation_tokens']} | "
              f"{fc['judge_requests']} / {eb['judge_requests']} | {r['same_judge_requests']} / {2 * n} | "
              f"{r['same_answers']} / {n} | {fc['score']:.4g} / {eb['score']:.4g} |")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
