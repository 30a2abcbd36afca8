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

from dpgan.training import distributed, global_batch, preflight, resilience, speed
from dpgan import losses
from dpgan.checkpoint import list_checkpoints, load_checkpoint, rng_state, set_rng_state
from dpgan.config import Config
from dpgan.devices import resolve_device
from dpgan.data.info import DatasetInfo
from dpgan.training.ema import ema_update, make_ema, recalibrate_batchnorm
from dpgan.errors import CheckpointError, DPGANError
from dpgan.models import build_models_from_config
from dpgan.tensors import one_hot
from dpgan.training.sampling import StepBatchSampler
from dpgan.visualize import colorize, image_grid, save_png


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
    # The step's random draws for these images (global_batch.StepNoise); None: G and LabelMix draw
    z_g: Tensor | None = None  # (B, z_dim) for the G step
    z_d: Tensor | None = None  # (B, z_dim) for the D step
    labelmix_mask: Tensor | None = None  # (B, 1, H, W)


def generator_step(cfg: Config, G: nn.Module, D: nn.Module, batch: Batch, alpha: Tensor) -> dict[str, Tensor]:
    """G wants D to segment its image as the label map, to fool the patch heads, and to match
    D's features of the real image."""
    m, lc = cfg.model, cfg.loss
    fake = G(batch.onehot, batch.z_g)
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
        fake = G(batch.onehot, batch.z_d)
    out_fake = D(fake)
    out_real = D(batch.image)
    parts = {
        "d/fake": losses.pixel_loss(out_fake.logits, batch.label_map, real=False),
        "d/real": losses.pixel_loss(out_real.logits, batch.label_map, real=True, class_weights=alpha),
    }
    if m.patch_loss != "none":
        parts["d/patch"] = lc.lambda_patch * losses.patch_loss_d(out_real.patch_scores, out_fake.patch_scores)
    if lc.labelmix:
        mask = batch.labelmix_mask if batch.labelmix_mask is not None else losses.labelmix_mask(
            batch.label_map, num_classes)
        out_mixed = D(losses.labelmix_images(batch.image, fake, mask))
        parts["d/labelmix"] = lc.lambda_labelmix * losses.labelmix_loss(
            out_mixed.logits, out_real.logits, out_fake.logits, mask
        )
    parts["d/total"] = torch.stack(list(parts.values())).sum()
    parts.update(losses.segmentation_diagnostics(out_real.logits.detach(), batch.label_map))
    return parts


def patchgan_generator_step(
    cfg: Config, G: nn.Module, D: nn.Module, batch: Batch, alpha: Tensor | None
) -> dict[str, Tensor]:
    """SPADE baseline (model.d_arch "multiscale-patch"): G wants its patches scored real (hinge,
    linear form) and D's features of its image, at every layer and scale, to match those of the
    real image (L1). `alpha` is unused: this discriminator does not segment."""
    fake = G(batch.onehot, batch.z_g)
    out = D(fake, batch.onehot)
    with torch.no_grad():  # targets only
        real_out = D(batch.image, batch.onehot)
    parts = {
        "g/adversarial": losses.patch_loss_g(out.scores),
        "g/gan_feature": cfg.loss.lambda_gan_feature * losses.gan_feature_matching_loss(out.features, real_out.features),
    }
    parts["g/total"] = torch.stack(list(parts.values())).sum()
    return parts


def patchgan_discriminator_step(
    cfg: Config, G: nn.Module, D: nn.Module, batch: Batch, alpha: Tensor | None, num_classes: int
) -> dict[str, Tensor]:
    """SPADE baseline: hinge loss on every scale's patch scores of (label, real) and (label, fake)."""
    with torch.no_grad():
        fake = G(batch.onehot, batch.z_d)
    out_fake = D(fake, batch.onehot)
    out_real = D(batch.image, batch.onehot)
    parts = {"d/adversarial": losses.patch_loss_d(out_real.scores, out_fake.scores)}
    parts["d/total"] = parts["d/adversarial"]
    return parts


def training_steps(cfg: Config):
    """(G step, D step) for the discriminator this run trains against."""
    if cfg.model.d_arch == "multiscale-patch":
        return patchgan_generator_step, patchgan_discriminator_step
    return generator_step, discriminator_step


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
    stopped: str | None = None  # why the run stopped before train.steps ("SIGTERM", ...)


def train(
    cfg: Config,
    run_dir: str | Path,
    *,
    device: str = "auto",
    resume: bool = False,
    progress: bool = True,
    world: distributed.World | None = None,
    stop: resilience.GracefulStop | None = None,
) -> TrainResult:
    """`world`: this process's rank and device under torchrun (default: one process on `device`).
    `stop`: installed signal handlers (the CLI's); without one the run stops only on bad data."""
    from tqdm import tqdm

    run_dir = Path(run_dir)
    world = world or distributed.World.single(resolve_device(device))
    dev = world.device
    stop = stop or resilience.GracefulStop()
    t = cfg.train

    # ---- build -------------------------------------------------------------------------
    train_set, val_set = build_data(cfg)
    info: DatasetInfo = train_set.info
    n_cls = info.num_classes
    torch.manual_seed(t.seed)
    # D folds its resampling into its convolutions (same function: tests/test_speed.py)
    G, D = build_models_from_config(cfg.model, n_cls, fused_resampling=True)
    G, D = G.to(dev), D.to(dev)
    G_ema = make_ema(G)
    # speed options (channels_last, compile; same results: tests/test_speed.py)
    G, D = speed.prepare_models(G, D, t, dev, ema=G_ema)
    g_step, d_step = training_steps(cfg)
    step_g = speed.with_autocast(g_step, t, dev)  # bf16 forwards on CUDA if asked
    step_d = speed.with_autocast(d_step, t, dev)
    G, D = distributed.prepare_models(G, D, world, t.sync_batchnorm)  # after the EMA copy: it stays plain
    opt_g = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=(float(t.beta1), float(t.beta2)))
    opt_d = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=(float(t.beta1), float(t.beta2)))
    start_step, elapsed_before = 0, 0.0

    # ---- resume ------------------------------------------------------------------------
    if resume and list_checkpoints(run_dir):
        ck = load_checkpoint(run_dir, map_location=dev)
        saved = Config.from_json(ck["config"])
        if saved.model != cfg.model or saved.data.dataset != cfg.data.dataset:
            raise CheckpointError(
                f"{ck['path']}: was trained with a different model or dataset than the one asked for now"
            )
        preflight.check_resume_classes(ck, info)
        G.load_state_dict(ck["generator"])
        D.load_state_dict(ck["discriminator"])
        G_ema.load_state_dict(ck["generator_ema"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        set_rng_state(ck["rng"])
        start_step, elapsed_before = int(ck["step"]), float(ck.get("seconds", 0.0))
    # evaluation every eval_every steps on rank 0, keeping the best checkpoint (best.pt);
    # built before anything is written, so that missing networks refuse the run up front
    evaluator = None
    if t.eval_every and world.is_main:
        from dpgan.evaluate.training_eval import TrainingEvaluator

        evaluator = TrainingEvaluator(cfg, val_set, info, dev, run_dir=run_dir, seed=t.seed)

    # start-up checks on every rank (writable, shared, room for checkpoints), one message if any fails
    preflight.preflight(run_dir, world, preflight.estimate_checkpoint_bytes(run_dir, [G, D, G_ema], [G, D]))
    if world.is_main:
        preflight.write_text_atomic(run_dir / "config.json", cfg.to_json())
        preflight.write_text_atomic(run_dir / "dataset.json", info.to_json())

    def make_loader(first_step: int) -> torch.utils.data.DataLoader:
        # this rank's grad_accum micro-batches of every step from first_step (a roll-back restarts it)
        sampler = StepBatchSampler(
            len(train_set), t.batch_size * t.grad_accum, seed=t.seed, start_step=first_step, end_step=t.steps,
            rank=world.rank, world_size=world.size, keyed=True,
        )
        return torch.utils.data.DataLoader(
            train_set,
            batch_sampler=sampler,
            num_workers=cfg.data.num_workers,
            pin_memory=dev.type == "cuda",
            persistent_workers=False,
            # worker seeds come from this generator, not the global RNG, so that creating the
            # loader on resume does not shift the noise stream of the steps that follow
            generator=torch.Generator().manual_seed(t.seed * 1_000_003 + first_step),
            worker_init_fn=resilience.ignore_stop_signals,  # the main process decides when to stop
        )

    loader = resilience.StepLoader(make_loader, start_step, t.steps)
    val_fixed = _fixed_examples(val_set, 8)
    writer = _summary_writer(run_dir / "tb") if world.is_main else None  # rank 0 logs, samples, saves

    ema_calibrated = False  # G_ema's BN statistics belong to its current weights

    def use_ema() -> None:
        # BN statistics of the averaged weights, from training batches (no labels leak: G only).
        # The noise comes from its own seeded generator: drawn from the global RNG it would depend
        # on whatever ran before (an evaluation's data loader draws a seed), and a resumed run's
        # EMA statistics would differ from those of a run that never stopped. The result depends
        # on G_ema's weights only: a sample, checkpoint and evaluation at one step share it.
        nonlocal ema_calibrated
        if ema_calibrated:
            return
        noise = torch.Generator().manual_seed(t.seed)

        def forward(g: nn.Module, raw: dict) -> Tensor:
            label = raw["label"].to(dev)
            z = torch.randn(label.shape[0], g.z_dim, generator=noise).to(dev) if g.z_dim else None
            return g(one_hot(label, n_cls), z)

        recalibrate_batchnorm(G_ema, _cycle_batches(train_set, t.batch_size, t.ema_bn_batches, t.seed), forward)
        ema_calibrated = True

    def checkpoint_payload() -> dict:
        return {
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

    def save(step: int) -> None:
        use_ema()
        preflight.save_checkpoint_or_explain(run_dir, step, checkpoint_payload(), keep=t.keep_checkpoints)

    def evaluate(step: int) -> None:
        from dpgan.evaluate.training_eval import save_best_checkpoint

        use_ema()
        # the evaluation's data loader draws from the global RNG: keep training's stream as it
        # would be without evaluations (and as a resumed run, restored before them, has it)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            metrics = evaluator(G_ema, step)
        if writer is not None:
            for k, v in metrics.items():
                writer.add_scalar(f"eval/{k}", v, step)
        bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())))
        if evaluator.update_best(metrics, step):
            save_best_checkpoint(run_dir, step, checkpoint_payload())

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
    bar = tqdm(total=t.steps, initial=start_step, disable=not (progress and world.is_main), desc="train",
               unit="step", dynamic_ncols=True)
    guard = resilience.DivergenceGuard(
        policy=t.nonfinite_policy, max_nonfinite=t.max_nonfinite, window=t.nonfinite_window,
        lr_factor=t.rollback_lr_factor, max_rollbacks=t.max_rollbacks, run_dir=run_dir, world=world,
        restore_targets={"generator": G, "discriminator": D, "generator_ema": G_ema,
                         "opt_g": opt_g, "opt_d": opt_d},
        optimizers=[opt_g, opt_d], loader=loader, log=resilience.EventLog(run_dir, world),
    )
    n_global = t.batch_size * t.grad_accum * world.size  # images per step over all ranks
    z_dim = cfg.model.z_dim if cfg.model.use_3d_noise else None
    G.train()
    D.train()
    for raw in loader:
        if stop.agreed(world, raw):  # SIGTERM/SIGINT, or a data error, on any rank: all stop here
            break
        batch = _to_batch(raw, n_cls, dev)
        alpha = (
            global_batch.class_balance_weights(world, batch.label_map, n_cls, info.ignore_index)
            if cfg.loss.class_balancing
            else None
        )
        # z and LabelMix coins of the whole global batch; this rank's micro-batches take their rows
        noise = global_batch.StepNoise.draw(t.seed, step, n_global, z_dim=z_dim,
                                            labelmix_classes=n_cls if cfg.loss.labelmix else None)
        micro = global_batch.micro_batches(batch, world, t.grad_accum, noise)
        # G step (D frozen: its parameters need no gradient here); non-finite: skip the update
        D.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        g_parts = global_batch.accumulate(lambda mb: step_g(cfg, G, D, mb, alpha), micro, "g/total", (G, D))
        g_ok = guard.update_ok("G", world.sync_gradients(G.parameters(), g_parts["g/total"]), step + 1)
        if g_ok:
            opt_g.step()
        D.requires_grad_(True)
        # D step
        opt_d.zero_grad(set_to_none=True)
        d_parts = global_batch.accumulate(
            lambda mb: step_d(cfg, G, D, mb, alpha, n_cls), micro, "d/total", (G, D))
        d_ok = guard.update_ok("D", world.sync_gradients(D.parameters(), d_parts["d/total"]), step + 1)
        if d_ok:
            opt_d.step()
        # EMA
        ema_update(G_ema, G, ema_decay_at(step, t.ema_decay, t.ema_warmup))
        ema_calibrated = False
        step += 1
        bar.update(1)
        # divergence: repeated non-finite updates roll back to the last checkpoint (or stop)
        rolled_to = guard.after_step(step, g_ok and d_ok)
        if rolled_to is not None:
            step, sums, count = rolled_to, {}, 0
            bar.n = step
            continue

        # log: every log_every steps, losses averaged over ranks (skipped updates left out)
        if g_ok and d_ok:
            for k, v in {**g_parts, **d_parts}.items():
                sums[k] = sums.get(k, 0.0) + v.detach()
            count += 1
        if count and (step % t.log_every == 0 or step == t.steps):
            keys = sorted(sums)
            values = world.mean(torch.stack([sums[k] for k in keys]) / count).tolist()
            last = dict(zip(keys, values))
            sums, count = {}, 0
            if world.is_main:
                _log(run_dir, writer, step, last)
            bar.set_postfix({"G": f"{last['g/total']:.3f}", "D": f"{last['d/total']:.3f}"})
            if not all(map(_finite, values)):
                raise DPGANError(f"training diverged at step {step}: non-finite losses {last}")
        if step % t.sample_every == 0 and world.is_main:
            sample(step)
        if step % t.checkpoint_every == 0 and world.is_main:
            save(step)
        if evaluator is not None and step % t.eval_every == 0:
            evaluate(step)
    bar.close()

    # ---- final save ----------------------------------------------------------------------
    if world.is_main and (not list_checkpoints(run_dir) or _latest_step(run_dir) != step):
        save(step)
    if world.is_main and stop.reason is None and not (run_dir / "samples" / f"step_{step:08d}.png").exists():
        sample(step)
    if writer is not None:
        writer.close()
    world.barrier()  # every rank leaves after rank 0's checkpoint is on disk
    stop.raise_failure(step)  # a data error stopped the run: now that it is saved, say which file
    return TrainResult(run_dir, step, elapsed_before + time.perf_counter() - t0, last, stopped=stop.reason)


# ---- helpers ---------------------------------------------------------------------------------

def ema_decay_at(step: int, decay: float, warmup: bool) -> float:
    """min(decay, (1 + step) / (10 + step)) with warm-up: early on the average forgets the
    random initial weights quickly (0.999 would still hold 82% of them after 200 steps); from
    step ~9k (decay 0.999) or ~90k (0.9999) on it is the configured decay."""
    return min(decay, (1.0 + step) / (10.0 + step)) if warmup else decay


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
        for k, v in values.items():  # losses under loss/, diagnostics (train/d_real_ce, ...) as named
            writer.add_scalar(k if k.startswith("train/") else f"loss/{k}", v, step)
    with open(run_dir / "losses.jsonl", "a") as f:
        f.write(json.dumps({"step": step, **values}) + "\n")
