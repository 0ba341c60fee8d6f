"""A trained run as a W&B model artifact, and back: the artifact holds the run folder's files that
predict.py, analysis/diagnose.py and `transformers.AutoModel.from_pretrained` read, each at its place in
the folder (runfolder.RunFolder), so a downloaded artifact is a run folder:

    config.json, summary.json          the resolved config and labels; the metrics and the verdict
    checkpoints/best.pt                the best-on-dev weights, with their SHA-256 trailer
    tokenizer/                         the tokenizer
    encoder/                           the encoder in Hugging Face format, with its tokenizer

A reference names one version: `wandb-artifact://ENTITY/PROJECT/model-<run_id>:best` (or `:v0`,
`:latest`). Only a reference reaches the network; a folder is read as it is.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from nlu_collapse.config import ARTIFACT_FORBIDDEN_RE, WANDB_NAME_MAX
from nlu_collapse.runfolder import RunFolder

SCHEME = "wandb-artifact://"
REFERENCE_RE = re.compile(r"[^/:\s]+/[^/:\s]+/[A-Za-z0-9._-]+:[A-Za-z0-9._-]+")  # entity/project/name:version


def artifact_name(kind: str, text: str) -> str:
    """`<kind>-<text>` as a W&B artifact name: letters, digits, '-', '_' and '.' only (any other character
    becomes '-'), at most WANDB_NAME_MAX characters (a longer one is cut, with a hash of the whole text so
    that two long names stay apart)."""
    name = f"{kind}-{ARTIFACT_FORBIDDEN_RE.sub('-', text)}"
    if len(name) <= WANDB_NAME_MAX:
        return name
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{name[:WANDB_NAME_MAX - len(digest) - 1]}-{digest}"


def model_artifact_name(run_id: str) -> str:
    return artifact_name("model", run_id)


def model_files(folder: RunFolder) -> list[Path]:
    """The files of a run's model artifact that exist, in the folder's layout."""
    singles = [folder.config, folder.summary, folder.best]
    trees = [path for tree in (folder.tokenizer, folder.encoder) if tree.is_dir()
             for path in sorted(tree.rglob("*")) if path.is_file()]
    return [path for path in singles if path.is_file()] + trees


def model_artifact(wandb, folder: RunFolder, name: str, metadata: dict):
    """A `model` artifact of the run in `folder`, each file under its path relative to the folder."""
    artifact = wandb.Artifact(name, type="model", metadata=metadata)
    for path in model_files(folder):
        artifact.add_file(str(path), name=path.relative_to(folder.path).as_posix())
    return artifact


def is_reference(target: str) -> bool:
    return str(target).startswith(SCHEME)


def fetch_run(target: str | Path, api=None, root: str | Path | None = None) -> Path:
    """The run folder `target` names: a folder as it is, or a model artifact reference downloaded with
    W&B's API (to `root`, default W&B's `./artifacts/<name>:<version>`; the files W&B already holds there
    are checked, not downloaded again). ValueError naming the reference when it cannot be fetched."""
    if not is_reference(target):
        return Path(target)
    reference = str(target)[len(SCHEME):]
    if not REFERENCE_RE.fullmatch(reference):
        raise ValueError(f"{target}: expected {SCHEME}ENTITY/PROJECT/NAME:VERSION, e.g. "
                         f"{SCHEME}my-team/nlu-collapse/model-<run_id>:best")
    try:
        if api is None:
            import wandb

            api = wandb.Api()
        path = Path(api.artifact(reference, type="model").download(root=None if root is None else str(root)))
    except Exception as err:  # wandb raises its own error types (no API key, no such artifact, no network)
        why = (str(err).splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{target}: W&B could not fetch the artifact: {why}") from None
    if not RunFolder(path).is_run():
        raise ValueError(f"{target}: not a model artifact of this repo (no config.json in {path})")
    return path
