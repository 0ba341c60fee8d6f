"""Where a run's first non-finite value came from, recorded at the step it appears.

`torch.autograd.detect_anomaly` answers this question but is too slow to leave on, and it prints a
traceback nobody keeps. Here the question is asked only once something is already wrong: at the first
step whose loss or gradient norm is non-finite, *before* the optimizer step (the parameters are still
the ones that produced it), the step is replayed with the same parameters and the same RNG state, by a
closure the training loop hands in that recomputes the step's loss from its batch (train.py: its
forward and MultiTaskLoss; any other loop: its own code, through `nlu_collapse.toolkit`):

- forward, with a hook on every module (the first module, in execution order, whose output holds
  NaN/inf) and a torch-function mode (the first operation that made a NaN from NaN-free inputs, or an
  inf from finite ones, and the source line that called it);
- backward, under anomaly mode (which records each autograd node's forward traceback), with a hook on
  every node (the first node whose gradient became non-finite from finite incoming gradients) and on
  every parameter (the first one, in backward order, whose gradient is non-finite);
- each loss term the closure returns (a task's loss) alone, to say whose gradient carries the
  non-finite value.

An operation that only passes a NaN on is never blamed, and an infinity made on purpose (a `-inf`
label or attention mask) is reported as the *first infinity* (`inf_origin`), not as the origin, unless
nothing made a NaN. Source lines are the training code's (`source`: the innermost frame outside
Python's library, the installed packages and these instruments; shown relative to this repository or
the working directory), with the innermost frame anywhere beside it (`source_detail`, e.g. a line of
transformers' BERT).

The replay computes gradients with `torch.autograd.grad`, so `.grad` is left as training made it, and
the RNG state is restored afterwards, so training continues exactly as it would have without it.
After the optimizer step, the share of parameter tensors that became non-finite (per part of the
model) says how far it spread. Healthy steps pay one finiteness check of the loss and gradient norm.
"""
from __future__ import annotations

import re
import sysconfig
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from nlu_collapse.rng import rng_state, set_rng_state
from nlu_collapse.telemetry import keys

MODES = ("off", "first", "every")
REPO = Path(__file__).resolve().parent.parent
# Frames in these folders are the instruments' own (this replay, the toolkit's monitor and Trainer hook
# that call the closure): never the training code an origin names.
INSTRUMENTS = (REPO / "telemetry", REPO / "toolkit")
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)')

# What a closure returns: the loss, a dict of loss terms (summed), or (loss, terms).
Closure = Callable[[], "torch.Tensor | dict[str, torch.Tensor] | tuple[torch.Tensor, dict[str, torch.Tensor]]"]


def _tensors(value):
    """Every floating-point tensor inside a module output (tensor, tuple, list, dict, HF ModelOutput)."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)


def nonfinite_kind(value) -> str | None:
    """'nan' if any tensor in `value` holds a NaN, else '+inf'/'-inf'/'inf' if it holds infinities, else None."""
    tensors = list(_tensors(value))
    if any(torch.isnan(t).any() for t in tensors):
        return "nan"
    infinite = [t[torch.isinf(t)] for t in tensors]
    positive, negative = (any(bool((sign * x > 0).any()) for x in infinite) for sign in (1, -1))
    return "inf" if positive and negative else "+inf" if positive else "-inf" if negative else None


def _where(frames: list[tuple[str, int, str]]) -> tuple[str | None, str | None]:
    """(innermost frame of the training code, innermost frame anywhere), as 'path:line', skipping torch's
    own wrappers and these instruments (see the module docstring)."""
    user, anywhere = None, None
    for file, line, _ in reversed(frames):
        if file.startswith("<") or "/torch/" in file:
            continue
        path = Path(file).resolve()
        if any(path.is_relative_to(folder) for folder in INSTRUMENTS):
            continue
        library = "site-packages" in path.parts or "dist-packages" in path.parts or path.is_relative_to(STDLIB)
        shown = f"{_short(path) if library else _relative(path)}:{line}"
        anywhere = anywhere or shown
        if not library:
            user = shown
            break
    return user, anywhere


def _relative(path: Path) -> str:
    """losses/focal.py inside this repository, examples/x.py under the working directory, else the full path."""
    for root in (REPO, Path.cwd().resolve()):
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return str(path)


def _short(path: Path) -> str:
    """site-packages/transformers/models/bert/modeling_bert.py -> transformers/models/bert/modeling_bert.py"""
    parts = path.parts
    for folder in ("site-packages", "dist-packages"):
        if folder in parts:
            return "/".join(parts[parts.index(folder) + 1:])
    return str(path)


def _parse_traceback(lines: list[str]) -> list[tuple[str, int, str]]:
    return [(m["file"], int(m["line"]), m["func"]) for m in map(_FRAME.search, lines) if m]


def _new_kind(out_kind: str | None, in_kind: str | None) -> str | None:
    """What an operation created: NaN from NaN-free inputs, or an infinity from finite inputs."""
    if out_kind == "nan" and in_kind != "nan":
        return "nan"
    return out_kind if out_kind is not None and out_kind != "nan" and in_kind is None else None


def _remember(found: dict, kind: str | None, fact: dict) -> None:
    """Keep the first NaN creator and the first inf creator."""
    slot = "nan" if kind == "nan" else "inf"
    if kind is not None and slot not in found:
        found[slot] = {**fact, "kind": kind}


class _FirstBadOp(TorchFunctionMode):
    """Forward: the first torch operation that created a NaN, and the first that created an infinity."""

    def __init__(self):
        super().__init__()
        self.found: dict[str, dict] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if "nan" not in self.found and isinstance(out, (torch.Tensor, tuple, list)):
            kind = nonfinite_kind(out)
            if kind is not None:
                new = _new_kind(kind, nonfinite_kind([args, kwargs or {}]))
                if new is not None:
                    user, anywhere = _where([(f.filename, f.lineno, f.name) for f in traceback.extract_stack()])
                    _remember(self.found, new, {"op": getattr(func, "__name__", str(func)), "source": user,
                                                "source_detail": anywhere})
        return out


def _owners(parts: dict[str, torch.nn.Module]) -> dict[int, str]:
    """id(parameter) -> the name of the part it belongs to (train.py: encoder, entity, intent, command)."""
    return {id(param): name for name, module in parts.items() for param in module.parameters()}


def _share_by_part(model, parts, tensors_of) -> dict[str, float]:
    """Share of parameter tensors per part (and 'all') for which `tensors_of(param)` is non-finite."""
    owner, counts = _owners(parts), {}
    for param in model.parameters():
        tensor = tensors_of(param)
        bad = tensor is not None and not bool(torch.isfinite(tensor).all())
        for name in (owner.get(id(param), "other"), "all"):
            n_bad, n = counts.get(name, (0, 0))
            counts[name] = (n_bad + bad, n + 1)
    return {name: n_bad / n for name, (n_bad, n) in counts.items()}


def default_parts(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """A model's named parts: its `named_parts()` where it has one, else its top-level modules that hold
    parameters."""
    if hasattr(model, "named_parts"):
        return model.named_parts()
    return {name: module for name, module in model.named_children() if any(True for _ in module.parameters())}


def loss_terms(value) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A closure's result as (loss, terms): a tensor is the loss alone; a dict of terms sums to the loss;
    (loss, terms) is both."""
    if isinstance(value, torch.Tensor):
        return value, {}
    if isinstance(value, dict):
        return sum(value.values()), dict(value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        return value[0], dict(value[1])
    raise TypeError(f"the forensics closure returned {type(value).__name__}: expected the loss tensor, a dict of "
                    "loss tensors by name, or (loss, that dict)")


class Forensics:
    """One per run. `begin_step` before each step's forward, `check` between clipping and the optimizer
    step, `after_step` after it; `on_record(summary_values)` receives the origin and spread once known.

    Args:
        mode: off, first (one replay per run) or every (every non-finite step).
        parts: the model's named parts, for per-part attribution and spread; default: the model's own
            `named_parts()` where it has one (this repo's MultiTaskNLU: encoder, entity, intent, command),
            else its top-level modules.
        shared: the parts every task reads (a shared encoder): named as such in the origin's text.
        write_line: called with each replayed step's findings (train.py passes the run record's
            `log_forensics`, which keeps them in forensics.jsonl; a resume trims them with the history).
        on_record: called with the summary keys to store (train.py passes the tracker's summary).
        recorded: the `health/nan_origin` a resumed run already has (then `first` stays disarmed).
    """

    def __init__(self, mode: str = "first", parts: dict[str, torch.nn.Module] | None = None,
                 shared: tuple[str, ...] = (), write_line=None, on_record=None, recorded: dict | None = None):
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}: expected one of {', '.join(MODES)}")
        self.mode, self.parts, self.shared = mode, parts, tuple(shared)
        self.write_line, self.on_record = write_line, on_record
        self.origin: dict | None = recorded
        self.armed = mode == "every" or (mode == "first" and recorded is None)
        self._step, self._rng, self._pending = 0, None, None

    def begin_step(self, step: int) -> None:
        """The RNG state the step's forward will draw dropout from (a host-side copy, no device sync)."""
        if self.armed:
            self._step, self._rng = step, rng_state()

    def check(self, model: torch.nn.Module, closure: Closure, loss, grad_norm, losses: dict,
              scale: Callable | None = None) -> bool:
        """Between clipping and the optimizer step: replay the step if its loss or grad norm is non-finite.

        Args:
            model: the model, its parameters as the step's forward saw them.
            closure: recomputes the step's loss from its batch (Closure); called only on a non-finite step.
            loss, grad_norm: the step's loss and total gradient norm (tensors or floats).
            losses: the step's metrics (tensors or floats): its `loss/total` and `loss/<task>` are shown in
                the origin; with the step's value of each of the closure's terms (`loss/weighted/<term>`,
                else `loss/<term>`) they say whether the replay reproduced the step bit for bit.
            scale: under fp16, the GradScaler's `scale`: a non-finite gradient with a finite loss is an
                overflow the scaler skips, not something to replay.
        """
        if not self.armed:
            return False
        loss_finite, norm_finite = (torch.isfinite(torch.stack([torch.as_tensor(loss).detach().float(),
                                                                torch.as_tensor(grad_norm).float()])).tolist())
        if loss_finite and (norm_finite or scale is not None):
            return False
        parts = self.parts if self.parts is not None else default_parts(model)
        after = rng_state()
        set_rng_state(self._rng)
        try:
            facts = replay(model, closure, parts, scale)
        finally:
            set_rng_state(after)  # training draws the same numbers it would have drawn without the replay
        shown = {key: _show(value) for key, value in losses.items()
                 if key.startswith(keys.prefix("loss")) and not key.startswith(keys.weighted_loss(""))}
        origin = conclude(facts, shown)
        origin["step"] = self._step
        # Same parameters, batch and RNG state: the replay must reproduce the step's losses bit for bit.
        step_terms = {name: losses.get(keys.weighted_loss(name), losses.get(keys.loss(name)))
                      for name in facts["replayed"]}
        origin["replay_exact"] = _same(facts["loss"], loss) and all(
            _same(facts["replayed"][name], value) for name, value in step_terms.items() if value is not None)
        origin["grad_norm"] = _show(grad_norm)
        origin["grads_after_clip"] = _share_by_part(model, parts, lambda p: p.grad)
        self._pending = (origin, parts)
        self.armed = self.mode == "every"
        return True

    def after_step(self, model) -> None:
        """After the optimizer step of a replayed step: how far the non-finite values spread."""
        if self._pending is None:
            return
        (origin, parts), self._pending = self._pending, None
        spread = _share_by_part(model, parts, lambda p: p.detach())
        origin["spread"] = spread
        origin["spread_by"] = spread_by(origin)
        origin["text"] = describe(origin, self.shared)
        if self.write_line is not None:
            self.write_line(origin)
        if self.origin is None:
            self.origin = origin
            if self.on_record is not None:
                self.on_record(summary_keys(origin))

    @property
    def text(self) -> str:
        return self.origin["text"] if self.origin else ""


def _show(value) -> float | str:
    """A float that JSON and W&B keep: NaN and inf as strings (W&B stores a NaN summary value as null)."""
    number = float(value)
    return number if abs(number) != float("inf") and number == number else str(number)


def _same(a, b) -> bool:
    """The same number bit for bit (in the step's precision), NaN equal to NaN."""
    a, b = (float(x.detach()) if isinstance(x, torch.Tensor) else float(x) for x in (a, b))
    return a == b or (a != a and b != b)


def replay(model, closure: Closure, parts: dict[str, torch.nn.Module], scale: Callable | None = None) -> dict:
    """Forward and backward of one step with every watch attached; `.grad` is not touched.
    Returns the raw findings; `conclude` turns them into the origin."""
    hooks, first_module = [], {}
    names = {module: name or "model" for name, module in model.named_modules()}
    part_of = {module: name for name, part in parts.items() for module in part.modules()}

    def watch_module(module, inputs, output):
        if not first_module:
            kind = nonfinite_kind(output)
            if kind is not None:
                first_module.update(name=names[module], kind=kind, output=_bad_key(output))
                first_module["part"] = part_of.get(module)

    for module in names:
        hooks.append(module.register_forward_hook(watch_module))
    ops = _FirstBadOp()
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        with warnings.catch_warnings(), torch.autograd.set_detect_anomaly(True, check_nan=False):
            warnings.simplefilter("ignore")  # anomaly mode warns that it is slow: once per run, that is fine
            with ops:
                total, terms = loss_terms(closure())
            backward = _watch_backward(total if scale is None else scale(total), params, model, parts)
            grad_tasks = [task for task, loss in terms.items()
                          if not all(bool(torch.isfinite(g).all()) for g in torch.autograd.grad(
                              loss, params, retain_graph=True, allow_unused=True) if g is not None)]
    finally:
        for hook in hooks:
            hook.remove()
    forward_part = first_module.pop("part", None)
    return {"params_before": _share_by_part(model, parts, lambda p: p.detach()), "loss": total.detach(),
            "replayed": {name: term.detach() for name, term in terms.items()},
            "forward_module": first_module or None, "forward_part": forward_part, "forward_nan": ops.found.get("nan"),
            "forward_inf": ops.found.get("inf"), "grad_tasks": grad_tasks, **backward}


def _bad_key(output) -> str | None:
    """Which entry of a dict-like module output is non-finite ('entity' of the model's logits)."""
    if isinstance(output, dict):
        return next((key for key, value in output.items() if nonfinite_kind(value)), None)
    return None


def _watch_backward(loss, params, model, parts) -> dict:
    """The first autograd node whose outgoing gradient became NaN (or inf) from NaN-free (finite)
    incoming ones, with the forward line that created it (anomaly mode's traceback), and the first
    parameter, in backward order, whose gradient is non-finite."""
    found, first_param, handles = {}, {}, []
    param_names = {id(p): name for name, p in model.named_parameters()}
    owner = _owners(parts)

    def watch_node(node):
        def hook(grad_inputs, grad_outputs):  # grad_inputs: what this node computes, for its inputs
            if "nan" not in found:
                new = _new_kind(nonfinite_kind([g for g in grad_inputs if g is not None]),
                                nonfinite_kind([g for g in grad_outputs if g is not None]))
                if new is not None:
                    user, anywhere = _where(_parse_traceback(node.metadata.get("traceback_", [])))
                    _remember(found, new, {"op": node.name(), "source": user, "source_detail": anywhere})
        return hook

    def watch_param(param):
        def hook(grad):
            if not first_param and not bool(torch.isfinite(grad).all()):
                first_param.update(param=param_names.get(id(param)), module=owner.get(id(param), "other"))
        return hook

    seen, stack = set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        handles.append(node.register_hook(watch_node(node)))
        stack.extend(next_node for next_node, _ in node.next_functions)
    handles += [p.register_hook(watch_param(p)) for p in params]
    try:
        grads = dict(zip(map(id, params), torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)))
    finally:
        for handle in handles:
            handle.remove()
    return {"backward_nan": found.get("nan"), "backward_inf": found.get("inf"),
            "grad_module": first_param.get("module"), "grad_param": first_param.get("param"),
            "grads_backward": _share_by_part(model, parts, lambda p: grads.get(id(p)))}


def conclude(facts: dict, components: dict) -> dict:
    """The origin: the phase, operation and line that made the first NaN (an infinity when there is no
    NaN at all), the loss components it shows in, and the part of the model it belongs to."""
    bad = [k for k, v in components.items() if isinstance(v, str) and k != keys.LOSS_TOTAL]
    fwd_nan, bwd_nan = facts["forward_nan"], facts["backward_nan"]
    before = facts["params_before"]
    if before.get("all"):  # an earlier step (or a checkpoint) made them non-finite: nothing new to find here
        modules = [name for name, share in before.items() if share and name != "all"]
        return {"phase": "parameters", "component": ", ".join(bad) or None, "op": None, "kind": None,
                "source": None, "source_detail": None, "module": modules[0] if modules else None, "param": None,
                "inf_origin": None, "forward_module": facts.get("forward_module"), "grad_tasks": facts["grad_tasks"],
                "components": components, "grads_backward": facts["grads_backward"], "params_before": before}
    if fwd_nan:
        phase, first = "forward", dict(fwd_nan)
        same_line = bwd_nan and bwd_nan["source_detail"] == fwd_nan["source_detail"]
        if same_line:  # the autograd node of that very operation: the name anomaly mode would print
            first["op"] = bwd_nan["op"]
    elif bwd_nan:
        phase, first = "backward", bwd_nan
    elif facts["forward_inf"] and bad:
        phase, first = "forward", facts["forward_inf"]
    else:
        phase, first = "backward", facts["backward_inf"] or {}
    forward_module = facts.get("forward_module")
    if phase == "forward" and forward_module and forward_module["name"] != "model":
        # its gradients are non-finite because its output was
        module, param = facts.get("forward_part") or forward_module["name"].split(".")[0], None
    else:
        module, param = facts.get("grad_module"), facts.get("grad_param")
    component = ", ".join(bad) or ", ".join(keys.loss(task) for task in facts["grad_tasks"]) or None
    return {"phase": phase, "component": component, "op": first.get("op"), "kind": first.get("kind"),
            "source": first.get("source"), "source_detail": first.get("source_detail"), "module": module,
            "param": param, "inf_origin": facts["forward_inf"] or facts["backward_inf"],
            "forward_module": forward_module, "grad_tasks": facts["grad_tasks"], "components": components,
            "grads_backward": facts["grads_backward"]}


def spread_by(origin: dict) -> str:
    """What carried the non-finite values beyond the parameters whose own gradient was non-finite."""
    backward = origin.get("grads_backward", {}).get("all", 0.0)
    clipped = origin.get("grads_after_clip", {}).get("all", 0.0)
    after = origin.get("spread", {}).get("all", 0.0)
    if clipped > backward:
        return "clip_grad_norm_"
    if after > clipped:
        return "optimizer step"
    return "backward" if after else "none"


SUMMARY_FIELDS = ("step", "replay_exact", "phase", "component", "op", "kind", "source", "source_detail", "module", "param",
                  "inf_origin", "forward_module", "grad_tasks", "components", "grad_norm", "spread_by", "text")


def summary_keys(origin: dict) -> dict:
    """The run-summary layout: `health/nan_origin` (a dict) and flat `health/nan_spread/*` shares."""
    values = {keys.NAN_ORIGIN: {k: origin.get(k) for k in SUMMARY_FIELDS}}
    values.update({keys.nan_spread(name): share for name, share in origin.get("spread", {}).items()})
    values[keys.nan_spread("by")] = origin.get("spread_by")
    return values


def _at(fact: dict) -> str:
    """'losses/focal.py:52', or 'transformers/.../modeling_bert.py:348 via model/multitask.py:47'."""
    detail, user = fact.get("source_detail"), fact.get("source")
    return detail if not user or user == detail else f"{detail} via {user}"


def describe(origin: dict, shared: tuple[str, ...] = ()) -> str:
    """One line: 'NaN first in loss/entity: -inf from masked_fill at model/masking.py:56, then
    MulBackward0 at losses/focal.py:52 (entity head gradient) -> spread to all parameters by clip_grad_norm_'.
    `shared`: the parts every task reads, named as they are (the others are heads)."""
    if origin["phase"] == "parameters":
        shares = ", ".join(f"{name} {share:.0%}" for name, share in origin["params_before"].items()
                           if share and name != "all")
        return f"non-finite before this step: already in the parameters ({shares})"
    components = origin.get("components") or {}
    first_value = next((components[k] for k in (origin.get("component") or "").split(", ") if k in components), None)
    if origin["phase"] == "forward":
        what = _KIND.get(first_value, first_value) if isinstance(first_value, str) else "NaN"
        text = f"{what} first in {origin.get('component') or 'the loss'} (forward)"
    else:
        text = f"{'NaN' if origin.get('kind') == 'nan' else 'non-finite'} gradient first from " \
               f"{origin.get('component') or 'the loss'} (backward"
        text += f"; the loss itself is {first_value})" if isinstance(first_value, str) else ")"
    steps = []
    inf = origin.get("inf_origin")
    if inf and inf.get("source_detail") != origin.get("source_detail"):
        steps.append(f"{inf['kind']} from {inf['op']} at {_at(inf)}")
    if origin.get("op"):
        steps.append(f"{_KIND.get(origin['kind'], origin['kind'])} from {origin['op']} at {_at(origin)}")
    text += ": " + ", then ".join(steps) if steps else ""
    forward_module = origin.get("forward_module")
    if origin["phase"] == "forward" and forward_module and forward_module["name"] != "model":
        text += f" (first non-finite module output: {forward_module['name']})"
    elif origin.get("module"):
        name = origin["module"]
        text += f" ({name if name in shared or name.endswith('head') else f'{name} head'} gradient)"
    spread, by = origin.get("spread", {}), origin.get("spread_by")
    share = spread.get("all", 0.0)
    if share == 1.0:
        text += f" -> spread to all parameters by {by}"
    elif share > 0:
        modules = ", ".join(f"{name} {v:.0%}" for name, v in spread.items() if name != "all" and v > 0)
        text += f" -> {share:.0%} of parameter tensors non-finite after the step ({modules})"
    else:
        text += " -> parameters still finite after the step"
    return text


_KIND = {"nan": "NaN"}
