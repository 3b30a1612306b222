"""sr_core.method.optim: the same updates as torch.optim's Adam and schedulers, without their start-up cost."""

import subprocess
import sys

import pytest
import torch

from sr_core.method.optim import Adam, LRSchedule


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.GELU(), torch.nn.Conv2d(4, 2, 1))


def _train(net, opt, sched, steps=12):
    torch.manual_seed(1)
    lrs = []
    for _ in range(steps):
        loss = net(torch.randn(2, 3, 8, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        lrs.append(opt.lr if isinstance(opt, Adam) else opt.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize("kind", ["cosine", "step"])
def test_adam_and_schedules_match_torch_optim_exactly(kind):
    a, b = _net(), _net()
    ours = Adam(a.parameters(), lr=3e-2)
    ref = torch.optim.Adam(b.parameters(), lr=3e-2)
    if kind == "cosine":
        s_ours, s_ref = LRSchedule(ours, "cosine", total=10), torch.optim.lr_scheduler.CosineAnnealingLR(ref, 10)
    else:
        s_ours = LRSchedule(ours, "step", milestones=(3, 7, 7), gamma=0.5)
        s_ref = torch.optim.lr_scheduler.MultiStepLR(ref, [3, 7, 7], gamma=0.5)
    lr_ours, lr_ref = _train(a, ours, s_ours), _train(b, ref, s_ref)
    assert lr_ours == lr_ref  # to the last bit, past the end of the cosine (T = 10 < 12 steps)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_state_dicts_cross_load_with_torch_optim():
    """Checkpoints made with torch.optim resume here, and the other way round."""
    a, b = _net(), _net()
    ref = torch.optim.Adam(b.parameters(), lr=1e-2)
    s_ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref, 20)
    _train(b, ref, s_ref, steps=5)
    ours = Adam(a.parameters(), lr=1e-2)
    s_ours = LRSchedule(ours, "cosine", total=20)
    a.load_state_dict(b.state_dict())
    ours.load_state_dict(ref.state_dict())
    s_ours.load_state_dict(s_ref.state_dict())
    assert ours.steps == 5 and ours.lr == ref.param_groups[0]["lr"] and s_ours.last_epoch == 5
    assert _train(a, ours, s_ours, 4) == _train(b, ref, s_ref, 4)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    back = torch.optim.Adam(_net().parameters(), lr=1.0)
    back.load_state_dict(ours.state_dict())
    assert back.param_groups[0]["lr"] == ours.lr and float(back.state_dict()["state"][0]["step"]) == 9
    with pytest.raises(ValueError, match="another model"):
        Adam(torch.nn.Linear(2, 2).parameters(), lr=1.0).load_state_dict(ours.state_dict())


def test_a_whole_cli_run_never_imports_the_compiler(tmp_path, sample_rgb):
    """torch._dynamo costs seconds to import; training and upscaling must not pull it in."""
    from sr_core.runtime.io import save_image

    png = save_image(tmp_path / "in.png", sample_rgb[:24, :24])
    code = (
        "import sys; from sr_core.faces.cli import main; "
        f"rc = main(['run', {str(png)!r}, '--scale', '2', '--out', {str(tmp_path / 'o')!r}, '--preset', 'smoke', "
        "'--train.steps_per_scale', '2', '--train.grad_clip', '1.0', '-q']); "
        "print('dynamo' if 'torch._dynamo' in sys.modules else 'clean', rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split()[-2:] == ["clean", "0"], out.stdout + out.stderr
