"""Gradient norms: the total (what clipping sees), per named part of the model, and per task on a
shared encoder (which task's loss dominates the encoder's update)."""
from __future__ import annotations

import torch

from nlu_collapse.telemetry import keys


def grad_norms(params: list[torch.nn.Parameter], parts: dict[str, torch.nn.Module]):
    """(total gradient norm, {grad/norm/<part>: norm}) from one pass over the gradients of `params` (each
    with a `.grad`): each parameter's norm once (the foreach kernel `clip_grad_norm_` uses), combined per
    part and overall exactly as `get_total_norm` combines them, so the numbers are the ones it gives on
    each list."""
    norms = dict(zip(params, torch._foreach_norm([p.grad for p in params])))
    combine = lambda tensors: torch.linalg.vector_norm(torch.stack(tensors))  # noqa: E731
    by_part = {}
    for name, module in parts.items():
        part = [norms[p] for p in module.parameters() if p in norms]
        if part:  # a part without gradients this step (frozen, or unused) has no norm
            by_part[keys.module_grad_norm(name)] = combine(part)
    return combine(list(norms.values())), by_part


def task_grad_norms(task_losses: dict[str, torch.Tensor], shared: torch.nn.Module) -> dict[str, torch.Tensor]:
    """{grad/task/<task>: norm of that task's loss gradient on the `shared` module's parameters}. Call it
    before `backward` (it keeps the graph: `retain_graph=True`); it leaves `.grad` untouched. One extra
    backward pass per task: worth it on logged steps only."""
    params = [p for p in shared.parameters() if p.requires_grad]
    norms = {}
    for task, loss in task_losses.items():
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        norms[keys.task_grad_norm(task)] = torch.nn.utils.get_total_norm([g for g in grads if g is not None])
    return norms
