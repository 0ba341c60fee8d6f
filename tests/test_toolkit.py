"""nlu_collapse.toolkit in loops that are not train.py: both examples' three runs (their verdicts, the NaN's
origin in the example's own file, docs/toolkit.md up to date), and the API on a model and data unlike the
examples' (a long tail of labels, a NaN made in backward under an intentional -inf attention mask)."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nlu_collapse.telemetry import keys
from nlu_collapse.toolkit import CollapseMonitor, SentenceTask, TokenTask
from tests.datasets import write_imbalanced

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {"plain": "examples/plain_loop.py", "hf": "examples/hf_trainer_token_classification.py"}


def load(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def line_of(path: str, text: str) -> str:
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    return f"{path}:{next(i for i, line in enumerate(lines, 1) if text in line)}"


@contextlib.contextmanager
def _no_hf_datasets():
    """Under pytest, tests/datasets.py is importable as `datasets`: Trainer would take it for Hugging Face's."""
    if "transformers.trainer" not in sys.modules:
        import transformers.trainer  # noqa: F401
    with mock.patch("transformers.trainer.is_datasets_available", lambda: False):
        yield


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def example(request):
    """(example path, verdicts by run, printed output): the example's main() as docs/toolkit.md shows it."""
    path = EXAMPLES[request.param]
    printed = io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(printed), _no_hf_datasets():
            verdicts = load(path).main([])
    finally:
        torch.set_num_threads(threads)
    return path, verdicts, printed.getvalue()


def test_healthy_run_is_healthy_with_its_majority_phase_as_a_recovered_episode(example):
    _, verdicts, _ = example
    verdict = verdicts["healthy"]
    assert verdict[keys.OUTCOME] == "healthy" and verdict[keys.COLLAPSE_REASONS] == []
    assert verdict[keys.EPISODES] and all(episode["recovered"] for episode in verdict[keys.EPISODES])
    assert any(episode["kind"].endswith("_all_O") for episode in verdict[keys.EPISODES])


def test_masked_dense_focal_loss_collapses_at_step_1_with_its_origin_in_the_example_file(example):
    path, verdicts, _ = example
    verdict = verdicts["nan"]
    origin = verdict[keys.NAN_ORIGIN]
    assert verdict[keys.COLLAPSED] and verdict[keys.COLLAPSE_STEP] == 1 == verdict[keys.FIRST_NONFINITE_STEP]
    assert origin["replay_exact"] is True and origin["phase"] == "forward"
    assert origin["op"] == "MulBackward0" and origin["source"] == line_of(path, "per_token = -(onehot")
    assert origin["inf_origin"]["op"] == "masked_fill"  # the -inf mask: the first infinity, not the origin
    assert origin["inf_origin"]["source"] == line_of(path, 'masked_fill(unseen' if "hf_" in path else
                                                     'masked_fill(self.unseen_tags')
    assert origin["spread"]["all"] == 1.0 and verdict[keys.DEAD_AT_STEP] == 1
    assert line_of(path, "per_token = -(onehot") in verdict["text"]


def test_prediction_collapse_without_nan_is_collapsed_with_evidence(example):
    _, verdicts, _ = example
    verdict = verdicts["collapse"]
    assert verdict[keys.COLLAPSED] and verdict[keys.FIRST_NONFINITE_STEP] is None
    assert keys.NAN_ORIGIN not in verdict
    reasons = verdict[keys.COLLAPSE_REASONS]
    assert any("predictions all O" in reason and "it fell back" in reason for reason in reasons), reasons
    assert not any(episode["recovered"] for episode in verdict[keys.EPISODES][-1:])


def test_docs_show_what_the_examples_print_today(example):
    path, _, printed = example
    write_docs = load("examples/write_docs.py")
    shown = write_docs.block((ROOT / "docs" / "toolkit.md").read_text(encoding="utf-8"), path)
    assert shown == write_docs.fenced(printed), "run: python examples/write_docs.py"


# --- the API on a model and data unlike the examples'
class Bag(nn.Module):
    """A conv encoder with an attention pooling whose padding is masked with -inf, a slot head and an
    intent head; its parts are named by the test, not by the model."""

    def __init__(self, vocab: int, n_tags: int, n_intents: int, dim: int = 24):
        super().__init__()
        self.embed, self.conv = nn.Embedding(vocab, dim, padding_idx=0), nn.Conv1d(dim, dim, 3, padding=1)
        self.score, self.slots, self.intents = nn.Linear(dim, 1), nn.Linear(dim, n_tags), nn.Linear(dim, n_intents)

    def forward(self, words):
        hidden = torch.relu(self.conv(self.embed(words).transpose(1, 2))).transpose(1, 2)  # (B, T, D)
        scores = self.score(hidden).squeeze(-1).masked_fill(words == 0, float("-inf"))   # attention over words
        pooled = (scores.softmax(-1).unsqueeze(-1) * hidden).sum(1)
        return {"slots": self.slots(hidden), "intent": self.intents(pooled)}


@pytest.fixture(scope="module")
def long_tail(tmp_path_factory):
    """write_imbalanced's train split as tensors: one intent ~72%, 10 intents, 24 entity types (49 tags)."""
    folder = write_imbalanced(tmp_path_factory.mktemp("long-tail"), n_train=640, n_eval=10)
    rows = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    vocab, tags, intents = {"<pad>": 0}, ["O"], sorted({row["intent"] for row in rows})
    tags += sorted({tag for row in rows for tag in row["tags"]} - {"O"})
    length = max(len(row["tokens"]) for row in rows)
    words, gold = torch.zeros(len(rows), length, dtype=torch.long), torch.full((len(rows), length), -100)
    for i, row in enumerate(rows):
        words[i, :len(row["tokens"])] = torch.tensor([vocab.setdefault(w, len(vocab)) for w in row["tokens"]])
        gold[i, :len(row["tags"])] = torch.tensor([tags.index(t) for t in row["tags"]])
    return {"words": words, "slots": gold, "intent": torch.tensor([intents.index(r["intent"]) for r in rows]),
            "vocab": len(vocab), "tags": tags, "intents": intents}


def _losses(model, batch, broken: bool = False):
    logits = model(batch["words"])
    slots = F.cross_entropy(logits["slots"].flatten(0, 1), batch["slots"].flatten(), ignore_index=-100)
    intent = F.cross_entropy(logits["intent"], batch["intent"])
    if broken:  # a finite loss whose gradient is NaN: d sqrt(x)/dx at x = 0
        slots = slots + torch.sqrt(logits["intent"].sum() * 0.0)
    return {"slots": slots, "intent": intent}, logits


def _train(data, steps: int, broken_at: int | None = None, **options):
    torch.manual_seed(0)
    model = Bag(data["vocab"], len(data["tags"]), len(data["intents"]))
    parts = {"body": nn.ModuleList([model.embed, model.conv, model.score]), "slot_head": model.slots,
             "intent_head": model.intents}
    logged = []
    options = {"log": lambda metrics, step: logged.append((step, metrics)), "log_every": 2, "window": 3,
               "task_grad_every": 4, **options}
    tasks = [TokenTask("slots", data["tags"]), SentenceTask("intent", len(data["intents"]))]
    monitor = CollapseMonitor(model, tasks, parts=parts, shared="body", **options)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(1, steps + 1):
        batch = {key: data[key][(step - 1) * 32 % 640:][:32] for key in ("words", "slots", "intent")}
        broken = step == broken_at
        with monitor.step():
            losses, logits = _losses(model, batch, broken)
            monitor.task_gradients(losses)
            loss = sum(losses.values())
            optimizer.zero_grad()
            loss.backward()
            monitor.observe(loss, losses, logits, {"slots": batch["slots"], "intent": batch["intent"]},
                            closure=lambda: _losses(model, batch, broken)[0])
            optimizer.step()
        if monitor.should_stop:
            break
    return monitor, logged


def test_long_tail_run_logs_norms_per_named_part_and_task_and_a_bin_per_label(long_tail):
    monitor, logged = _train(long_tail, steps=12)
    step, metrics = logged[-1]
    assert step == 12 and [s for s, _ in logged if s is not None] == [2, 4, 6, 8, 10, 12]
    assert {keys.module_grad_norm(part) for part in ("body", "slot_head", "intent_head")} <= set(metrics)
    assert keys.task_grad_norm("slots") in metrics and keys.task_grad_norm("intent") in metrics
    assert len(metrics[keys.pred_counts("slots")]) == len(long_tail["tags"]) > 30  # one bin per label
    assert sum(metrics[keys.gold_counts("intent")]) == 32
    assert {keys.health("pred_non_O_zero"), keys.health("intent_dominant"), keys.PROBLEMS} <= set(metrics)
    assert keys.token_dist("slots", keys.PRED_NON_O) in metrics
    verdict = monitor.finish()
    assert verdict[keys.COLLAPSED] is False and verdict[keys.FIRST_NONFINITE_STEP] is None


def test_a_nan_made_in_backward_under_an_intentional_minus_inf_mask_is_found_in_backward(long_tail):
    monitor, _ = _train(long_tail, steps=6, broken_at=3, stop_on_collapse=True)
    verdict = monitor.finish()
    origin = verdict[keys.NAN_ORIGIN]
    assert monitor.steps == 3 and verdict[keys.COLLAPSE_STEP] == 3
    # sqrt's backward makes an infinity (0.5 / sqrt(0)); the product with 0 makes the NaN, on that line
    assert origin["phase"] == "backward" and origin["op"] == "MulBackward0" and origin["replay_exact"] is True
    assert origin["source"] == line_of("tests/test_toolkit.py", "slots = slots + torch.sqrt(")
    assert isinstance(origin["components"][keys.loss("slots")], float)  # the loss itself is finite
    assert origin["grad_tasks"] == ["slots"] and origin["component"] == keys.loss("slots")
    assert origin["module"] == "intent_head"  # the first parameter, in backward order, with a NaN gradient
    # The attention mask's -inf is there on every step: the first infinity, never the origin.
    assert origin["inf_origin"]["op"] == "masked_fill"
    assert origin["inf_origin"]["source"] == line_of("tests/test_toolkit.py", 'masked_fill(words == 0, float("-inf"))')


def test_the_verdict_and_flags_reach_an_active_wandb_run(long_tail, tmp_path):
    import wandb

    run = wandb.init(mode="offline", dir=str(tmp_path), project="toolkit-test")
    try:
        monitor, _ = _train(long_tail, steps=4, log=None)
        monitor.finish()
        assert run.summary[keys.OUTCOME] in ("healthy", "not learned yet")
        assert run.summary[keys.COLLAPSED] is False
    finally:
        run.finish()


@pytest.mark.parametrize("build, message", [
    (lambda m: CollapseMonitor(m, [TokenTask("a", 3), TokenTask("b", 3)]), "2 token tasks (a, b)"),
    (lambda m: CollapseMonitor(m, [TokenTask("a", ["B-X", "I-X"])]), "outside='O' is not one of its label names"),
    (lambda m: CollapseMonitor(m, [SentenceTask("a", 3)], shared="encoder"), "shared='encoder' is not one of"),
    (lambda m: CollapseMonitor(m, [SentenceTask("a", 3)], log_every=0), "both must be at least 1"),
])
def test_bad_arguments_are_one_line_errors(build, message):
    with pytest.raises(ValueError) as error:
        build(nn.Sequential(nn.Linear(2, 3)))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_predictions_for_an_unknown_task_are_a_one_line_error():
    model = nn.Linear(2, 3)
    monitor = CollapseMonitor(model, [SentenceTask("intent", 3)], log_every=1, log=lambda m, s: None)
    with monitor.step():
        loss = model(torch.ones(4, 2)).sum()
        loss.backward()
        with pytest.raises(ValueError, match=r"predictions for unknown tasks \['slots'\]"):
            monitor.observe(loss, predictions={"slots": torch.zeros(4, 3)}, gold={"intent": torch.zeros(4)})
        monitor.observe(loss)


def test_a_trainer_without_the_hook_is_told_how_to_add_it():
    from nlu_collapse.toolkit.hf import CollapseCallback

    callback = CollapseCallback([TokenTask("ner", ["O", "B-X"])], log=lambda m, s: None)
    callback.monitor = CollapseMonitor(nn.Linear(2, 2), callback.tasks, log=lambda m, s: None)
    callback.on_step_begin(None, None, None)
    with pytest.raises(RuntimeError, match="build the trainer with nlu_collapse.toolkit.hf.CollapseTrainer"):
        callback.on_pre_optimizer_step(None, None, None)


def test_the_toolkit_imports_nothing_of_this_repos_model_data_or_config():
    probe = ("import sys, json, nlu_collapse.toolkit; print(json.dumps(sorted(m for m in sys.modules "
             "if m.startswith('nlu_collapse.') or m == 'transformers')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    loaded = json.loads(done.stdout)
    assert not [m for m in loaded if m.split(".")[1] in ("model", "data", "config", "losses", "train", "evaluation")]
    assert "transformers" not in loaded


def test_trainer_with_gradient_accumulation_replays_every_micro_batch(tmp_path):
    from transformers import BertConfig, BertForTokenClassification, PrinterCallback, TrainingArguments

    from nlu_collapse.toolkit.hf import CollapseCallback, CollapseTrainer

    example = load(EXAMPLES["hf"])
    rows = [json.loads(line) for line in example.write_data(tmp_path / "ner.jsonl", 64).read_text().splitlines()]
    tokenizer = example.build_tokenizer(rows)
    examples = example.encode(rows, tokenizer)
    seen = torch.zeros(len(example.TAGS), dtype=torch.bool)
    seen[[label for e in examples for label in e["labels"] if label >= 0]] = True
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=len(example.TAGS))
    model = BertForTokenClassification(config)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=3,
                             gradient_accumulation_steps=2, report_to="none", save_strategy="no", logging_strategy="no",
                             disable_tqdm=True, use_cpu=True)
    callback = CollapseCallback([TokenTask("ner", example.TAGS)], log=lambda metrics, step: None, stop_on_collapse=True)
    trainer = CollapseTrainer(model=model, args=args, train_dataset=examples, data_collator=example.collate,
                              callbacks=[callback], compute_loss_func=example.masked_focal_loss(~seen))
    trainer.remove_callback(PrinterCallback)
    with _no_hf_datasets():
        trainer.train()
    origin = callback.verdict[keys.NAN_ORIGIN]
    assert callback.monitor.steps == 1 and origin["replay_exact"] is True and origin["component"] == keys.loss("ner")
    assert origin["source"] == line_of(EXAMPLES["hf"], "per_token = -(onehot")
