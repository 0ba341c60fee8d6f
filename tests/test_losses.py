from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from nlu_collapse.config import parse_warmup
from nlu_collapse.losses import MultiTaskLoss, TaskWeights, entity_class_weights, focal_loss

IMPLS = ("dense", "gather")


def _logits(n=6, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=torch.float64, requires_grad=True), torch.randint(0, c, (n,), generator=g)


@pytest.mark.parametrize("impl", IMPLS)
def test_gamma0_scale1_unit_weights_is_cross_entropy_in_value_and_gradient(impl):
    z, y = _logits()
    fl = focal_loss(z, y, scale=1.0, gamma=0.0, impl=impl)
    (g_fl,) = torch.autograd.grad(fl, z)
    ce = F.cross_entropy(z, y)
    (g_ce,) = torch.autograd.grad(ce, z)
    assert torch.allclose(fl.double(), ce, atol=1e-6)
    assert torch.allclose(g_fl.double(), g_ce, atol=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("gamma", [1.0, 2.0, 3.0])
def test_exact_down_weighting(impl, gamma):
    z, y = _logits(n=1)
    p_t = torch.softmax(z, -1)[0, y[0]]
    ce = F.cross_entropy(z, y)
    expected = 0.25 * (1 - p_t) ** gamma * ce
    assert torch.allclose(focal_loss(z, y, scale=0.25, gamma=gamma, impl=impl).double(), expected, atol=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
def test_class_weights_multiply_each_token(impl):
    z, y = _logits(n=8, c=4)
    w = torch.tensor([0.1, 1.0, 2.0, 5.0], dtype=torch.float64)
    per_token = torch.stack([focal_loss(z[i:i + 1], y[i:i + 1], scale=1.0, gamma=2.0, impl=impl) for i in range(8)])
    weighted = focal_loss(z, y, scale=1.0, gamma=2.0, weight=w, impl=impl)
    assert torch.allclose(weighted.double(), (per_token.double() * w[y]).mean(), atol=1e-6)


def test_gather_weight_is_outside_pt():
    """Passing the weight into cross_entropy would make p_t = p ** w: the form must not."""
    z = torch.tensor([[2.0, 0.0]])
    y = torch.tensor([0])
    p = torch.softmax(z, -1)[0, 0]
    got = focal_loss(z, y, scale=1.0, gamma=2.0, weight=torch.tensor([0.1, 1.0]), impl="gather")
    assert torch.allclose(got, 0.1 * (1 - p) ** 2 * -torch.log(p))


@pytest.mark.parametrize("impl", IMPLS)
def test_each_form_matches_the_paper_formula_with_class_weights(impl):
    z, y = _logits(n=10, c=6, seed=3)
    w = torch.linspace(0.1, 5, 6, dtype=torch.float64)
    p_t = torch.softmax(z, -1).gather(1, y[:, None]).squeeze(1)
    expected = (0.25 * w[y] * (1 - p_t) ** 2 * -torch.log(p_t)).mean()  # FL = -s w_y (1 - p_t)^gamma log p_t
    assert torch.allclose(focal_loss(z, y, 0.25, 2.0, w, impl), expected)


@pytest.mark.parametrize("impl", IMPLS)
def test_all_ignored_batch_is_a_finite_zero_that_backpropagates(impl):
    z = torch.randn(4, 3, requires_grad=True)
    loss = focal_loss(z, torch.full((4,), -100), impl=impl)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(z.grad, torch.zeros_like(z))


def _masked(value, gold=1):
    z = torch.randn(3, 4, requires_grad=True)
    masked = z.masked_fill(torch.tensor([False, False, True, False]), value)
    return z, masked, torch.tensor([0, gold, 3])


def test_dense_with_minus_inf_is_nan_in_forward_and_backward():
    z, masked, y = _masked(float("-inf"))
    loss = focal_loss(masked, y, impl="dense")
    loss.backward()
    assert torch.isnan(loss) and torch.isnan(z.grad).any()


def test_gather_with_minus_inf_is_finite_unless_the_gold_label_is_masked():
    z, masked, y = _masked(float("-inf"))
    loss = focal_loss(masked, y, impl="gather")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    z, masked, y = _masked(float("-inf"), gold=2)
    loss = focal_loss(masked, y, impl="gather")
    loss.backward()
    assert torch.isinf(loss) and torch.isnan(z.grad).any()


@pytest.mark.parametrize("impl", IMPLS)
def test_minus_1e9_is_finite_in_both_forms(impl):
    z, masked, y = _masked(-1e9)
    loss = focal_loss(masked, y, impl=impl)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_class_weights_formula():
    counts = Counter({"O": 100, "B-A": 30, "I-A": 10, "B-B": 2})
    w = entity_class_weights(["O", "B-A", "I-A", "B-B", "I-B"], counts, o_weight=0.1, max_class_weight=5.0)
    n_entity, k = 42, 3
    assert w.tolist() == pytest.approx([0.1, n_entity / (k * 30), n_entity / (k * 10), 5.0, 5.0])


def test_task_weight_presets_overrides_and_warmup():
    new = TaskWeights.from_preset("new")
    assert [new.at_epoch(e)["entity"] for e in range(4)] == [0.3, 0.4, 0.5, 0.5]
    assert new.at_epoch(0)["intent"] == 0.3 and new.at_epoch(0)["command"] == 0.2
    old = TaskWeights.from_preset("old")
    assert old.at_epoch(0) == {"entity": 0.8, "intent": 0.15, "command": 0.05}
    custom = TaskWeights.from_preset("new", entity=0.6, warmup=parse_warmup("off"))
    assert custom.at_epoch(0)["entity"] == 0.6
    assert TaskWeights.from_preset("old", warmup=parse_warmup("0.1,0.2")).at_epoch(1)["entity"] == 0.2
    with pytest.raises(ValueError, match="--entity_warmup"):
        parse_warmup("fast")
    with pytest.raises(ValueError, match="unknown task-weight preset 'newer'"):
        TaskWeights.from_preset("newer")


def test_multitask_components_and_absent_command_head():
    logits = {"entity": torch.randn(2, 5, 3), "intent": torch.randn(2, 4)}
    batch = {"tags": torch.tensor([[0, 1, 2, -100, -100], [1, 0, -100, -100, -100]]), "intent": torch.tensor([1, 3]),
             "command": torch.tensor([-100, -100])}
    loss = MultiTaskLoss(TaskWeights.from_preset("old"), torch.ones(3), 0.25, 2.0, "dense")
    total, weighted, parts = loss(logits, batch, epoch=0)
    assert "command" not in weighted and "loss/command" not in parts
    assert torch.allclose(total, 0.8 * parts["loss/entity"] + 0.15 * parts["loss/intent"])
    assert parts["loss/weighted/intent"] == pytest.approx(0.15 * parts["loss/intent"].item())
