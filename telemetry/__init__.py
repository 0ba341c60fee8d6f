"""Per-step telemetry: the metric-key vocabulary (`keys`, importable on its own: losses and
evaluation use it), distributions, health flags and the collapse verdict (`health`, `watch`),
the first NaN's origin (`forensics`), the run record (`record`) and W&B (`tracking`)."""
