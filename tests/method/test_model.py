import pytest
import torch

from sr_core.config import ModelConfig
from sr_core.method.model import NextNet, count_parameters


def test_parameter_count_is_tiny():
    assert 15_000 < count_parameters(NextNet()) < 30_000


@pytest.mark.parametrize("hw", [(7, 7), (13, 29), (32, 33), (1, 5)])
def test_any_size_works(hw):
    model = NextNet().eval()
    x = torch.randn(2, 3, *hw)
    out = model(x, x, torch.tensor([0, 14]))
    assert out.shape == (2, 3, *hw) and torch.isfinite(out).all()


def test_fully_convolutional_and_time_dependent():
    torch.manual_seed(0)
    model = NextNet().eval()
    x, y = torch.randn(1, 3, 96, 96), torch.randn(1, 3, 96, 96)
    a = model(x, y, torch.tensor([3]))
    b = model(x, y, torch.tensor([9]))
    assert not torch.allclose(a, b)
    # Translation equivariance beyond the receptive field's reach of the borders (~20 px).
    shifted = model(torch.roll(x, 4, -1), torch.roll(y, 4, -1), torch.tensor([3]))
    centre = (..., slice(36, 60), slice(36, 60))
    assert torch.allclose(torch.roll(a, 4, -1)[centre], shifted[centre], atol=1e-5)


def test_residual_parameterisation_starts_near_y():
    model = NextNet(ModelConfig(residual=True)).eval()
    with torch.no_grad():
        for p in model.head.parameters():
            p.zero_()
    y = torch.randn(1, 3, 10, 10)
    assert torch.allclose(model(torch.randn_like(y), y, torch.tensor([0])), y)


def test_channel_norm_in_nhwc_memory_is_the_same_arithmetic():
    """The fused layer_norm taken on NHWC memory equals the per-channel formula, gradients too."""
    from sr_core.method.model import ChannelLayerNorm

    torch.manual_seed(0)
    norm = ChannelLayerNorm(6)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 6, 9, 11) * 3 + 1
    results = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        xi = x.clone().contiguous(memory_format=fmt).requires_grad_(True)
        norm.zero_grad()
        out = norm(xi)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), xi.grad, norm.weight.grad.clone(), norm.bias.grad.clone()))
    assert results[1][0].is_contiguous(memory_format=torch.channels_last)  # stays NHWC for the next conv
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    mean, std = results[1][0].mean(1), results[1][0].std(1)
    assert mean.abs().max() > 0.1  # weight and bias were applied (not just normalised)
    assert torch.isfinite(std).all()


@pytest.mark.parametrize("shape,kernel", [((2, 32, 16, 16), 7), ((3, 6, 9, 13), 7), ((1, 4, 2, 3), 5), ((2, 8, 11, 5), 3)])
def test_depthwise_backward_on_nhwc_equals_torchs(shape, kernel):
    """The hand-written depthwise backward (NHWC, CPU) gives torch's own gradients."""
    from sr_core.method.model import DepthwiseConv2d

    torch.manual_seed(0)
    conv = DepthwiseConv2d(shape[1], kernel)
    x = torch.randn(shape)
    weights = torch.randn(shape)  # a loss that weights each output differently
    results = []
    for fmt in (torch.contiguous_format, torch.channels_last):  # torch's conv, then ours
        xi = x.clone().contiguous(memory_format=fmt).requires_grad_(True)
        conv.zero_grad()
        out = conv(xi)
        (out * weights).sum().backward()
        results.append((out.detach(), xi.grad, conv.weight.grad.clone(), conv.bias.grad.clone()))
    assert results[1][0].shape == x.shape
    for ours, torchs in zip(results[1], results[0]):
        assert torch.allclose(ours, torchs, atol=1e-4, rtol=1e-4)
    assert results[1][2].abs().max() > 1e-2  # a real gradient, not zeros on both sides

    # Weights only (the first block's input needs no gradient), and inference (no autograd).
    conv.zero_grad()
    (conv(x.contiguous(memory_format=torch.channels_last)) * weights).sum().backward()
    assert torch.allclose(conv.weight.grad, results[0][2], atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        assert torch.allclose(conv(x.contiguous(memory_format=torch.channels_last)), results[0][0], atol=1e-5)


def test_depthwise_under_cpu_autocast_takes_torchs_path(monkeypatch):
    """Under CPU autocast (bf16) the hand-written backward is skipped; on torch 2.1-2.3, whose
    `is_autocast_enabled` takes no device, the check still works."""
    from sr_core.runtime.device import autocast_dtype
    from sr_core.method.model import DepthwiseConv2d

    conv = DepthwiseConv2d(4, 3)
    x = torch.randn(1, 4, 6, 6).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert autocast_dtype("cpu") is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert autocast_dtype("cpu") == torch.bfloat16
        out = conv(x)
        assert out.dtype == torch.bfloat16 and "DepthwiseBackward" not in type(out.grad_fn).__name__
        out.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()

    def old_signature(*args):  # torch < 2.4
        if args:
            raise TypeError("is_autocast_enabled() takes 0 positional arguments")
        return False

    monkeypatch.setattr(torch, "is_autocast_enabled", old_signature)
    monkeypatch.setattr(torch, "is_autocast_cpu_enabled", lambda: True, raising=False)
    monkeypatch.setattr(torch, "get_autocast_cpu_dtype", lambda: torch.bfloat16, raising=False)
    assert autocast_dtype("cpu") == torch.bfloat16 and autocast_dtype("cuda") is None


PLAIN = ModelConfig(arch="plain", filters=16, depth=8, residual=True)


@pytest.mark.parametrize("hw", [(7, 7), (13, 29), (1, 5)])
def test_plain_chain_any_size_and_time_dependent(hw):
    from sr_core.method.model import PlainNet, make_denoiser

    torch.manual_seed(0)
    model = make_denoiser(PLAIN).eval()
    assert isinstance(model, PlainNet)
    x, y = torch.randn(1, 3, *hw), torch.randn(1, 3, *hw)
    a, b = model(x, y, torch.tensor([2])), model(x, y, torch.tensor([12]))
    assert a.shape == (1, 3, *hw) and torch.isfinite(a).all() and not torch.allclose(a, b)


def test_plain_chain_sees_exactly_its_receptive_radius():
    """An impulse in y moves outputs up to `receptive_radius` pixels away and none beyond,
    so tiles overlapping by that margin stitch exactly."""
    from sr_core.method.model import make_denoiser
    from sr_core.runtime.tiling import receptive_radius

    torch.manual_seed(0)
    model = make_denoiser(PLAIN).eval()
    r = receptive_radius(model)
    assert r == PLAIN.depth
    x = torch.zeros(1, 3, 41, 41)
    y2 = x.clone()
    y2[..., 20, 20] = 1.0
    with torch.no_grad():
        diff = (model(x, y2, torch.tensor([5])) - model(x, x, torch.tensor([5]))).abs().sum(1)[0]
    rows, cols = torch.nonzero(diff > 0, as_tuple=True)
    assert int((rows - 20).abs().max()) == r and int((cols - 20).abs().max()) == r


def test_plain_arch_is_validated_and_part_of_the_architecture():
    from sr_core.config import preset
    from sr_core.errors import UserError

    cfg = preset("smoke")
    with pytest.raises(UserError, match="arch"):
        cfg.model.arch = "transformer"
        cfg.validate()
    cfg.model.arch = "plain"
    assert cfg.architecture() != preset("smoke").architecture()
