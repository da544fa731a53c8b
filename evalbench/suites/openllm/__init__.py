"""OpenLLM leaderboard tasks through lm-eval (suites `openllm` and `openllm_v2`); see docs/openllm.md."""
