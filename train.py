"""Train the multi-task NLU model (intent, command, BIO entities) and log its health every step.

    python train.py                                              # the write-up's fixed config, embedded data
    python train.py --mask_value=-inf --gamma=3 --lambdas=old    # the configuration that collapsed
    python train.py --mask_value=-inf --loss_impl=gather         # hard mask without the dense 0 * -inf
    python train.py --encoder=vinai/phobert-base --lr=5e-5 --data=path/to/PhoATIS
    python train.py --resume=runs/<run_id>                       # continue a crashed run and its W&B run

Every step logs loss components, gradient norms, label-distribution histograms and `health/*`
flags to W&B (offline unless an API key is configured) and to `<output_dir>/<run_id>/`.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import random
import signal
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerFast, get_linear_schedule_with_warmup

from config import Config, parse_config
from data import load_dataset
from evaluation import compute_metrics, entity_type_report, predict
from evaluation.errors import confusion_rows, span_errors
from losses import MultiTaskLoss, TaskWeights, entity_class_weights, format_weights
from model import MultiTaskNLU, build_encoder, build_tiny_tokenizer, encode, parse_mask_value
from model.checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from model.tokenization import collate
from telemetry import HealthMonitor, RunRecord, Tracker, read_json
from telemetry.distributions import count_scalars, step_counts, to_host
from telemetry.forensics import Forensics

log = logging.getLogger("train")


def run_name(cfg: Config) -> str:
    name = f"mask={cfg.mask_value} gamma={cfg.gamma:g} lambdas={cfg.lambdas} seed={cfg.seed}"
    if cfg.loss_impl != "dense":
        name += f" impl={cfg.loss_impl}"
    if cfg.loss_level:
        name = f"level={cfg.loss_level} {name}"
    return name if cfg.data == Config.data else f"{name} data={Path(cfg.data).name}"


def run_tags(cfg: Config) -> list[str]:
    tags = [f"mask={cfg.mask_value}", f"gamma={cfg.gamma:g}", f"lambdas={cfg.lambdas}",
            f"impl={cfg.loss_impl}", f"data={Path(cfg.data).name}"]
    return tags + ([f"level={cfg.loss_level}"] if cfg.loss_level else [])


def select_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device=cuda: no CUDA device is available (use --device=cpu or auto)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_run(cfg: Config) -> tuple[Config, str, Path, dict | None]:
    """(config, run id, run dir, checkpoint to resume from or None)."""
    if cfg.resume is None:
        run_id = cfg.run_id or os.environ.get("WANDB_RUN_ID") or uuid.uuid4().hex[:8]
        return cfg, run_id, Path(cfg.output_dir) / run_id, None
    run_dir = Path(cfg.resume)
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"--resume={cfg.resume}: no config.json there (expected a run directory written by train.py)")
    saved = read_json(run_dir / "config.json")
    ignored = [f"--{k}={v}" for k, v in asdict(cfg).items()
               if k != "resume" and v != getattr(Config(), k) and v != saved["config"].get(k)]
    if ignored:
        log.warning("--resume continues the run as it was configured; ignoring %s", ", ".join(ignored))
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    return Config(**{**saved["config"], "resume": cfg.resume}), saved["run_id"], run_dir, checkpoint


def load_tokenizer(cfg: Config, dataset, resume_dir: Path | None):
    """The encoder's own tokenizer, or for `tiny` one built from train (or reloaded on resume)."""
    if cfg.encoder != "tiny":
        return AutoTokenizer.from_pretrained(cfg.encoder)
    if resume_dir is not None:
        return PreTrainedTokenizerFast.from_pretrained(resume_dir / "tokenizer")
    return build_tiny_tokenizer(dataset.splits["train"])


def build_model(cfg: Config, labels, vocab_size: int) -> MultiTaskNLU:
    return MultiTaskNLU(build_encoder(cfg.encoder, vocab_size), len(labels.intents),
                        len(labels.commands) if labels.commands else None, len(labels.tags),
                        torch.tensor(labels.invalid_mask), parse_mask_value(cfg.mask_value), cfg.dropout)


def build_criterion(cfg: Config, labels) -> tuple[MultiTaskLoss, torch.Tensor]:
    """The multi-task objective and the entity class weights it uses (printed: they shape the collapse)."""
    if cfg.unit_class_weights:
        class_weights = torch.ones(len(labels.tags))
    else:
        class_weights = entity_class_weights(labels.tags.names, labels.tag_counts, cfg.o_weight, cfg.max_class_weight)
    log.info("entity class weights: %s", format_weights(labels.tags.names, class_weights))
    log.info("masked (invalid) entity labels: %s", ", ".join(labels.invalid_tags) or "none")
    weights = TaskWeights.from_flags(cfg.lambdas, cfg.lambda_entity, cfg.lambda_intent, cfg.lambda_command,
                                     cfg.entity_warmup)
    return MultiTaskLoss(weights, class_weights, cfg.alpha, cfg.gamma, cfg.loss_impl), class_weights


def build_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.AdamW:
    """AdamW as HF Trainer sets it up: no weight decay on biases and LayerNorm weights (1-d tensors),
    the fused kernel (one kernel for all parameters, on CPU and GPU)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)


def train_step(model, batch, criterion, optimizer, scheduler, scaler, cfg, epoch, autocast, telemetry: bool,
               task_grads: bool, forensics: Forensics | None = None):
    """One optimizer step. Returns the step's numbers as tensors (moved to the host by the caller):
    always the losses and the total grad norm; with `telemetry`, per-module norms and label counts.
    `forensics` replays a non-finite step before the optimizer changes the parameters that produced it."""
    with autocast():
        logits = model(batch["input_ids"], batch["attention_mask"])
    total, weighted, numbers = criterion(logits, batch, epoch)
    if task_grads:  # which task dominates the shared encoder
        encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
        for task, loss in weighted.items():
            grads = torch.autograd.grad(loss, encoder_params, retain_graph=True, allow_unused=True)
            numbers[f"grad/task/{task}"] = torch.nn.utils.get_total_norm([g for g in grads if g is not None])
    optimizer.zero_grad(set_to_none=True)
    (scaler.scale(total) if scaler else total).backward()
    if scaler:
        scaler.unscale_(optimizer)  # clip and measure true gradients, not scaled ones
    for name, module in model.heads().items() if telemetry else ():
        numbers[f"grad/norm/{name}"] = torch.nn.utils.get_total_norm(
            [p.grad for p in module.parameters() if p.grad is not None])
    params = [p for p in model.parameters() if p.grad is not None]
    if cfg.grad_clip:
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)  # the total norm before clipping
        numbers["grad/clipped"] = (norm > cfg.grad_clip).float()
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        numbers["grad/clipped"] = torch.zeros(())
    numbers["grad/norm"] = norm
    numbers["lr"] = torch.tensor(scheduler.get_last_lr()[0])
    replayed = forensics is not None and forensics.check(model, batch, criterion, epoch, autocast, total, norm,
                                                         numbers, scaler)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    if replayed:
        forensics.after_step(model)
    if telemetry:
        numbers.update(step_counts(logits, batch))
    return numbers


def evaluate(model, dataset, encoded, split, cfg, device, pad_id, criterion, epoch, autocast) -> tuple[dict, object]:
    labels = dataset.labels
    predictions = predict(model, encoded[split], labels, cfg.batch_size * 2, device, pad_id,
                          loss_fn=lambda logits, batch: criterion(logits, batch, epoch)[0], autocast=autocast)
    examples = dataset.splits[split]
    metrics = {f"{split_key(split)}/{k}": v for k, v in compute_metrics(examples, predictions, labels).items()}
    for entity_type, row in entity_type_report([ex.tags for ex in examples], predictions.tags).items():
        for stat in ("precision", "recall", "f1-score", "support"):
            metrics[f"{split_key(split)}/entity_type/{entity_type}/{stat.replace('-score', '')}"] = row[stat]
    return metrics, predictions


def split_key(split: str) -> str:
    return "val" if split == "dev" else split


def main(argv: list[str] | None = None) -> dict:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    cfg, run_id, run_dir, checkpoint = resolve_run(parse_config(argv))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = select_device(cfg.device)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    autocast = functools.partial(torch.autocast, device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext

    # --- data, tokenizer, model
    dataset = load_dataset(cfg.data, cfg.data_format)
    labels = dataset.labels
    tokenizer = load_tokenizer(cfg, dataset, run_dir if checkpoint is not None else None)
    encoded = {split: encode(examples, tokenizer, labels, cfg.max_length) for split, examples in dataset.splits.items()}
    model = build_model(cfg, labels, len(tokenizer)).to(device)
    criterion, class_weights = build_criterion(cfg, labels)

    # --- optimisation
    steps_per_epoch = math.ceil(len(encoded["train"]) / cfg.batch_size)
    total_steps = min(cfg.max_steps or sys.maxsize, cfg.epochs * steps_per_epoch)
    optimizer = build_optimizer(model, cfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None
    monitor = HealthMonitor(window=cfg.collapse_window)
    start_epoch, step, n_clipped, best_f1 = 0, 0, 0, -1.0
    record = RunRecord(run_dir)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if scaler:
            scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(checkpoint["rng"])
        monitor.load_state_dict(checkpoint["monitor"])
        start_epoch, step, n_clipped, best_f1 = (checkpoint["epoch"] + 1, checkpoint["step"],
                                                 checkpoint["n_clipped"], checkpoint["best_f1"])
        record.truncate_history(step)
        record.summary.pop("error", None)
        log.info("resuming %s from epoch %d, step %d", run_dir, start_epoch, step)
    else:
        record.start_fresh()
        tokenizer.save_pretrained(run_dir / "tokenizer")
    name = cfg.run_name or run_name(cfg)
    record.write_config({"config": asdict(cfg), "run_id": run_id, "run_name": name, "dataset": dataset.name,
                         "data_format": dataset.data_format, "sizes": {s: len(e) for s, e in dataset.splits.items()},
                         "labels": {"intents": labels.intents.names, "tags": labels.tags.names,
                                    "commands": labels.commands.names if labels.commands else None,
                                    "invalid_tags": labels.invalid_tags},
                         "class_weights": class_weights.tolist(), "total_steps": total_steps})
    tracker = Tracker(record, cfg.wandb_mode, dict(
        project=cfg.wandb_project, entity=cfg.wandb_entity, group=cfg.wandb_group or os.environ.get("WANDB_RUN_GROUP"),
        name=name, id=run_id, dir=str(Path(cfg.output_dir)), config=asdict(cfg), tags=run_tags(cfg)))
    tracker.summary({"status": "running", "run_id": run_id, "run_name": name})
    forensics = Forensics(cfg.forensics, run_dir, on_record=tracker.summary,
                          recorded=record.summary.get("health/nan_origin"), start_step=step)

    ckpt_state = lambda epoch: dict(config=asdict(cfg), run_id=run_id, epoch=epoch, step=step,  # noqa: E731
                                    n_clipped=n_clipped, best_f1=best_f1, monitor=monitor.state_dict(),
                                    training_done=stopped or step >= total_steps or epoch + 1 >= cfg.epochs,
                                    last_numbers={k: v for k, v in numbers.items() if not isinstance(v, list)})
    pad_id = tokenizer.pad_token_id
    evaluate_split = functools.partial(evaluate, model, dataset, encoded, cfg=cfg, device=device, pad_id=pad_id,
                                       criterion=criterion, autocast=autocast)
    progress = tqdm(total=total_steps, initial=step, desc=name, dynamic_ncols=True, mininterval=1.0,
                    disable=None, file=sys.stderr)
    stopped, train_seconds, first_step = False, 0.0, step
    numbers = dict(checkpoint["last_numbers"]) if checkpoint is not None else {}
    if checkpoint is not None and checkpoint["training_done"]:
        start_epoch = cfg.epochs  # only the test evaluation was left to do
    try:
        model.train()
        for epoch in range(start_epoch, cfg.epochs):
            # The order depends on (seed, epoch) only, so a resumed epoch sees the same batches.
            order = torch.randperm(len(encoded["train"]), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
            for start in range(0, len(order), cfg.batch_size):
                if step >= total_steps:
                    break
                started = time.perf_counter()
                batch = collate([encoded["train"][i] for i in order[start:start + cfg.batch_size].tolist()], pad_id)
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                step += 1
                log_now = step % cfg.log_every == 0  # telemetry and health are computed on logged steps
                task_grads = log_now and cfg.task_grad_every > 0 and (step == 1 or step % cfg.task_grad_every == 0)
                forensics.begin_step(step)
                numbers = to_host(train_step(model, batch, criterion, optimizer, scheduler, scaler, cfg, epoch,
                                             autocast, telemetry=log_now, task_grads=task_grads,
                                             forensics=forensics))
                n_clipped += int(numbers["grad/clipped"])
                was_collapsed = monitor.collapsed
                monitor.check_finite(step, numbers["loss/total"], numbers["grad/norm"], bool(scaler))
                if log_now:
                    numbers.update(count_scalars(numbers, labels.invalid_mask))
                    numbers["grad/clip_rate"] = n_clipped / step
                    numbers.update(monitor.update(step, numbers))
                    tracker.log(step, {"epoch": epoch, **numbers})
                if monitor.collapsed and not was_collapsed:
                    tracker.alert("Training collapsed", f"{name}: step {monitor.collapse_step}: "
                                  + "; ".join(monitor.reasons) + (f": {forensics.text}" if forensics.text else ""))
                train_seconds += time.perf_counter() - started
                progress.update(1)
                progress.set_postfix(loss=f"{numbers['loss/total']:.3f}",
                                     pred_non_O=f"{numbers.get('dist/entity/pred_non_O', math.nan):.2f}", refresh=False)
                if cfg.stop_on_collapse and monitor.collapsed:
                    stopped = True
                    break
            val, _ = evaluate_split("dev", epoch=epoch)
            tracker.log(step, {"epoch": epoch, **val})
            if val["val/entity_f1"] > best_f1:
                best_f1 = val["val/entity_f1"]
                save_checkpoint(run_dir / "checkpoints" / "best.pt", model, **ckpt_state(epoch))
            save_checkpoint(run_dir / "checkpoints" / "last.pt", model, optimizer=optimizer, scheduler=scheduler,
                            scaler=scaler, **ckpt_state(epoch))
            if stopped or step >= total_steps:
                break
        progress.close()

        # --- test with the best-on-dev checkpoint
        best = load_checkpoint(run_dir / "checkpoints" / "best.pt", device)
        model.load_state_dict(best["model"])
        test, predictions = evaluate_split("test", epoch=best["epoch"])
        tracker.log(step, {"epoch": best["epoch"], **test})
        tracker.table("test/entity_types", ["type", "precision", "recall", "f1", "support"],
                      [[t, r["precision"], r["recall"], r["f1-score"], int(r["support"])] for t, r in
                       entity_type_report([ex.tags for ex in dataset.splits["test"]], predictions.tags).items()])
        tracker.confusion_matrix("test/intent_confusion", [ex.intent for ex in dataset.splits["test"]],
                                 predictions.intents, labels.intents.names)
        errors = span_errors([ex.tags for ex in dataset.splits["test"]], predictions.tags)
        tracker.table("test/entity_errors", ["kind", "gold type", "predicted type", "count"], confusion_rows(errors))
        for kind in ("correct", "type", "boundary", "type+boundary", "missed", "spurious"):
            test[f"test/spans/{kind}"] = float(sum(n for key, n in errors.items() if key[0] == kind))
        last = {f"final/{k}": v for k, v in numbers.items()
                if k.startswith(("loss/", "dist/", "grad/norm")) and not isinstance(v, list)}
        summary = {**last, **test,
                   "best/epoch": best["epoch"], "best/val_entity_f1": best_f1, "steps": step,
                   "stopped_on_collapse": stopped, **monitor.verdict(), "perf/train_seconds": train_seconds,
                   "perf/steps_per_second": (step - first_step) / train_seconds if train_seconds else math.nan}
        tracker.summary(summary)
        tracker.finish("finished")
    except BaseException as err:
        record.update_summary({"status": "crashed", "error": f"{type(err).__name__}: {err}", **monitor.verdict()})
        progress.close()
        try:
            tracker.finish("crashed")
        except Exception as finish_err:  # the local record is already complete
            log.warning("W&B did not finish cleanly: %s", finish_err)
        raise
    verdict = (f"collapsed at step {monitor.collapse_step} ({'; '.join(monitor.reasons)})"
               + (f": {forensics.text}" if forensics.text else "") if monitor.collapsed else "healthy")
    print(f"[{run_id}] {name}: {verdict} | test entity F1 {test['test/entity_f1']:.3f}, "
          f"intent F1 {test['test/intent_f1']:.3f}, command F1 {test.get('test/command_f1', float('nan')):.3f}, "
          f"pred_non_O {test['test/pred_non_O']:.3f} | record: {run_dir}")
    return record.summary


def _terminated(signum, frame):
    raise SystemExit(128 + signum)  # SIGTERM (a sweep runner or scheduler stopping us): record a crash


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminated)
    try:
        main()
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
