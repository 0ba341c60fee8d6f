"""The collapse instruments of this repo, for any PyTorch training loop (one implementation: train.py
uses the same classes).

    from nlu_collapse.toolkit import CollapseMonitor, SentenceTask, TokenTask   # a plain PyTorch loop
    from nlu_collapse.toolkit.hf import CollapseCallback, CollapseTrainer       # Hugging Face Trainer

The building blocks, for a loop that keeps its own records (train.py): `HealthMonitor` (flags,
episodes, outcome), `CollapseWatch` (drives it, alerts once), `Forensics` (replays a non-finite step from
a closure: component, phase, op, file:line, module, first infinity, spread), `grad_norms` and
`task_grad_norms`. Nothing here imports this repo's model, data or configuration. docs/toolkit.md
shows each in use.
"""
from nlu_collapse.telemetry.forensics import Forensics
from nlu_collapse.telemetry.health import HealthMonitor, degenerate_evidence
from nlu_collapse.telemetry.watch import CollapseWatch
from nlu_collapse.toolkit.gradients import grad_norms, task_grad_norms
from nlu_collapse.toolkit.monitor import CollapseMonitor, SentenceTask, TokenTask, verdict_lines

__all__ = ["CollapseMonitor", "CollapseWatch", "Forensics", "HealthMonitor", "SentenceTask", "TokenTask",
           "degenerate_evidence", "grad_norms", "task_grad_norms", "verdict_lines"]
