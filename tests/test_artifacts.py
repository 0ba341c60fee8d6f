"""A model artifact is a run folder: `--log_model` logs (W&B offline) the files predict.py reads at their
places, so the artifact laid out elsewhere, the way `Artifact.download` lays it out, predicts what the run
predicts; and the trained encoder loads with `AutoModel.from_pretrained`. Nothing is downloaded: W&B's API
is a stand-in serving the files of the artifact the offline run logged."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from nlu_collapse import predict, train
from nlu_collapse.analysis import diagnose
from nlu_collapse.model.checkpoint import load_checkpoint
from nlu_collapse.runfolder import CK_MODEL, RunFolder
from nlu_collapse.telemetry import tracking
from nlu_collapse.telemetry.artifacts import fetch_run

SENTENCES = ["đặt báo thức lúc 6 giờ sáng mai", "gọi cho mẹ"]


@pytest.fixture(scope="module")
def logged(tmp_path_factory, tiny_data):
    """(the run folder, the artifact its offline W&B run logged) of a short healthy run with --log_model."""
    out = tmp_path_factory.mktemp("artifact-run")
    patch = pytest.MonkeyPatch()
    for name, value in (("WANDB_MODE", "offline"), ("WANDB_SILENT", "true"), ("WANDB_DATA_DIR", str(out / "data")),
                        ("WANDB_CACHE_DIR", str(out / "cache")), ("NETRC", str(out / "no-netrc"))):
        patch.setenv(name, value)
    patch.delenv("WANDB_API_KEY", raising=False)
    artifacts, log_model = [], tracking.Tracker.log_model
    patch.setattr(tracking.Tracker, "log_model", lambda self, meta: artifacts.append(log_model(self, meta)))
    try:
        summary = train.main([f"--data={tiny_data}", f"--output_dir={out / 'runs'}", "--wandb_mode=offline",
                              "--epochs=1", "--threads=1", "--log_model=True", "--run_id=shipped"])
    finally:
        patch.undo()
    return RunFolder(out / "runs" / summary["run_id"]), artifacts[0]


def lay_out(artifact, root: Path) -> Path:
    """The artifact's files at `root`, each at its manifest path (what `Artifact.download(root)` writes)."""
    for path, entry in artifact.manifest.entries.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(entry.local_path, root / path)
    return root


def predictions(target, capsys) -> list[dict]:
    assert predict.main(["--json", str(target), *SENTENCES]) == 0  # options first: the parser of this version
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_the_artifact_is_a_run_folder_that_predicts_what_the_run_predicts(logged, tmp_path, capsys):
    folder, artifact = logged
    assert artifact.type == "model" and artifact.name.startswith("model-shipped")
    landed = RunFolder(lay_out(artifact, tmp_path / "downloaded"))
    assert {landed.best, landed.config, landed.summary, landed.encoder_config} <= set(landed.path.rglob("*"))
    assert landed.read_summary()["status"] == "finished"  # logged after the final status, not while running
    expected = predictions(folder.path, capsys)
    moved = shutil.move(str(folder.path), tmp_path / "moved")  # nothing in the artifact points back at the run
    try:
        assert predictions(landed.path, capsys) == expected
        assert diagnose.load_local(landed.path).run_id == "shipped"
    finally:
        shutil.move(moved, folder.path)


def test_the_trained_encoder_loads_with_from_pretrained(logged, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    folder, artifact = logged
    best = load_checkpoint(folder.best)[CK_MODEL]
    trained = {name.removeprefix("encoder."): tensor for name, tensor in best.items() if name.startswith("encoder.")}
    for source in (folder, RunFolder(lay_out(artifact, tmp_path / "downloaded"))):
        loaded = AutoModel.from_pretrained(source.encoder).state_dict()
        assert trained and all(torch.equal(loaded[name], tensor) for name, tensor in trained.items())
        assert AutoTokenizer.from_pretrained(source.encoder).get_vocab() == \
            AutoTokenizer.from_pretrained(source.tokenizer).get_vocab()
    fresh = AutoModel.from_config(AutoModel.from_pretrained(folder.encoder).config).state_dict()
    assert not all(torch.equal(fresh[name], tensor) for name, tensor in trained.items())  # the check can fail


class ArtifactApi:
    """wandb.Api as far as fetching one model artifact goes: serves the offline run's artifact."""

    def __init__(self, artifact, root: Path):
        self.artifact_, self.root, self.asked = artifact, root, []

    def artifact(self, name, type=None):
        self.asked.append((name, type))
        return self

    def download(self, root=None):
        return str(lay_out(self.artifact_, Path(root) if root else self.root))


def test_predict_and_diagnose_accept_an_artifact_reference(logged, tmp_path, capsys, monkeypatch):
    folder, artifact = logged
    api = ArtifactApi(artifact, tmp_path / "artifacts" / "model-shipped:v0")
    reference = "wandb-artifact://my-team/nlu-collapse/model-shipped:best"
    monkeypatch.setattr("wandb.Api", lambda *args, **kwargs: api)
    assert predictions(reference, capsys) == predictions(folder.path, capsys)
    assert api.asked == [("my-team/nlu-collapse/model-shipped:best", "model")]
    assert diagnose.load(reference, api=api).run_id == "shipped"
    assert fetch_run(folder.path) == folder.path  # a folder is read where it is: no API call
    assert len(api.asked) == 2


@pytest.mark.parametrize("reference", ["wandb-artifact://model-shipped", "wandb-artifact://a/b/c",
                                       "wandb-artifact://a/b/c:v0 extra"])
def test_a_malformed_reference_is_one_error_before_any_network(reference):
    with pytest.raises(ValueError, match="expected wandb-artifact://ENTITY/PROJECT/NAME:VERSION"):
        fetch_run(reference, api=object())
