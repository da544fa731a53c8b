"""Time the paired bootstrap that `evalbench gate` runs: 10 000 resamples, 805 prompts x 5 seeds.

Not a test: run it by hand, `.venv/bin/python benchmarks/stats_speed.py [--repeat 5]`. It prints the
best-of-N wall time of `clustered_paired_bootstrap` (from per-seed `{sample_id: score}` mappings,
as the gate reads them, and from (seeds, prompts) arrays), and the same resampling done by a plain
`scipy.stats.bootstrap(paired=True, vectorized=True, method="percentile")` call on the same
per-prompt seed averages, measured in this run; the ratio is scipy time / evalbench time.
The target is under 1 s for evalbench.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# Run standalone from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalbench.aggregate.stats import align_clustered, clustered_paired_bootstrap  # noqa: E402

N_PROMPTS, N_SEEDS, ITERS = 805, 5, 10_000
TARGET_S = 1.0


def synthetic_scores(seed: int = 0) -> tuple[dict, dict]:
    """AlpacaEval-like preferences in [0, 1]: a per-prompt difficulty shared by seeds, plus noise."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 1.0, N_PROMPTS)
    ids = [f"alpaca-{i:03d}" for i in range(N_PROMPTS)]

    def run(shift: float) -> dict:
        logits = difficulty + shift + rng.normal(0.0, 0.7, (N_SEEDS, N_PROMPTS))
        probs = 1.0 / (1.0 + np.exp(-logits))
        return {s: dict(zip(ids, map(float, probs[s]))) for s in range(N_SEEDS)}

    return run(0.10), run(0.0)


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats; the best is reported")
    args = parser.parse_args(argv)

    from scipy import stats

    a, b = synthetic_scores()
    a_mat = np.array([[a[s][k] for k in sorted(a[s])] for s in sorted(a)])
    b_mat = np.array([[b[s][k] for k in sorted(b[s])] for s in sorted(b)])

    t_dict, res = best_of(lambda: clustered_paired_bootstrap(a, b, iters=ITERS, seed=0), args.repeat)
    t_arr, res_arr = best_of(lambda: clustered_paired_bootstrap(a_mat, b_mat, iters=ITERS, seed=0),
                             args.repeat)

    # scipy has no cluster option; the cluster bootstrap of the mean is the paired bootstrap of the
    # per-prompt seed averages, so scipy gets those (collapsing is outside its timed call).
    pair = align_clustered(a, b)

    def mean_diff(x, y, axis=-1):
        return np.mean(x - y, axis=axis)

    def scipy_call():
        return stats.bootstrap((pair.a, pair.b), mean_diff, paired=True, vectorized=True,
                               n_resamples=ITERS, method="percentile", confidence_level=0.95,
                               rng=np.random.default_rng(0))

    t_scipy, ref = best_of(scipy_call, args.repeat)

    print(f"data: {N_PROMPTS} prompts x {N_SEEDS} seeds, {ITERS} resamples, best of {args.repeat}")
    print(f"evalbench clustered_paired_bootstrap (dict input):  {t_dict:8.3f} s   "
          f"delta={res.delta:+.4f} CI=[{res.ci_low:+.4f}, {res.ci_high:+.4f}] p={res.p_value:.4g}")
    print(f"evalbench clustered_paired_bootstrap (array input): {t_arr:8.3f} s   "
          f"CI=[{res_arr.ci_low:+.4f}, {res_arr.ci_high:+.4f}]")
    print(f"scipy.stats.bootstrap (paired, vectorized):         {t_scipy:8.3f} s   "
          f"CI=[{ref.confidence_interval.low:+.4f}, {ref.confidence_interval.high:+.4f}]")
    print(f"ratio scipy / evalbench: {t_scipy / t_dict:.2f}x (dict input), "
          f"{t_scipy / t_arr:.2f}x (array input)")
    verdict = "OK" if t_dict < TARGET_S else "SLOWER THAN TARGET"
    print(f"target < {TARGET_S:.1f} s: {verdict}")
    return 0 if t_dict < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
