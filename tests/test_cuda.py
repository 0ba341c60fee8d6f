"""The CUDA path: mixed precision training and masking on a GPU. Skipped on machines without one."""
import pytest
import torch

from nlu_collapse import train
from nlu_collapse.losses import focal_loss
from nlu_collapse.model import apply_mask

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("flags", [["--precision=bf16"], ["--precision=fp16", "--mask_value=finfo_min"]])
def test_train_on_gpu_with_autocast(tmp_path, small_data, flags):
    summary = train.main([f"--data={small_data}", f"--output_dir={tmp_path}", "--wandb_mode=disabled", "--device=cuda",
                          "--epochs=2", *flags])
    assert summary["status"] == "finished" and summary["health/collapsed"] is False


@cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_masking_under_half_precision_on_gpu(dtype):
    logits = torch.randn(8, 5, device="cuda", dtype=dtype)
    invalid = torch.tensor([False, False, True, False, False], device="cuda")
    target = torch.randint(0, 2, (8,), device="cuda")
    assert torch.isfinite(focal_loss(apply_mask(logits, invalid, "finfo_min"), target, impl="dense"))
    assert torch.isnan(focal_loss(apply_mask(logits, invalid, float("-inf")), target, impl="dense"))
    if dtype == torch.float16:
        with pytest.raises(ValueError, match="does not fit in torch.float16"):
            apply_mask(logits, invalid, -1e9)
    else:
        assert torch.isfinite(focal_loss(apply_mask(logits, invalid, -1e9), target, impl="dense"))
