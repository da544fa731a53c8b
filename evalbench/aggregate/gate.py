"""CI regression gate: does the candidate run drop significantly below the baseline on any metric?

A metric **fails** when the data show that its drop exceeds the rule's allowance: with
`drop = baseline - candidate` for a higher-is-better metric (`candidate - baseline` when lower is
better; means over models of each model's mean over generation seeds), the one-sided test of

    H0: drop <= max_drop   against   H1: drop > max_drop

(a non-inferiority test with margin `max_drop`) is significant at the rule's `alpha` after
correction over all gated metrics (Holm by default). The test is the one `compare` uses
(`evalbench.aggregate.compare.compare_groups`: the hierarchical test over training seeds and prompts,
an exact sign flip for few prompts, a resampled test for derived metrics, Welch on model means for
summary-only metrics), run with `alternative` set by the direction and `margin = max_drop`.

A noisy drop therefore passes, and so does a drop that the data cannot tell from the allowance
(reported as such); an improvement always passes. On null data it fails at most `alpha` of the
time (docs/statistics.md, "Calibration"). A metric that cannot be tested (no
per-sample scores and a single seed) is reported as `untested` and passes unless the rule sets
`fail_untested: true`.

Rules come from YAML (`evalbench/assets/gates/default.yaml` is the default):

    correction: holm              # holm | bh | bonferroni | none, over all gated metrics
    iters: 10000                  # bootstrap resamples / permutation sign flips
    defaults: {direction: higher, max_drop: 0.0, alpha: 0.05, test: auto}
    rules:                        # first matching rule wins; metrics matching no rule are not gated
      - {suite: alpaca, metric: length_controlled_winrate, max_drop: 1.0}
      - {suite: "*", metric: "mtbench_*", max_drop: 0.1, required: false}

`check` is a pure function over loaded runs; the CLI (`evalbench gate`) maps its report to exit
codes: 0 pass, 1 a significant regression beyond its allowance, 2 bad input (unreadable or corrupt
run, rules file errors, runs of different suites or prompt sets).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from evalbench.aggregate.compare import TEST_CHOICES, compare_groups
from evalbench.aggregate.summarize import ResultSet, RunData, is_bookkeeping
from evalbench.config import Spec, load_spec
from evalbench.errors import InputError
from evalbench.registry import did_you_mean
from evalbench.resources import GATE_RULES

Direction = Literal["higher", "lower"]
DEFAULT_RULES = GATE_RULES  # package data: `evalbench gate` works from a wheel too


def _check_test(v: str | None) -> str | None:
    if v is not None and v not in TEST_CHOICES:
        raise ValueError(f"unknown test '{v}'{did_you_mean(v, TEST_CHOICES)} (known: {', '.join(TEST_CHOICES)})")
    return v


class GateDefaults(Spec):
    """Values a rule inherits when it does not set them."""

    direction: Direction = "higher"
    max_drop: float = Field(0.0, ge=0.0)
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    test: str = "auto"
    fail_untested: bool = False

    @field_validator("test")
    @classmethod
    def _test(cls, v: str) -> str:
        return _check_test(v)


class GateRule(Spec):
    """One rule: which metrics (shell patterns) and how much they may drop, in the metric's units."""

    metric: str
    suite: str = "*"
    direction: Direction | None = None
    max_drop: float | None = Field(None, ge=0.0)
    alpha: float | None = Field(None, gt=0.0, lt=1.0)
    test: str | None = None
    fail_untested: bool | None = None
    # The metric must be present, with values, in both runs; otherwise the gate errors (exit 2).
    required: bool = False
    # Matched metrics are not gated (e.g. lengths, which are properties rather than quality).
    skip: bool = False

    @field_validator("test")
    @classmethod
    def _test(cls, v: str | None) -> str | None:
        return _check_test(v)

    def matches(self, suite: str, metric: str) -> bool:
        """Shell-pattern match; bookkeeping counts (n_total, standard_error, ...) only by exact name."""
        if is_bookkeeping(metric) and metric != self.metric:
            return False
        return fnmatchcase(suite, self.suite) and fnmatchcase(metric, self.metric)


class GateRules(Spec):
    correction: str = "holm"
    conf: float = Field(0.95, gt=0.0, lt=1.0)
    iters: int = Field(10_000, ge=1)
    seed: int = 0
    defaults: GateDefaults = GateDefaults()
    rules: tuple[GateRule, ...] = Field(min_length=1)

    @field_validator("correction")
    @classmethod
    def _correction(cls, v: str) -> str:
        from evalbench.aggregate.stats import ADJUSTMENTS

        if v not in ADJUSTMENTS:
            names = ADJUSTMENTS.names()
            raise ValueError(f"unknown correction '{v}'{did_you_mean(v, names)} (known: {', '.join(names)})")
        return v


def load_rules(path: str | Path | None = None, overrides: Sequence[str] = ()) -> GateRules:
    """Validated rules from YAML (default `evalbench/assets/gates/default.yaml`); errors name file and key."""
    return load_spec(GateRules, Path(path) if path else DEFAULT_RULES, overrides)


@dataclass(frozen=True)
class GateResult:
    """The verdict on one metric of one checkpoint group."""

    suite: str
    metric: str
    candidate_group: str
    baseline_group: str
    direction: str
    max_drop: float
    alpha: float
    status: Literal["pass", "fail", "untested"]
    baseline_mean: float | None = None
    candidate_mean: float | None = None
    drop: float | None = None  # > 0: the candidate is worse
    test: str | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    delta_ci_low: float | None = None
    delta_ci_high: float | None = None
    n_baseline: int = 0
    n_candidate: int = 0
    reason: str = ""
    level: str | None = None
    n_models_baseline: int | None = None
    n_models_candidate: int | None = None
    n_gen_seeds_baseline: int | None = None
    n_gen_seeds_candidate: int | None = None
    n_prompts: int | None = None
    df: float | None = None
    mde: float | None = None

    @property
    def levels(self) -> str:
        """n at each level: 'models 5/5, gen. seeds 1/1, prompts 805' (baseline/candidate)."""
        parts = []
        if self.n_models_baseline is not None:
            parts.append(f"models {self.n_models_baseline}/{self.n_models_candidate}")
            parts.append(f"gen. seeds {self.n_gen_seeds_baseline}/{self.n_gen_seeds_candidate}")
        if self.n_prompts is not None:
            parts.append(f"prompts {self.n_prompts}")
        return ", ".join(parts)

    @property
    def name(self) -> str:
        return f"{self.suite}/{self.metric}"


@dataclass
class GateReport:
    results: list[GateResult]
    correction: str
    baseline: str = "baseline"
    candidate: str = "candidate"
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[GateResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_markdown(self) -> str:
        return report_markdown(self)

    def to_junit_xml(self) -> str:
        return report_junit(self)


# ---------------------------------------------------------------------------------------------
# pairing groups


def _as_set(x: ResultSet | RunData | Sequence[RunData]) -> ResultSet:
    if isinstance(x, ResultSet):
        return x
    return ResultSet([x] if isinstance(x, RunData) else list(x))


def _label(rs: ResultSet) -> str:
    return ", ".join(rs.runs) or "?"


def _pairs(suite: str, cand: ResultSet, base: ResultSet, cg: str | None, bg: str | None) -> list[tuple[str, str]]:
    cgs, bgs = cand.groups(suite), base.groups(suite)
    if cg or bg:
        c = cg if cg else (cgs[0] if len(cgs) == 1 else bg)
        b = bg if bg else (bgs[0] if len(bgs) == 1 else cg)
        if c not in cgs:
            raise InputError(f"{suite}: candidate has no checkpoint group '{c}'{did_you_mean(str(c), cgs)} "
                             f"(groups: {', '.join(cgs)})", field="--candidate-group")
        if b not in bgs:
            raise InputError(f"{suite}: baseline has no checkpoint group '{b}'{did_you_mean(str(b), bgs)} "
                             f"(groups: {', '.join(bgs)})", field="--baseline-group")
        return [(c, b)]
    if len(cgs) == 1 and len(bgs) == 1:
        return [(cgs[0], bgs[0])]
    common = [g for g in bgs if g in cgs]
    if not common:
        raise InputError(f"{suite}: cannot tell which checkpoints to compare: baseline has {', '.join(bgs)}; "
                         f"candidate has {', '.join(cgs)}; pass --baseline-group and --candidate-group")
    return [(g, g) for g in common]


# ---------------------------------------------------------------------------------------------
# the gate


def _mean(values: dict[str, float]) -> float | None:
    return sum(values.values()) / len(values) if values else None


def _alternative(direction: str, max_drop: float) -> tuple[str, float]:
    """The non-inferiority test on delta = candidate - baseline: H1 says the drop exceeds max_drop."""
    # higher is better: drop = -delta > max_drop  <=>  delta < -max_drop
    return ("less", -max_drop) if direction == "higher" else ("greater", max_drop)


def check(candidate: ResultSet | RunData | Sequence[RunData], baseline: ResultSet | RunData | Sequence[RunData],
          rules: GateRules, *, candidate_group: str | None = None,
          baseline_group: str | None = None) -> GateReport:
    """Gate `candidate` against `baseline` with `rules`; pure (no I/O beyond the loaded runs).

    Every numeric metric of every suite is matched against the rules in order (first match wins;
    unmatched metrics, bookkeeping counts and metrics of a `skip` rule are not gated). Groups are paired per suite: the named groups, else the only
    group of each run, else groups of the same name.

    Raises:
        InputError: the runs cover different suites; groups cannot be paired; a `required` rule
            matches nothing or lacks values; suite versions or prompt sets differ.
    """
    from dataclasses import replace

    from evalbench.aggregate.stats import adjust

    cand, base = _as_set(candidate), _as_set(baseline)
    cs, bs = cand.suites(), base.suites()
    if set(cs) != set(bs):
        raise InputError(f"the runs cover different suites: baseline {sorted(bs)}, candidate {sorted(cs)}")
    if not bs:
        raise InputError("the runs have no result rows (empty summary.json 'results')")
    d = rules.defaults
    matched = [False] * len(rules.rules)
    pending: list[tuple[GateResult, float | None]] = []
    for suite in bs:
        for cg, bg in _pairs(suite, cand, base, candidate_group, baseline_group):
            cgd, bgd = cand.group(suite, cg), base.group(suite, bg)
            assert cgd is not None and bgd is not None
            metrics = list(dict.fromkeys([*bgd.metric_names(), *cgd.metric_names()]))
            for metric in metrics:
                idx = next((i for i, r in enumerate(rules.rules) if r.matches(suite, metric)), None)
                if idx is None:
                    continue
                matched[idx] = True
                rule = rules.rules[idx]
                if rule.skip:
                    continue
                direction = rule.direction or d.direction
                max_drop = rule.max_drop if rule.max_drop is not None else d.max_drop
                alpha = rule.alpha if rule.alpha is not None else d.alpha
                test = rule.test or d.test
                fail_untested = rule.fail_untested if rule.fail_untested is not None else d.fail_untested
                bv, _ = bgd.top_level_values(metric)
                cv, _ = cgd.top_level_values(metric)
                bm, cm = _mean(bv), _mean(cv)
                common = {"suite": suite, "metric": metric, "candidate_group": cg, "baseline_group": bg,
                              "direction": direction, "max_drop": max_drop, "alpha": alpha, "baseline_mean": bm,
                              "candidate_mean": cm, "n_baseline": len(bv), "n_candidate": len(cv)}
                if bm is None or cm is None:
                    side = "baseline" if bm is None else "candidate"
                    if rule.required:
                        raise InputError(f"{suite}/{metric}: the {side} run has no value for this required metric")
                    status = "fail" if fail_untested else "untested"
                    pending.append((GateResult(**common, status=status, reason=f"no value in the {side} run"),
                                    None))
                    continue
                drop = (bm - cm) if direction == "higher" else (cm - bm)
                alternative, margin = _alternative(direction, max_drop)
                outcome = compare_groups(cgd, bgd, metric, test=test, conf=rules.conf, iters=rules.iters,
                                         seed=rules.seed, all_tests=False, alternative=alternative,
                                         margin=margin, alpha=alpha)
                untested = "fail" if fail_untested else "untested"
                result = GateResult(**common, status=untested, drop=drop, test=outcome.test,
                                    p_value=outcome.p_value, delta_ci_low=outcome.delta_ci_low,
                                    delta_ci_high=outcome.delta_ci_high,
                                    reason=outcome.note or ("" if outcome.tested else "not testable"),
                                    level=outcome.level, n_models_baseline=outcome.n_models_baseline,
                                    n_models_candidate=outcome.n_models,
                                    n_gen_seeds_baseline=outcome.n_gen_seeds_baseline,
                                    n_gen_seeds_candidate=outcome.n_gen_seeds, n_prompts=outcome.n_prompts,
                                    df=outcome.df, mde=outcome.mde)
                pending.append((result, outcome.p_value))
    for i, rule in enumerate(rules.rules):
        if rule.required and not matched[i]:
            known = sorted({f"{s}:{m}" for s, m in base.metric_columns(["*"])})
            raise InputError(f"required gate rule {i + 1} ({rule.suite}:{rule.metric}) matches no metric "
                             f"(baseline metrics: {', '.join(known)})", field=f"rules[{i}]")
    tested = [j for j, (_, p) in enumerate(pending) if p is not None]
    adjusted = adjust([pending[j][1] for j in tested], rules.correction) if tested else []
    results = [r for r, _ in pending]
    for j, padj in zip(tested, adjusted):
        r = results[j]
        regressed = r.drop is not None and r.drop > r.max_drop and not math.isclose(r.drop, r.max_drop)
        # p is the one-sided test of drop > max_drop, so significance already means "beyond the
        # allowance"; `regressed` only guards the degenerate zero-variance case.
        significant = padj < r.alpha
        if regressed and significant:
            status, why = "fail", (f"dropped {r.drop:.4g}, significantly more than the allowed {r.max_drop:g} "
                                   f"(one-sided {rules.correction}-corrected p = {padj:.3g} < {r.alpha:g})")
        elif regressed:
            status, why = "pass", (f"dropped {r.drop:.4g} (allowed {r.max_drop:g}) but not significantly more "
                                   f"than allowed (one-sided {rules.correction}-corrected p = {padj:.3g} >= "
                                   f"{r.alpha:g}; not significant)")
        elif r.drop is not None and r.drop > 0:
            status, why = "pass", f"dropped {r.drop:.4g}, within the allowed {r.max_drop:g}"
        else:
            status, why = "pass", "no drop"
        reason = why + (f"; {r.reason}" if r.reason else "")
        results[j] = replace(r, status=status, p_adjusted=padj, reason=reason)
    return GateReport(results, rules.correction, _label(base), _label(cand))


# ---------------------------------------------------------------------------------------------
# reports


_ICON = {"pass": "✅ pass", "fail": "❌ FAIL", "untested": "⚠️ untested"}


def _num(x: float | None, fmt: str = ".4g") -> str:
    return "—" if x is None else format(x, fmt)


def report_markdown(report: GateReport) -> str:
    """A Markdown summary for PR comments / `$GITHUB_STEP_SUMMARY`."""
    n_fail = len(report.failures)
    n_untested = sum(r.status == "untested" for r in report.results)
    head = (f"## evalbench gate: ❌ {n_fail} significant regression{'s' if n_fail != 1 else ''}" if n_fail
            else "## evalbench gate: ✅ no significant regression")
    lines = [head, "",
             f"Baseline `{report.baseline}`, candidate `{report.candidate}`; {len(report.results)} metric(s) gated, "
             f"p-values {report.correction}-corrected over all of them"
             + (f"; {n_untested} could not be tested" if n_untested else "") + ".", "",
             ("| suite | metric | checkpoint | baseline | candidate | drop | allowed | test | n (base/cand.) "
              "| CI of Δ | MDE | p | p adj. | α | result |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report.results:
        ck = r.candidate_group if r.candidate_group == r.baseline_group else f"{r.candidate_group} vs {r.baseline_group}"
        test = (r.test or "—") + (f" ({r.level})" if r.level else "")
        ci = "—" if r.delta_ci_low is None else f"[{_num(r.delta_ci_low)}, {_num(r.delta_ci_high)}]"
        lines.append(f"| {r.suite} | {r.metric} | {ck} | {_num(r.baseline_mean)} (n={r.n_baseline}) | "
                     f"{_num(r.candidate_mean)} (n={r.n_candidate}) | {_num(r.drop)} | {r.max_drop:g} | "
                     f"{test} | {r.levels or '—'} | {ci} | {_num(r.mde, '.3g')} | {_num(r.p_value, '.3g')} | "
                     f"{_num(r.p_adjusted, '.3g')} | {r.alpha:g} | {_ICON[r.status]} |")
    details = [r for r in report.results if r.status != "pass" or "not significant" in r.reason]
    if details:
        lines += [""] + [f"- **{r.name}** ({r.candidate_group}): {r.reason}" for r in details]
    lines += ["", ("A metric fails when the one-sided (non-inferiority) test of drop > allowed is significant: "
              "its corrected p-value is below α (drop = baseline − candidate for higher-is-better metrics; Δ = "
              "candidate − baseline; MDE = the difference detectable with 80 % power). "
              "n = models (or generation seeds of a single model) per side; see docs/statistics.md.")]
    return "\n".join(lines) + "\n"


def report_junit(report: GateReport) -> str:
    """JUnit XML: one testcase per gated metric, `<failure>` for regressions, `<skipped>` if untested."""
    n_fail = len(report.failures)
    n_skip = sum(r.status == "untested" for r in report.results)
    root = ET.Element("testsuites", name="evalbench gate", tests=str(len(report.results)), failures=str(n_fail),
                      errors="0", skipped=str(n_skip))
    suite = ET.SubElement(root, "testsuite", name="evalbench-gate", tests=str(len(report.results)),
                          failures=str(n_fail), errors="0", skipped=str(n_skip))
    props = ET.SubElement(suite, "properties")
    for k, v in (("baseline", report.baseline), ("candidate", report.candidate), ("correction", report.correction)):
        ET.SubElement(props, "property", name=k, value=v)
    for r in report.results:
        case = ET.SubElement(suite, "testcase", classname=f"evalbench.gate.{r.suite}.{r.candidate_group}",
                             name=r.metric, time="0")
        detail = (f"baseline {_num(r.baseline_mean)} (n={r.n_baseline}), candidate {_num(r.candidate_mean)} "
                  f"(n={r.n_candidate}), drop {_num(r.drop)}, allowed {r.max_drop:g}, test {r.test} ({r.level}; "
                  f"{r.levels}), CI of delta [{_num(r.delta_ci_low)}, {_num(r.delta_ci_high)}], "
                  f"MDE {_num(r.mde, '.3g')}, one-sided p {_num(r.p_value, '.3g')}, adjusted p "
                  f"{_num(r.p_adjusted, '.3g')}, alpha {r.alpha:g}")
        if r.status == "fail":
            el = ET.SubElement(case, "failure", message=f"{r.name}: {r.reason}", type="regression")
            el.text = detail
        elif r.status == "untested":
            ET.SubElement(case, "skipped", message=f"{r.name}: {r.reason}")
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


__all__ = ["DEFAULT_RULES", "GateDefaults", "GateReport", "GateResult", "GateRule", "GateRules", "check",
           "load_rules", "report_junit", "report_markdown"]
