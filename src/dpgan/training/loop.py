"""Training DP-GAN: one function, read top to bottom.

    build -> resume -> loop { G step, D step (with LabelMix), EMA, log, sample, save } -> final save

The G step comes first, as in the published code. Device is decided by the caller. The losses
of a step are in steps.py, the training state in state.py, what a run writes in outputs.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from dpgan.checkpoint import list_checkpoints, load_latest_checkpoint, next_save_step, set_rng_state
from dpgan.config import Config
from dpgan.devices import resolve_device
from dpgan.errors import CheckpointError, DPGANError
from dpgan.files import write_text_atomic
from dpgan.models import build_models_from_config
from dpgan.tensors import one_hot
from dpgan.training import distributed, global_batch, preflight, resilience, runlock, speed
from dpgan.training.ema import ema_update, make_ema
from dpgan.training.outputs import EMAStatistics, LossAverage, RunOutputs, drop_log_lines_after
from dpgan.training.sampling import StepBatchSampler
from dpgan.training.state import TrainingState
from dpgan.training.steps import Batch, Objective, training_steps


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    seconds: float
    last_losses: dict[str, float]
    stopped: str | None = None  # why the run stopped before train.steps ("SIGTERM", ...)
    start_step: int = 0  # the step it started (or resumed) from


def train(
    cfg: Config,
    run_dir: str | Path,
    *,
    device: str = "auto",
    resume: bool = False,
    progress: bool = True,
    world: distributed.World | None = None,
    stop: resilience.GracefulStop | None = None,
    announce: Callable[[str], None] | None = None,
) -> TrainResult:
    """`world`: this process's rank and device under torchrun (default: one process on `device`).
    `stop`: installed signal handlers (the CLI's); without one the run stops only on bad data.
    `announce`: called once on rank 0 with a line saying what will be trained and when the first
    sample and checkpoint come (the CLI prints it)."""
    run_dir = Path(run_dir)
    world = world or distributed.World.single(resolve_device(device))
    # one trainer per run folder (rank 0 holds RUN/.lock; a second trainer is refused before it
    # reads or writes anything in the folder; the kernel releases the lock however this exits)
    with runlock.hold(run_dir, world):
        return _train(cfg, run_dir, resume=resume, progress=progress, world=world, stop=stop, announce=announce)


def _train(cfg: Config, run_dir: Path, *, resume: bool, progress: bool, world: distributed.World,
           stop: resilience.GracefulStop | None, announce: Callable[[str], None] | None) -> TrainResult:
    from tqdm import tqdm

    dev = world.device
    stop = stop or resilience.GracefulStop()
    t = cfg.train

    # ---- build -------------------------------------------------------------------------
    train_set, val_set = build_data(cfg)
    info = train_set.info
    n_cls = info.num_classes
    torch.manual_seed(t.seed)
    # D folds its resampling into its convolutions (same function: tests/test_speed.py)
    G, D = build_models_from_config(cfg.model, n_cls, fused_resampling=True)
    G, D = G.to(dev), D.to(dev)
    G_ema = make_ema(G)
    # speed options (channels_last, compile; same results: tests/test_speed.py)
    G, D = speed.prepare_models(G, D, t, dev, ema=G_ema)
    objective = Objective.from_config(cfg, ignore_index=info.ignore_index)
    g_step, d_step = training_steps(cfg.model.d_arch)
    step_g = speed.with_autocast(g_step, t, dev)  # bf16 forwards on CUDA if asked
    step_d = speed.with_autocast(d_step, t, dev)
    G, D = distributed.prepare_models(G, D, world, t.sync_batchnorm)  # after the EMA copy: it stays plain
    betas = (float(t.beta1), float(t.beta2))
    state = TrainingState(G, D, G_ema, opt_g=torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=betas),
                          opt_d=torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=betas))
    seconds_before = 0.0

    # ---- resume ------------------------------------------------------------------------
    if resume and list_checkpoints(run_dir):
        # the newest checkpoint that loads: an empty or truncated latest one is skipped, saying so
        ck = load_latest_checkpoint(run_dir, map_location=dev, report=print if world.is_main else None)
        saved = Config.from_json(ck["config"])
        # the initialisation scheme is spent once the weights are loaded: a run written before
        # model.init existed (read back as "sn-default") resumes under a preset that says "published"
        if replace(saved.model, init=cfg.model.init) != cfg.model or saved.data.dataset != cfg.data.dataset:
            raise CheckpointError(
                f"{ck['path']}: was trained with a different model or dataset than the one asked for now"
            )
        preflight.check_resume_classes(ck, info)
        state.load_state_dict(ck)
        set_rng_state(ck["rng"])
        seconds_before = float(ck.get("seconds", 0.0))
    start_step = state.step
    # evaluation every eval_every steps on rank 0, keeping the best checkpoint (best.pt);
    # built before anything is written, so that missing networks refuse the run up front
    evaluator = None
    if t.eval_every and world.is_main:
        from dpgan.evaluate.training_eval import TrainingEvaluator

        evaluator = TrainingEvaluator(cfg, val_set, info, dev, run_dir=run_dir, seed=t.seed)

    # start-up checks on every rank (writable, shared, room for checkpoints), one message if any fails
    preflight.preflight(run_dir, world, preflight.estimate_checkpoint_bytes(run_dir, [G, D, G_ema], [G, D]))
    if world.is_main:
        write_text_atomic(run_dir / "config.json", cfg.to_json())
        write_text_atomic(run_dir / "dataset.json", info.to_json())
        drop_log_lines_after(run_dir / "losses.jsonl", start_step)  # the steps trained again log again

    loader = resilience.StepLoader(lambda first: make_loader(cfg, train_set, world, first), start_step, t.steps)
    ema_stats = EMAStatistics(G_ema, train_set, t.batch_size, t.ema_bn_batches, t.seed, dev)
    outputs = RunOutputs(cfg, info, run_dir, val_set, ema_stats, is_main=world.is_main, evaluator=evaluator,
                         seconds_before=seconds_before)  # rank 0 logs, samples, saves

    if announce is not None and world.is_main:
        announce(plan_line(cfg, len(train_set), start_step, world.size))

    # ---- loop --------------------------------------------------------------------------
    average = LossAverage()
    last: dict[str, float] = {}
    bar = tqdm(total=t.steps, initial=start_step, disable=not (progress and world.is_main), desc="train",
               unit="step", dynamic_ncols=True)
    guard = resilience.DivergenceGuard(
        policy=t.nonfinite_policy, max_nonfinite=t.max_nonfinite, window=t.nonfinite_window,
        lr_factor=t.rollback_lr_factor, max_rollbacks=t.max_rollbacks, run_dir=run_dir, world=world,
        state=state, optimizers=[state.opt_g, state.opt_d], loader=loader,
        log=resilience.EventLog(run_dir, world),
    )
    n_global = t.batch_size * t.grad_accum * world.size  # images per step over all ranks
    z_dim = cfg.model.z_dim if cfg.model.use_3d_noise else None
    G.train()
    D.train()
    for raw in loader:
        if stop.agreed(world, raw):  # SIGTERM/SIGINT, or a data error, on any rank: all stop here
            break
        batch = to_batch(raw, n_cls, dev)
        alpha = (
            global_batch.class_balance_weights(world, batch.label_map, n_cls, info.ignore_index)
            if cfg.loss.class_balancing
            else None
        )
        # z and LabelMix coins of the whole global batch; this rank's micro-batches take their rows
        noise = global_batch.StepNoise.draw(t.seed, state.step, n_global, z_dim=z_dim,
                                            labelmix_classes=n_cls if cfg.loss.labelmix else None)
        micro = global_batch.micro_batches(batch, world, t.grad_accum, noise)
        # G step (D frozen: its parameters need no gradient here); non-finite: skip the update
        D.requires_grad_(False)
        state.opt_g.zero_grad(set_to_none=True)
        g_parts = global_batch.accumulate(lambda mb: step_g(objective, G, D, mb, alpha), micro, "g/total", (G, D))
        g_ok = guard.update_ok("G", world.sync_gradients(G.parameters(), g_parts["g/total"]), state.step + 1)
        if g_ok:
            state.opt_g.step()
        D.requires_grad_(True)
        # D step
        state.opt_d.zero_grad(set_to_none=True)
        d_parts = global_batch.accumulate(lambda mb: step_d(objective, G, D, mb, alpha), micro, "d/total", (G, D))
        d_ok = guard.update_ok("D", world.sync_gradients(D.parameters(), d_parts["d/total"]), state.step + 1)
        if d_ok:
            state.opt_d.step()
        # EMA
        ema_update(G_ema, G, ema_decay_at(state.step, t.ema_decay, t.ema_warmup))
        ema_stats.weights_changed()
        state.step += 1
        bar.update(1)
        # divergence: repeated non-finite updates roll back to the last checkpoint (or stop)
        if guard.after_step(state.step, g_ok and d_ok) is not None:  # the state is the checkpoint's now
            average.clear()
            bar.n = state.step
            continue
        step = state.step

        # log: every log_every steps, losses averaged over ranks (skipped updates left out)
        if g_ok and d_ok:
            average.add({**g_parts, **d_parts})
        if average.count and (step % t.log_every == 0 or step == t.steps):
            last = average.mean_over(world)
            if world.is_main:
                outputs.log(step, last)
            bar.set_postfix({"G": f"{last['g/total']:.3f}", "D": f"{last['d/total']:.3f}"})
            if not all(map(_finite, last.values())):
                raise DPGANError(f"training diverged at step {step}: non-finite losses {last}")
        # sample, save, evaluate
        if step % t.sample_every == 0 and world.is_main:
            outputs.sample(state)
        if step % t.checkpoint_every == 0 and world.is_main:
            outputs.save(state)
        if evaluator is not None and step % t.eval_every == 0:
            outputs.evaluate(state, bar)
    bar.close()

    # ---- final save ----------------------------------------------------------------------
    step = state.step
    if world.is_main and (not list_checkpoints(run_dir) or _latest_step(run_dir) != step):
        outputs.save(state)
    if world.is_main and stop.reason is None and not (run_dir / "samples" / f"step_{step:08d}.png").exists():
        outputs.sample(state)
    outputs.close()
    world.barrier()  # every rank leaves after rank 0's checkpoint is on disk
    stop.raise_failure(step)  # a data error stopped the run: now that it is saved, say which file
    return TrainResult(run_dir, step, outputs.seconds(), last, stopped=stop.reason, start_step=start_step)


# ---- helpers ---------------------------------------------------------------------------------

def plan_line(cfg: Config, num_train: int, start_step: int, processes: int = 1) -> str:
    """What this launch trains, and the steps of its first sample and first checkpoint."""
    t, d = cfg.train, cfg.data
    batch = t.batch_size * t.grad_accum * processes
    first_sample = next_save_step(t.sample_every, start_step, t.steps)
    first_ckpt = next_save_step(t.checkpoint_every, start_step, t.steps)
    span = f"steps {start_step + 1}-{t.steps}" if start_step else f"{t.steps} steps"
    return (f"  data: {d.dataset}, {num_train} training images at {d.height}x{d.width}; {span} of batch {batch}; "
            f"first sample at step {first_sample}, first checkpoint at step {first_ckpt} "
            f"(then every {t.checkpoint_every})")



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


def make_loader(cfg: Config, train_set, world: distributed.World, first_step: int) -> torch.utils.data.DataLoader:
    """This rank's grad_accum micro-batches of every step from first_step (a roll-back restarts it)."""
    t = cfg.train
    sampler = StepBatchSampler(
        len(train_set), t.batch_size * t.grad_accum, seed=t.seed, start_step=first_step, end_step=t.steps,
        rank=world.rank, world_size=world.size, keyed=True,
    )
    return torch.utils.data.DataLoader(
        train_set,
        batch_sampler=sampler,
        num_workers=cfg.data.num_workers,
        pin_memory=world.device.type == "cuda",
        persistent_workers=False,
        # worker seeds come from this generator, not the global RNG, so that creating the
        # loader on resume does not shift the noise stream of the steps that follow
        generator=torch.Generator().manual_seed(t.seed * 1_000_003 + first_step),
        worker_init_fn=resilience.ignore_stop_signals,  # the main process decides when to stop
    )


def to_batch(raw: dict, num_classes: int, device: torch.device) -> Batch:
    image = raw["image"].to(device, non_blocking=True)
    label_map = raw["label"].to(device, non_blocking=True)
    return Batch(image, label_map, one_hot(label_map, num_classes))


def ema_decay_at(step: int, decay: float, warmup: bool) -> float:
    """min(decay, (1 + step) / (10 + step)) with warm-up: early on the average forgets the
    random initial weights quickly (0.999 would still hold 82% of them after 200 steps); from
    step ~9k (decay 0.999) or ~90k (0.9999) on it is the configured decay."""
    return min(decay, (1.0 + step) / (10.0 + step)) if warmup else decay


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def _latest_step(run_dir: Path) -> int:
    return int(list_checkpoints(run_dir)[-1].stem.split("_")[1])
