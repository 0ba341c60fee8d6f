"""The metric vocabulary: every key that train.py logs and that the run record, the report, the plots
and the dashboard read is spelled here, once. Nothing else in the repo writes a key as a string.

Namespaces (slash-separated, stable: they are a contract with W&B dashboards and saved records):

| namespace | keys |
|---|---|
| `loss/`, `lambda/`, `lr` | per step: `loss/total`, `loss/<entity, intent, command>` (unweighted), `loss/weighted/<task>`; `lambda/<task>`; `lr` |
| `grad/` | per step: `norm` (total, before clipping), `clipped`, `clip_rate`, `norm/<encoder, entity, intent, command>`; every `--task_grad_every` steps `task/<task>`: the norm of each task's weighted-loss gradient on the shared encoder |
| `dist/` | per logged step, the train batch: one-bin-per-label histograms `<entity, intent, command>/pred` and `/gold`; scalar twins `entity/pred_non_O`, `entity/gold_non_O`, `entity/n_labels_pred`, `entity/masked_pred`, `<intent, command>/max_share` and `/gold_max_share` |
| `health/` | per logged step, one flag per monitor point (`telemetry/health.py`), `problems`, `collapsed`; in the summary the verdict: `outcome`, `outcome_evidence`, `collapsed`, `collapse_step`, `collapse_reasons`, `first_nonfinite_step`, `episodes`, `nan_origin`, `nan_spread/*`, `dead_at_step` |
| `val/`, `test/` | each dev evaluation / the test: `entity_f1/precision/recall` (seqeval, strict IOB2 spans), `intent_acc/f1`, `command_acc/f1` (scikit-learn, macro F1), `sentence_acc`, `entity/pred_non_O`, `entity/masked_pred`, `entity/gold_masked`, `loss`, `entity_type/<TYPE>/<precision, recall, f1, support>`; test also `spans/<correct, type, boundary, missed, spurious, ...>` |
| `final/`, `best/`, `perf/` | summary only: the last step's numbers, the best dev epoch and its entity F1, timings |

A quantity has one leaf name wherever it appears: `dist/entity/pred_non_O` on a train batch is
`val/entity/pred_non_O` on the dev split.
"""
from __future__ import annotations

TASKS = ("entity", "intent", "command")
SENTENCE_TASKS = ("intent", "command")
MODULES = ("encoder", *TASKS)  # per-module gradient norms

STEP, EPOCH = "step", "epoch"

# --- the objective
LOSS_TOTAL = "loss/total"


def loss(task: str) -> str:
    """Unweighted loss of one task."""
    return f"loss/{task}"


def weighted_loss(task: str) -> str:
    return f"loss/weighted/{task}"


def task_weight(task: str) -> str:
    return f"lambda/{task}"


LR = "lr"

# --- gradients
GRAD_NORM = "grad/norm"            # total, before clipping
GRAD_CLIPPED = "grad/clipped"
GRAD_CLIP_RATE = "grad/clip_rate"


def module_grad_norm(module: str) -> str:
    return f"grad/norm/{module}"


def task_grad_norm(task: str) -> str:
    """Norm of one task's weighted-loss gradient on the shared encoder."""
    return f"grad/task/{task}"


# --- label distributions of the train batch (count vectors and their scalar twins)
def pred_counts(task: str) -> str:
    return f"dist/{task}/pred"


def gold_counts(task: str) -> str:
    return f"dist/{task}/gold"


def label_table(task: str) -> str:
    """W&B table of predicted (and gold) counts per label name, summed over an epoch's logged steps."""
    return f"dist/{task}/by_label"


HISTOGRAMS = tuple(key for task in TASKS for key in (pred_counts(task), gold_counts(task)))
PRED_NON_O, GOLD_NON_O, MASKED_PRED = "pred_non_O", "gold_non_O", "masked_pred"  # entity leaves, train and eval
# Eval only: gold tokens whose tag the model masks (an I- tag train never has); no model can get them
# right, so the split's loss leaves them out, and entity F1 still counts them as errors.
GOLD_MASKED = "gold_masked"


def token_dist(task: str, leaf: str) -> str:
    """A token task's distribution leaf (pred_non_O, ...): `dist/entity/pred_non_O`."""
    return f"dist/{task}/{leaf}"


def entity_dist(leaf: str) -> str:
    return token_dist("entity", leaf)


def n_labels_pred(task: str) -> str:
    """How many distinct labels a token task's predictions use in the batch."""
    return token_dist(task, "n_labels_pred")


N_LABELS_PRED = n_labels_pred("entity")


def max_share(task: str) -> str:
    """Share of the batch on the most predicted class."""
    return f"dist/{task}/max_share"


def gold_max_share(task: str) -> str:
    return f"dist/{task}/gold_max_share"


# --- health
def health(flag: str) -> str:
    return f"health/{flag}"


OUTCOME = health("outcome")  # healthy | collapsed | not learned yet (telemetry/health.py)
OUTCOME_EVIDENCE = health("outcome_evidence")  # for `not learned yet`: why, and what to do
COLLAPSED = health("collapsed")
COLLAPSE_STEP = health("collapse_step")
COLLAPSE_REASONS = health("collapse_reasons")
FIRST_NONFINITE_STEP = health("first_nonfinite_step")
EPISODES = health("episodes")
NAN_ORIGIN = health("nan_origin")  # where the first non-finite value came from (telemetry/forensics.py)


def nan_spread(module: str) -> str:
    """Share of a module's parameter tensors non-finite after the first non-finite step (or `by`: what spread it)."""
    return health(f"nan_spread/{module}")
PROBLEMS = health("problems")

# --- evaluation
SPLIT_NAMESPACE = {"dev": "val", "test": "test"}  # the data's dev split is W&B's usual `val/`
ENTITY_F1, ENTITY_PRECISION, ENTITY_RECALL = "entity_f1", "entity_precision", "entity_recall"
SENTENCE_ACC, EVAL_LOSS = "sentence_acc", "loss"
ENTITY_TYPE_STATS = ("precision", "recall", "f1", "support")
SPAN_KINDS = ("correct", "type", "boundary", "type+boundary", "missed", "spurious")


def accuracy(task: str) -> str:
    return f"{task}_acc"


def macro_f1(task: str) -> str:
    return f"{task}_f1"


def entity_eval(leaf: str) -> str:
    """An entity-distribution leaf (pred_non_O, masked_pred) on an evaluated split."""
    return f"entity/{leaf}"


def split_metric(split: str, name: str) -> str:
    """`dev`, `entity_f1` -> `val/entity_f1`."""
    return f"{SPLIT_NAMESPACE[split]}/{name}"


def entity_type_metric(split: str, entity_type: str, stat: str) -> str:
    return split_metric(split, f"entity_type/{entity_type}/{stat}")


def entity_types_in(metrics: dict, split: str) -> list[str]:
    """The entity types that have per-type metrics of `split` in `metrics`."""
    prefix = split_metric(split, "entity_type/")
    return sorted({key[len(prefix):].split("/")[0] for key in metrics if key.startswith(prefix)})


def span_count(kind: str) -> str:
    return split_metric("test", f"spans/{kind}")


# Tables (W&B tables and tables/<name>.json in the run record).
TABLE_ENTITY_TYPES = "test/entity_types"
TABLE_ENTITY_ERRORS = "test/entity_errors"
TABLE_INTENT_CONFUSION = "test/intent_confusion"
TABLE_FIXES = "health/fixes"  # analysis/fixes.py: which single changes prevent the collapse (on the run's W&B run)

# --- summary-only keys
STATUS, RUN_ID, RUN_NAME, ERROR = "status", "run_id", "run_name", "error"
WANDB_ID = "wandb_id"  # local summary only: the W&B run that --resume attaches to
STEPS = "steps"
PLANNED_STEPS = "planned_steps"  # the step budget (epochs x batches, or --max_steps): STEPS unless stopped early
STOPPED_ON_COLLAPSE = "stopped_on_collapse"
DEAD_AT_STEP = health("dead_at_step")  # the step after which the parameters were non-finite (None: never)
DEAD_REASON = health("dead_reason")    # what made it dead, in words ("parameters non-finite at step 1")
STOPPED_DEAD = "stopped_dead"          # training ended at DEAD_AT_STEP (--stop_dead_runs) rather than at its budget


CARRIED_CHART = "stopped/last_state"  # W&B chart of a stopped run's last state, carried to its planned end


DEAD_STATE_KEYS = (LOSS_TOTAL, *(loss(t) for t in TASKS), GRAD_NORM, entity_dist(PRED_NON_O),
                   *(max_share(t) for t in SENTENCE_TASKS))  # what the collapse curves plot


def dead_state(key: str) -> str:
    """A dead run's state, the value every later step would log (its batch is the run's last one)."""
    return f"dead/{key}"
BEST_EPOCH = "best/epoch"
BEST_VAL_ENTITY_F1 = "best/" + split_metric("dev", ENTITY_F1)
PERF_TRAIN_SECONDS = "perf/train_seconds"
PERF_STEPS_PER_SECOND = "perf/steps_per_second"
FINAL_PREFIXES = ("loss/", "dist/", GRAD_NORM)  # the last step's numbers kept as final/<key>


def prefix(namespace: str) -> str:
    """Every key of a namespace starts with this, e.g. `loss/`."""
    return f"{namespace}/"


def everything_under(namespace: str) -> str:
    """A W&B `define_metric` glob over one namespace, e.g. `loss/*`."""
    return prefix(namespace) + "*"


def final(key: str) -> str:
    return f"final/{key}"
