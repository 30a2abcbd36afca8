import torch
from torch import nn

from dpgan.training.ema import ema_update, make_ema, recalibrate_batchnorm


def test_ema_update_averages_parameters_only():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    ema = make_ema(model)
    with torch.no_grad():
        for p in ema.parameters():
            p.zero_()
        for p in model.parameters():
            p.fill_(1.0)
    ema[1].num_batches_tracked.fill_(5)
    model[1].num_batches_tracked.fill_(100)
    ema_update(ema, model, decay=0.9)
    for p in ema.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.1))
    assert ema[1].num_batches_tracked.item() == 5  # integer counters are not averaged


def test_recalibrated_batchnorm_holds_the_exact_mean_and_variance():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2, affine=False), nn.Dropout(0.5))
    model.eval()
    batches = [torch.randn(4, 1, 5, 5) * 3 + 1 for _ in range(3)]
    used = recalibrate_batchnorm(model, batches, lambda m, x: m(x))
    assert used == 3
    with torch.no_grad():
        feats = [model[0](x) for x in batches]
    mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in feats]).mean(0)
    torch.testing.assert_close(model[1].running_mean, mean)
    torch.testing.assert_close(model[1].running_var, var)
    assert model[1].momentum == 0.1 and not model.training and not model[1].training
    model.train()
    recalibrate_batchnorm(model, batches, lambda m, x: m(x))
    assert model.training  # the caller's mode is restored
    torch.testing.assert_close(model[1].running_mean, mean)  # dropout was off while measuring


def test_ema_warmup_forgets_the_initial_weights_early_and_reaches_the_set_decay():
    from dpgan.training.loop import ema_decay_at

    assert ema_decay_at(0, 0.999, warmup=True) == 0.1
    assert ema_decay_at(200, 0.999, warmup=True) < 0.96
    assert ema_decay_at(20_000, 0.999, warmup=True) == 0.999
    assert ema_decay_at(0, 0.999, warmup=False) == 0.999
