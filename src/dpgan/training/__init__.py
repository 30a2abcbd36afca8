"""The training wing: the loop (loop.py), the step functions and the training state, EMA, the
step-keyed sampler, divergence guard and graceful stop (resilience), start-up checks
(preflight), multi-process training (distributed, global_batch) and speed options (speed)."""
