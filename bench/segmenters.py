"""Which Vietnamese word segmenter reproduces the training data's segmentation best, and how fast?

    .venv/bin/pip install -r bench/requirements.txt    # underthesea, the candidate predict.py does not use
    .venv/bin/python bench/segmenters.py --n=10000
    .venv/bin/python bench/segmenters.py --write_docs  # and write it into docs/predict.md (docpage.py)

Sentences come from the embedded generator (seed 1, not the dataset's 13), whose tokens are the
reference: each sentence is typed back the way a person would (`_` -> space) and segmented again.
Each segmenter is measured alone (on the whole sentence) and inside `data.segmentation.segment`
(phone numbers, times and punctuation handled by its pre-tokenizer). Measures:
  exact      share of sentences whose tokens equal the generator's
  word F1    tokens as character spans, precision/recall against the generator's words
  entities   share of gold entity spans segmented exactly as the generator did (no word of it split,
             none joined across its ends): what the entity head needs to tag the span as trained
"""
from __future__ import annotations

import argparse
import re
import time
from importlib.metadata import version
from pathlib import Path

from nlu_collapse import commandline, docpage
from nlu_collapse.data.phone_assistant import generate
from nlu_collapse.data.segmentation import segment

PAGE = Path(__file__).resolve().parent.parent / "docs" / "predict.md"


def char_spans(tokens: list[str]) -> list[tuple[int, int]]:
    """Each token as (start, end) over the sentence's characters without spaces and `_`."""
    spans, position = [], 0
    for token in tokens:
        size = len(re.sub(r"[_\s]", "", token))
        spans.append((position, position + size))
        position += size
    return spans


def entity_spans(tokens: list[str], tags: list[str]) -> list[tuple[int, int]]:
    spans, words = [], char_spans(tokens)
    for i, tag in enumerate(tags):
        if tag.startswith("B-"):
            j = i + 1
            while j < len(tags) and tags[j] == "I-" + tag[2:]:
                j += 1
            spans.append((words[i][0], words[j - 1][1]))
    return spans


def score(examples, segmented: list[list[str]]) -> dict[str, float]:
    exact = hits = n_pred = n_gold = kept = n_entities = 0
    for ex, tokens in zip(examples, segmented):
        gold, pred = set(char_spans(ex.tokens)), char_spans(tokens)
        exact += tokens == ex.tokens
        hits += len(gold & set(pred))
        n_pred, n_gold = n_pred + len(pred), n_gold + len(gold)
        entities = entity_spans(ex.tokens, ex.tags)
        inside = lambda spans, s, e: [w for w in spans if w[1] > s and w[0] < e]  # noqa: E731
        kept += sum(inside(pred, s, e) == inside(sorted(gold), s, e) for s, e in entities)
        n_entities += len(entities)
    precision, recall = hits / n_pred, hits / n_gold
    return {"exact": exact / len(examples), "word_f1": 2 * precision * recall / (precision + recall),
            "entities": kept / n_entities}


def candidates():
    """(name, segment function, seconds to import it and load its model)."""
    started = time.perf_counter()
    from pyvi import ViTokenizer  # loads its model at import

    yield "pyvi", lambda text: ViTokenizer.tokenize(text).split(), time.perf_counter() - started
    started = time.perf_counter()
    try:
        from underthesea import word_tokenize
    except ImportError:
        print("underthesea is not installed (pip install -r bench/requirements.txt): skipped")
        return
    word_tokenize("khởi động")  # loads its model at the first call
    # use_token_normalize=False: its normaliser rewrites spellings (`xoá` -> `xóa`), which the data keeps
    yield ("underthesea", lambda text: word_tokenize(text, format="text", use_token_normalize=False).split(),
           time.perf_counter() - started)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="generated sentences to segment")
    docpage.add_write_docs(parser, PAGE, "segmenters")
    args = commandline.parse(parser, argv)
    with docpage.printed_into_if(args.write_docs, PAGE, "segmenters", docpage.command_line("bench/segmenters.py", argv)):
        compare(args.n)


def compare(n: int) -> None:
    examples = generate(seed=1, sizes=(n, 0, 0))["train"]
    typed = [" ".join(ex.tokens).replace("_", " ") for ex in examples]
    plain = [i for i, ex in enumerate(examples) if "".join(ex.tokens).isascii()]
    print(f"{len(examples)} sentences, {len(plain)} typed without diacritics; one thread\n")
    print("| segmenter | mode | exact | word F1 | entity spans kept | exact, no diacritics | sentences/s | import + model load s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, segment_run, load_seconds in candidates():
        for mode, function in (("alone", segment_run), ("segment()", lambda t: segment(t, segment_run))):
            started = time.perf_counter()
            segmented = [function(text) for text in typed]
            speed = len(typed) / (time.perf_counter() - started)
            all_ = score(examples, segmented)
            no_diacritics = score([examples[i] for i in plain], [segmented[i] for i in plain])
            print(f"| {name} {version(name)} | {mode} | {all_['exact']:.3f} | {all_['word_f1']:.3f} | {all_['entities']:.3f} | "
                  f"{no_diacritics['exact']:.3f} | {speed:,.0f} | {load_seconds:.1f} |")


if __name__ == "__main__":
    commandline.run(main)
