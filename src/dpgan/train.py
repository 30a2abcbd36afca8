"""Training DP-GAN: one function, read top to bottom.

    build -> resume -> loop { G step, D step (with LabelMix), EMA, log, sample, save } -> final save

The G step comes first, as in the published code. Device is decided by the caller.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpgan import losses
from dpgan.checkpoint import list_checkpoints, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dpgan.config import Config
from dpgan.data.info import DatasetInfo
from dpgan.ema import ema_update, make_ema, recalibrate_batchnorm
from dpgan.errors import CheckpointError, DPGANError
from dpgan.models import build_models_from_config
from dpgan.sampling import StepBatchSampler
from dpgan.visualize import colorize, image_grid, save_png


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DPGANError(f"--device {name} was asked for but no CUDA device is available; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise DPGANError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def one_hot(label_map: Tensor, num_classes: int) -> Tensor:
    """(B, H, W) ids -> (B, N, H, W) float, built on the label's device."""
    return F.one_hot(label_map, num_classes).permute(0, 3, 1, 2).to(torch.float32)


def taps(out, where: str) -> list[Tensor]:
    """The discriminator features named by an ablation switch ('enc', 'dec', 'enc+dec')."""
    picked: list[Tensor] = []
    if "enc" in where:
        picked += out.encoder_features
    if "dec" in where:
        picked += out.decoder_features
    return picked


@dataclass
class Batch:
    image: Tensor  # (B, 3, H, W) in [-1, 1]
    label_map: Tensor  # (B, H, W) long
    onehot: Tensor  # (B, N, H, W)


def generator_step(cfg: Config, G: nn.Module, D: nn.Module, batch: Batch, alpha: Tensor) -> dict[str, Tensor]:
    """G wants D to segment its image as the label map, to fool the patch heads, and to match
    D's features of the real image."""
    m, lc = cfg.model, cfg.loss
    fake = G(batch.onehot)
    out = D(fake)
    parts = {"g/pixel": losses.pixel_loss(out.logits, batch.label_map, real=True, class_weights=alpha)}
    if m.patch_loss != "none":
        parts["g/patch"] = lc.lambda_patch * losses.patch_loss_g(out.patch_scores)
    if m.feature_loss != "none":
        with torch.no_grad():  # targets only: no graph through D on the real image
            real_out = D(batch.image)
        parts["g/feature"] = lc.lambda_feature * losses.feature_matching_loss(
            taps(out, m.feature_loss), taps(real_out, m.feature_loss)
        )
    parts["g/total"] = torch.stack(list(parts.values())).sum()
    return parts


def discriminator_step(
    cfg: Config, G: nn.Module, D: nn.Module, batch: Batch, alpha: Tensor, num_classes: int
) -> dict[str, Tensor]:
    """D segments real pixels into their class and generated pixels into 'fake', scores patches
    with hinge losses, and is regularised by LabelMix."""
    m, lc = cfg.model, cfg.loss
    with torch.no_grad():
        fake = G(batch.onehot)
    out_fake = D(fake)
    out_real = D(batch.image)
    parts = {
        "d/fake": losses.pixel_loss(out_fake.logits, batch.label_map, real=False),
        "d/real": losses.pixel_loss(out_real.logits, batch.label_map, real=True, class_weights=alpha),
    }
    if m.patch_loss != "none":
        parts["d/patch"] = lc.lambda_patch * losses.patch_loss_d(out_real.patch_scores, out_fake.patch_scores)
    if lc.labelmix:
        mask = losses.labelmix_mask(batch.label_map, num_classes)
        out_mixed = D(losses.labelmix_images(batch.image, fake, mask))
        parts["d/labelmix"] = lc.lambda_labelmix * losses.labelmix_loss(
            out_mixed.logits, out_real.logits, out_fake.logits, mask
        )
    parts["d/total"] = torch.stack(list(parts.values())).sum()
    return parts


def build_data(cfg: Config):
    """Train and val datasets, after a quick check that refuses a broken dataset up front.
    A folder without a val split shows samples of its training images instead."""
    from dpgan.data.check import check_before_training
    from dpgan.data.registry import build_dataset, has_split

    if cfg.data.dataset != "synthetic-streets":  # generated in code: nothing on disk to check
        check_before_training(cfg.data)
    train_set = build_dataset(cfg.data, "train", train=True)
    val_split = "val" if has_split(cfg.data, "val") else "train"
    return train_set, build_dataset(cfg.data, val_split, train=False)


def _to_batch(raw: dict, num_classes: int, device: torch.device) -> Batch:
    image = raw["image"].to(device, non_blocking=True)
    label_map = raw["label"].to(device, non_blocking=True)
    return Batch(image, label_map, one_hot(label_map, num_classes))


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    seconds: float
    last_losses: dict[str, float]


def train(
    cfg: Config,
    run_dir: str | Path,
    *,
    device: str = "auto",
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    from tqdm import tqdm

    run_dir = Path(run_dir)
    dev = resolve_device(device)
    t = cfg.train

    # ---- build -------------------------------------------------------------------------
    train_set, val_set = build_data(cfg)
    info: DatasetInfo = train_set.info
    n_cls = info.num_classes
    torch.manual_seed(t.seed)
    G, D = build_models_from_config(cfg.model, n_cls)
    G, D = G.to(dev), D.to(dev)
    G_ema = make_ema(G)
    opt_g = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2))
    start_step, elapsed_before = 0, 0.0

    # ---- resume ------------------------------------------------------------------------
    if resume and list_checkpoints(run_dir):
        ck = load_checkpoint(run_dir, map_location=dev)
        saved = Config.from_json(ck["config"])
        if saved.model != cfg.model or saved.data.dataset != cfg.data.dataset:
            raise CheckpointError(
                f"{ck['path']}: was trained with a different model or dataset than the one asked for now"
            )
        G.load_state_dict(ck["generator"])
        D.load_state_dict(ck["discriminator"])
        G_ema.load_state_dict(ck["generator_ema"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        set_rng_state(ck["rng"])
        start_step, elapsed_before = int(ck["step"]), float(ck.get("seconds", 0.0))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.to_json())
    (run_dir / "dataset.json").write_text(info.to_json())

    sampler = StepBatchSampler(
        len(train_set), t.batch_size, seed=t.seed, start_step=start_step, end_step=t.steps, keyed=True
    )
    loader = torch.utils.data.DataLoader(
        train_set,
        batch_sampler=sampler,
        num_workers=cfg.data.num_workers,
        pin_memory=dev.type == "cuda",
        persistent_workers=False,
        # worker seeds come from this generator, not the global RNG, so that creating the
        # loader on resume does not shift the noise stream of the steps that follow
        generator=torch.Generator().manual_seed(t.seed * 1_000_003 + start_step),
    )
    val_fixed = _fixed_examples(val_set, 8)
    writer = _summary_writer(run_dir / "tb")

    def use_ema() -> None:
        # BN statistics of the averaged weights, from training batches (no labels leak: G only).
        recalibrate_batchnorm(
            G_ema,
            _cycle_batches(train_set, t.batch_size, t.ema_bn_batches, t.seed),
            lambda g, raw: g(one_hot(raw["label"].to(dev), n_cls)),
        )

    def save(step: int) -> None:
        use_ema()
        payload = {
            "config": cfg.to_json(),
            "dataset_info": info.to_json(),
            "generator": G.state_dict(),
            "discriminator": D.state_dict(),
            "generator_ema": G_ema.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "rng": rng_state(),
            "seconds": elapsed_before + time.perf_counter() - t0,
        }
        save_checkpoint(run_dir, step, payload, keep=t.keep_checkpoints)

    def sample(step: int) -> None:
        use_ema()
        grid = sample_grid(G_ema, val_fixed, info, dev, seed=t.seed)
        save_png(grid, run_dir / "samples" / f"step_{step:08d}.png")
        save_png(grid, run_dir / "samples" / "latest.png")
        if writer is not None:
            writer.add_image("samples/label|generated|generated|real", grid, step, dataformats="HWC")

    # ---- loop --------------------------------------------------------------------------
    t0 = time.perf_counter()
    sums: dict[str, Tensor] = {}
    count = 0
    last: dict[str, float] = {}
    step = start_step
    bar = tqdm(total=t.steps, initial=start_step, disable=not progress, desc="train", unit="step", dynamic_ncols=True)
    G.train()
    D.train()
    for raw in loader:
        batch = _to_batch(raw, n_cls, dev)
        alpha = (
            losses.class_balance_weights(batch.label_map, n_cls, info.ignore_index)
            if cfg.loss.class_balancing
            else None
        )
        # G step (D frozen: its parameters need no gradient here)
        D.requires_grad_(False)
        g_parts = generator_step(cfg, G, D, batch, alpha)
        opt_g.zero_grad(set_to_none=True)
        g_parts["g/total"].backward()
        opt_g.step()
        D.requires_grad_(True)
        # D step
        d_parts = discriminator_step(cfg, G, D, batch, alpha, n_cls)
        opt_d.zero_grad(set_to_none=True)
        d_parts["d/total"].backward()
        opt_d.step()
        # EMA
        ema_update(G_ema, G, t.ema_decay)
        step += 1
        bar.update(1)

        # log: the only host-device synchronisation of a step, every log_every steps
        for k, v in {**g_parts, **d_parts}.items():
            sums[k] = sums.get(k, 0.0) + v.detach()
        count += 1
        if step % t.log_every == 0 or step == t.steps:
            keys = sorted(sums)
            values = (torch.stack([sums[k] for k in keys]) / count).tolist()
            last = dict(zip(keys, values))
            sums, count = {}, 0
            _log(run_dir, writer, step, last)
            bar.set_postfix({"G": f"{last['g/total']:.3f}", "D": f"{last['d/total']:.3f}"})
            if not all(map(_finite, values)):
                raise DPGANError(f"training diverged at step {step}: non-finite losses {last}")
        if step % t.sample_every == 0:
            sample(step)
        if step % t.checkpoint_every == 0:
            save(step)
    bar.close()

    # ---- final save ----------------------------------------------------------------------
    if not list_checkpoints(run_dir) or _latest_step(run_dir) != step:
        save(step)
    if not (run_dir / "samples" / f"step_{step:08d}.png").exists():
        sample(step)
    if writer is not None:
        writer.close()
    return TrainResult(run_dir, step, elapsed_before + time.perf_counter() - t0, last)


# ---- helpers ---------------------------------------------------------------------------------

def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def _latest_step(run_dir: Path) -> int:
    return int(list_checkpoints(run_dir)[-1].stem.split("_")[1])


def _fixed_examples(dataset, n: int) -> dict:
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    return {
        "image": torch.stack([it["image"] for it in items]),
        "label": torch.stack([it["label"] for it in items]),
    }


def _cycle_batches(dataset, batch_size: int, num_batches: int, seed: int):
    """Deterministic batches for BN recalibration, drawn without touching the global RNG."""
    g = torch.Generator().manual_seed(seed + 7919)
    for b in range(num_batches):
        idx = torch.randint(0, len(dataset), (batch_size,), generator=g).tolist()
        # keyed indices: the augmentations of these items are fixed too (keys far from the stream's)
        keys = [(1 << 40) + b * batch_size + j for j in range(batch_size)]
        yield {"label": torch.stack([dataset[(i, k)]["label"] for i, k in zip(idx, keys)])}


@torch.no_grad()
def sample_grid(G: nn.Module, examples: dict, info: DatasetInfo, dev: torch.device, seed: int, scale: int = 2):
    """label | generated (z1) | generated (z2) | real: one row per example."""
    label_map = examples["label"].to(dev)
    onehot = one_hot(label_map, info.num_classes)
    g = torch.Generator(device=dev).manual_seed(seed)
    columns = [colorize(label_map, info.colors)]
    if getattr(G, "use_3d_noise", True):
        for _ in range(2):
            z = torch.randn(label_map.shape[0], G.z_dim, device=dev, generator=g)
            columns.append(G(onehot, z))
    else:
        columns.append(G(onehot))
    columns.append(examples["image"].to(dev))
    return image_grid(columns, scale=scale)


def _summary_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a declared dependency; stay usable without it
        return None
    return SummaryWriter(str(path))


def _log(run_dir: Path, writer, step: int, values: dict[str, float]) -> None:
    if writer is not None:
        for k, v in values.items():
            writer.add_scalar(f"loss/{k}", v, step)
    with open(run_dir / "losses.jsonl", "a") as f:
        f.write(json.dumps({"step": step, **values}) + "\n")
