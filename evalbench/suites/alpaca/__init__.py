"""AlpacaEval 2 (Dubois et al. 2024; tatsu-lab/alpaca_eval): 805 instructions judged pairwise
against gpt-4-1106-preview by the weighted GPT-4-turbo judge.

- `evalbench.suites.alpaca.data`: the eval set, model_outputs.json / annotation files, LC-GLM inputs.
- `evalbench.suites.alpaca.rescore`: `evalbench score alpaca` and `rescore_annotations(paths)`.
- Metrics live in `evalbench.score.winrate`; the judge's log-prob parser in `evalbench.judge.logprob`.

Nothing heavy is imported here.
"""
