"""Judges: who rates answers and compares pairs, and how their replies are read.

    base.py         Judge (rate / compare -> Rating / Preference, never sentinels), ModelJudge over a
                    cached backend, JudgeId (computed once), RateItem / PairItem
    fake.py         FakeJudge: scripted or hashed verdicts, no model (users' tests and ours; --judge fake)
    formats.py      verdict formats: decoding + parsing of bracket_rating, bracket_choice, logprob
    prompts.py      JudgePrompt (the one prompt type: alpaca_eval ChatML and FastChat styles)
    parsers.py      pure text parsers ([[N]], [[A]]/[[B]]/[[C]]), registry PARSERS
    logprob.py      AlpacaEval 2's log-prob weighted preference
    build.py        make_judge(JudgeSpec, backend): the run's Judge, built once by evalbench.api
    repeats.py      judge repeats (--judge-repeats K): per-repeat judge seed, mean over repeats +
                    data["judge_repeats"] for the judge variance component

The --judge SPEC option group shared by run, alpaca judge and mtbench judge is in evalbench.cli.options.
"""
