"""Evaluation: the field's metrics and LR protocols, the baselines (bicubic, IBP, ZSSR) and the benchmark harness."""
