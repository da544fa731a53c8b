"""MT-bench (Zheng et al. 2023; lm-sys/FastChat llm_judge): 80 two-turn questions in 8 categories.

Modules:
  data     -- questions, GPT-4 references, judge prompts; FastChat answer/judgment file formats
  judging  -- judge messages (single and pairwise, reference-guided categories), both-order verdicts
  scoring  -- per-model scores with FastChat show_result's rules (single 1-10, pairwise win rates)
  rescore  -- `evalbench score mtbench`: re-score saved judgment files without calling a model
"""
