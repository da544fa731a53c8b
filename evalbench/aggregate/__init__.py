"""Aggregation across seeds and checkpoints (`evalbench.aggregate.stats`); imports nothing heavy."""
