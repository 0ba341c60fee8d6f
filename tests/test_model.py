import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from nlu_collapse.config import parse_config, parse_mask_value
from nlu_collapse.data import load_dataset
from nlu_collapse.losses import MultiTaskLoss, TaskWeights
from nlu_collapse.model import MultiTaskNLU, apply_mask, build_encoder, build_tiny_tokenizer, encode
from nlu_collapse.model.tokenization import collate

INVALID = torch.tensor([False, False, True, False])


@pytest.mark.parametrize("text, expected", [("-inf", float("-inf")), ("-1e9", -1e9), ("finfo_min", "finfo_min"),
                                            ("none", None)])
def test_parse_mask_value(text, expected):
    assert parse_mask_value(text) == expected


@pytest.mark.parametrize("text", ["banana", "5", "nan"])
def test_parse_mask_value_rejects(text):
    with pytest.raises(ValueError, match="--mask_value"):
        parse_mask_value(text)


def test_minus_inf_is_a_genuine_masked_fill():
    z = torch.zeros(2, 4)
    out = apply_mask(z, INVALID, float("-inf"))
    assert torch.isneginf(out[:, 2]).all() and (out[:, [0, 1, 3]] == 0).all()
    assert torch.equal(apply_mask(z, INVALID, None), z)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_finfo_min_is_safe_in_every_dtype(dtype):
    out = apply_mask(torch.zeros(2, 4, dtype=dtype), INVALID, "finfo_min")
    assert torch.isfinite(out).all() and out[0, 2] == torch.finfo(dtype).min
    assert torch.softmax(out.float(), -1)[0, 2] == 0


def test_minus_1e9_under_float16_is_refused_before_the_run_with_a_clear_error(capsys):
    with pytest.raises(RuntimeError):  # what torch itself does, deep inside a forward pass
        torch.zeros(2, 4, dtype=torch.float16).masked_fill(INVALID, -1e9)
    with pytest.raises(SystemExit):
        parse_config(["--precision=fp16", "--mask_value=-1e9"])
    assert "--mask_value=-1e9 does not fit in torch.float16" in capsys.readouterr().err
    assert parse_config(["--precision=fp16", "--mask_value=finfo_min"]).mask == "finfo_min"
    assert torch.isfinite(apply_mask(torch.zeros(2, 4, dtype=torch.bfloat16), INVALID, -1e9)).all()
    assert torch.isfinite(apply_mask(torch.zeros(2, 4, dtype=torch.float16), INVALID, "finfo_min")).all()


@pytest.fixture(scope="module")
def tiny(small_data):
    dataset = load_dataset(str(small_data))
    tokenizer = build_tiny_tokenizer(dataset.splits["train"])
    encoded = encode(dataset.splits["train"][:32], tokenizer, dataset.labels)
    return dataset, tokenizer, collate(encoded, tokenizer.pad_token_id)


def _model(dataset, tokenizer, mask_value):
    torch.manual_seed(0)
    labels = dataset.labels
    return MultiTaskNLU(build_encoder("tiny", len(tokenizer)), len(labels.intents), len(labels.commands),
                        len(labels.tags), torch.tensor(labels.invalid_mask), parse_mask_value(mask_value))


def test_alignment_first_subword_carries_the_tag(tiny):
    dataset, tokenizer, _ = tiny
    ex = dataset.splits["train"][0]
    enc = encode([ex], tokenizer, dataset.labels)[0]
    assert len(enc.word_positions) == len(ex.tokens) and enc.dropped_words == [] and enc.cut_off == 0
    assert [enc.tag_ids[p] for p in enc.word_positions] == [dataset.labels.tags.encode(t) for t in ex.tags]
    assert sum(t != -100 for t in enc.tag_ids) == len(ex.tokens)
    assert enc.tag_ids[0] == -100 and enc.tag_ids[-1] == -100  # [CLS], [SEP]


def _one_step(dataset, tokenizer, batch, mask_value):
    model = _model(dataset, tokenizer, mask_value)
    criterion = MultiTaskLoss(TaskWeights.from_preset("old"), torch.ones(len(dataset.labels.tags)), 0.25, 3.0, "dense")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    total, _, _ = criterion(model(batch["input_ids"], batch["attention_mask"]), batch, epoch=0)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = model(batch["input_ids"], batch["attention_mask"])
    return model, total, logits


def test_collapse_chain_dense_minus_inf_one_step(tiny):
    """NaN loss -> NaN total grad norm -> clipping multiplies every grad by NaN -> every parameter NaN
    -> every argmax is index 0: all O, the first intent, the first command."""
    dataset, tokenizer, batch = tiny
    model, total, logits = _one_step(dataset, tokenizer, batch, "-inf")
    assert torch.isnan(total)
    assert all(torch.isnan(p).all() for p in model.parameters())
    valid = batch["tags"] != -100
    assert (logits["entity"].argmax(-1)[valid] == 0).all() and dataset.labels.tags.names[0] == "O"
    assert (logits["intent"].argmax(-1) == 0).all() and dataset.labels.intents.names[0] == "add-contacts"
    assert (logits["command"].argmax(-1) == 0).all()


def test_same_step_with_minus_1e9_stays_finite(tiny):
    dataset, tokenizer, batch = tiny
    model, total, logits = _one_step(dataset, tokenizer, batch, "-1e9")
    assert torch.isfinite(total)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert len(set(logits["entity"].argmax(-1)[batch["tags"] != -100].tolist())) > 1


def test_pretrained_path_through_automodel(tiny, tmp_path):
    """The HF path (`--encoder=<name or dir>`) with a tiny model directory saved here (no hub)."""
    dataset, tokenizer, _ = tiny
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded_tok = AutoTokenizer.from_pretrained(tmp_path)
    encoder = build_encoder(str(tmp_path), len(loaded_tok))
    assert encoder.config.hidden_size == 32
    enc = encode(dataset.splits["train"][:4], loaded_tok, dataset.labels)
    assert enc == encode(dataset.splits["train"][:4], tokenizer, dataset.labels)


def test_slow_tokenizer_alignment_phobert_style(tmp_path, tiny):
    """PhoBERT ships a Python (slow) BPE tokenizer without word_ids(): words are encoded one by one."""
    from transformers import PhobertTokenizer

    dataset = tiny[0]
    words = sorted({t for ex in dataset.splits["train"][:8] for t in ex.tokens})
    (tmp_path / "vocab.txt").write_text("".join(f"{w} 1\n" for w in words[::2]), encoding="utf-8")
    (tmp_path / "bpe.codes").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = PhobertTokenizer(str(tmp_path / "vocab.txt"), str(tmp_path / "bpe.codes"))
    assert not tokenizer.is_fast
    for ex, enc in zip(dataset.splits["train"][:8], encode(dataset.splits["train"][:8], tokenizer, dataset.labels)):
        assert enc.input_ids[0] == tokenizer.bos_token_id and enc.input_ids[-1] == tokenizer.eos_token_id
        assert [enc.tag_ids[p] for p in enc.word_positions] == [dataset.labels.tags.encode(t) for t in ex.tags]
        assert len(enc.word_positions) == len(ex.tokens) and enc.dropped_words == []
