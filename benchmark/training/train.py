"""`python -m benchmark train bc`: behaviour cloning of the teacher's labels from a dataset.

Reads top to bottom: split episodes into train/validation, build the model, then for each epoch
draw batches (augmented in a background thread while the network trains), step the optimiser,
measure the validation loss, and checkpoint. Every epoch's batches derive from (seed, epoch, batch)
alone, so an interrupted run resumed from its last checkpoint ends with the same weights.

DAgger, DART and HG-DAgger (benchmark/training/imitation.py) call `fit` on their aggregated datasets.
"""

from __future__ import annotations

import json
import math
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmark.common.config import require
from benchmark.common.files import to_jsonable, write_json_atomic
from benchmark.data.dataset import Dataset
from benchmark.data.hindsight import dataset_commands
from models import ModelConfig, build_model, load_model, save_model
from models.config import Head

from . import precision as P
from .augment import AugmentConfig, SampleMaker, black_out, validation_overlay


@dataclass(frozen=True)
class TrainConfig:
    """Behaviour cloning: fit a steering network to the teacher's labels in a recorded dataset."""

    data: Path = Path("data/teacher")
    """Dataset directory (from `record`, `drive`, `import-udacity` or an imitation run)."""
    out: Path = Path("runs/bc")
    """Run directory: checkpoint/, model/ (best validation loss), train_log.csv."""
    arch: Literal["pilotnet", "pilotnet-gru", "pilotnet-stack", "pilotnet-command", "pilotnet-branched",
                  "pilotnet-options", "resnet18"] = "pilotnet"
    """Network: PilotNet, PilotNet features into a GRU, PilotNet over a stack of past frames (models/frame_stack.py:
    5 frames 5 steps apart, a 2 s window), PilotNet conditioned on the command (its input, or a branch per
    command: models/conditional.py), PilotNet with latent options trained by their evidence lower bound on segments
    of seq_len steps (models/options.py), or ResNet-18 from scratch."""
    command_source: Literal["route", "hindsight"] = "route"
    """Commands a conditional model trains with: the route's, as recorded, or relabelled in hindsight from the
    recorded poses alone (benchmark/data/hindsight.py: the branch driven within the next 40 m)."""
    head: Head = "point"
    """Output head: curvature with MSE, mean and log-std with Gaussian NLL, a mixture of Gaussians with its NLL, or
    curvature bins with cross-entropy (mixture: the most probable component's mean drives; categorical: the most
    probable bin's centre)."""
    mixture_components: int = 2
    """Gaussian components of the mixture head."""
    categorical_bins: int = 61
    """Curvature bins of the categorical head, over +-0.18 1/m."""
    log_std_max: float = 0.0
    """Upper clamp of the log-std [log of 1/m] of the gaussian head and of each mixture component (0: a std of
    1 1/m, no real bound). A bound such as -3.5 (0.03 1/m) keeps a mixture from covering two modes with one
    wide component."""
    epochs: int = 8
    """Passes over the training split."""
    max_updates: int = 0
    """Stop after this many optimiser steps in total (0: no limit)."""
    batch_size: int = 64
    """Samples per optimiser step."""
    lr: float = 1e-3
    """Adam learning rate (linear warm-up, then cosine-decayed to 10% over the run)."""
    warmup_updates: int = 100
    """Updates of linear learning-rate warm-up (the first Adam steps from a fresh init overshoot)."""
    weight_decay: float = 1e-5
    """Adam weight decay."""
    val_fraction: float = 0.1
    """Fraction of episodes held out for validation."""
    max_val_samples: int = 4000
    """Cap on validation samples per evaluation."""
    seq_len: int = 8
    """Sequence length for recurrent models, and segment length of pilotnet-options."""
    options: int = 4
    """Latent options of pilotnet-options."""
    kl_warmup_updates: int = 500
    """pilotnet-options: updates over which the weight of the KL term of its ELBO rises linearly from 0 to 1 (the
    options specialise before the high level's prior pulls the posterior in)."""
    seed: int = 0
    """Seed of the initial weights, the split and every batch."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Shifted-camera and photometric augmentation."""
    init: Path | None = None
    """Start from this saved model directory instead of random weights (warm start)."""
    device: str = "auto"
    """'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'."""
    precision: Literal["auto", "bf16", "float32"] = "auto"
    """Forward-pass precision: bf16 autocast (weights, optimiser state and loss stay float32), float32, or auto:
    bf16 on a CUDA GPU with bf16 or a CPU with AVX512-BF16/AMX, else float32 (emulated bf16 is slow)."""
    threads: int = 0
    """CPU threads for torch (0: all cores)."""
    resume: bool = True
    """Continue from out/checkpoint when it exists."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        require(self.epochs >= 1 and self.batch_size >= 1 and self.lr > 0, "epochs, batch_size and lr must be positive")
        require(0.0 <= self.val_fraction < 1.0, f"val_fraction must be in [0, 1), got {self.val_fraction}")
        require(self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {self.device!r}")
        self.model_config()  # a bad head size fails here, not after the dataset is opened

    def model_config(self) -> ModelConfig:
        """The ModelConfig of a fresh model (unused when `init` warm-starts)."""
        return ModelConfig(arch=self.arch, head=self.head, mixture_components=self.mixture_components,
                           categorical_bins=self.categorical_bins, log_std_max=self.log_std_max, options=self.options)


@dataclass
class TrainResult:
    model: object
    out: Path
    best_val_loss: float
    log: pd.DataFrame
    updates: int
    samples_per_s: float
    precision: str
    """The precision the run trained in: 'bf16' or 'float32'."""


def _torch(config: TrainConfig):
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    want_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but CUDA is not available")
    return torch, torch.device("cuda" if want_cuda else "cpu")


def split_episodes(dataset: Dataset, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Global step numbers of the training and validation episodes (split by whole episodes)."""
    episodes = dataset.index["episode"].to_numpy()
    unique = np.unique(episodes)
    rng = np.random.default_rng([seed, 7])
    n_val = int(round(val_fraction * len(unique)))
    if val_fraction > 0 and len(unique) > 1:
        n_val = max(n_val, 1)
    val_eps = rng.choice(unique, size=n_val, replace=False) if n_val else np.array([], episodes.dtype)
    is_val = np.isin(episodes, val_eps)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _sequences(dataset: Dataset, steps: np.ndarray, length: int) -> np.ndarray:
    """(n, length) global step numbers of runs of `length` consecutive steps of one episode, all in
    `steps` (recordings interleave episodes, so consecutive steps are not consecutive rows)."""
    idx = dataset.index
    order = np.lexsort((idx["step"].to_numpy(), idx["episode"].to_numpy()))
    ep, st = idx["episode"].to_numpy()[order], idx["step"].to_numpy()[order]
    allowed = np.zeros(len(idx), bool)
    allowed[steps] = True
    ok = allowed[order].copy()
    n = len(order)
    for k in range(1, length):
        nxt = np.zeros(n, bool)
        nxt[:-k] = allowed[order][k:] & (ep[k:] == ep[:-k]) & (st[k:] == st[:-k] + k)
        ok &= nxt
    starts = np.flatnonzero(ok)
    return order[starts[:, None] + np.arange(length)[None, :]]


class Prefetcher:
    """Makes batches in a background thread (numpy, OpenCV and the memory map release the GIL)."""

    def __init__(self, make, jobs: list, depth: int = 3):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stop = threading.Event()

        def work():
            try:
                for job in jobs:
                    if self._stop.is_set():
                        return
                    self._queue.put(make(job))
            except BaseException as exc:  # surfaced in the consumer
                self._error = exc
            finally:
                self._queue.put(None)

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()

    def __iter__(self):
        while (item := self._queue.get()) is not None:
            yield item
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass


# --- checkpoints (safetensors + JSON: nothing is ever pickled) ---------------------------------


class Checkpoint:
    """A training run's resumable state in `directory`: the model, the optimiser's tensors, and a
    JSON file with the counters, the log, the optimiser's parameter groups and the scheduler.
    A save goes to a sibling directory that then replaces the old one, so a kill keeps either."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def exists(self) -> bool:
        return (self.directory / "state.json").exists()

    def save(self, model, optimizer, scheduler, state: dict) -> None:
        from safetensors.torch import save_file

        tmp = self.directory.with_name(self.directory.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        save_model(model, tmp / "model")
        tensors, groups = {}, []
        opt = optimizer.state_dict()
        for pid, pstate in opt["state"].items():
            for k, v in pstate.items():
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
        for g in opt["param_groups"]:
            groups.append({k: v for k, v in g.items()})
        if tensors:
            save_file(tensors, str(tmp / "optimizer.safetensors"))
        write_json_atomic(tmp / "state.json", {**state, "param_groups": groups, "scheduler": scheduler.state_dict()})
        if self.directory.exists():
            shutil.rmtree(self.directory)
        tmp.rename(self.directory)

    def load(self, model, optimizer, scheduler) -> dict:
        """Restore model, optimiser and scheduler in place; returns the counters and log."""
        from safetensors.torch import load_file

        d = self.directory
        model.load_state_dict(load_model(d / "model").state_dict())
        state = json.loads((d / "state.json").read_text())
        tensors = load_file(str(d / "optimizer.safetensors")) if (d / "optimizer.safetensors").exists() else {}
        opt_state: dict = {}
        for key, value in tensors.items():
            pid, name = key.split(".", 1)
            opt_state.setdefault(int(pid), {})[name] = value
        optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
        scheduler.load_state_dict(state.pop("scheduler"))
        return state


# --- the batch plan ----------------------------------------------------------------------------


class BatchPlan:
    """Which samples each optimiser step sees, derived from (seed, epoch, batch) alone.

    Feed-forward models draw single steps (curvature-balanced when asked); recurrent ones draw runs
    of `seq_len` consecutive steps of one episode, seen by one camera and without synthetic views
    (a synthetic shift would jump from frame to frame). Batches of sequences hold
    batch_size // seq_len sequences, so both see about batch_size frames per step.
    """

    def __init__(self, dataset: Dataset, train_steps: np.ndarray, config: TrainConfig, recurrent: bool,
                 commands: np.ndarray | None = None):
        self.config, self.recurrent, self.train_steps = config, recurrent, train_steps
        self.commands = commands
        """Per dataset row, the command of a conditional model (None: the model takes none)."""
        augment = replace(config.augment, synthetic_prob=0.0) if recurrent else config.augment
        self.maker = SampleMaker(dataset, augment, seed=config.seed)
        if recurrent:
            self.sequences = _sequences(dataset, train_steps, config.seq_len)
            if len(self.sequences) == 0:
                raise ValueError(f"no training sequences of {config.seq_len} steps")
            self.pool = np.arange(len(self.sequences))
            self.per_epoch = max(len(self.pool) // config.seq_len, 1)
            self.batch_size = max(config.batch_size // config.seq_len, 1)
        else:
            self.pool, self.per_epoch, self.batch_size = train_steps, len(train_steps), config.batch_size

    def epoch(self, epoch: int) -> list[tuple[int, int, np.ndarray]]:
        """The epoch's batches as (epoch, batch number, sample ids) jobs, in order."""
        rng = np.random.default_rng([self.config.seed, epoch, 1])
        weights = None if self.recurrent else self.maker.weights(self.pool)
        if weights is not None:
            order = rng.choice(self.pool, size=self.per_epoch, replace=True, p=weights)
        else:
            order = rng.permutation(self.pool)[: self.per_epoch]
        return [(epoch, b, order[i: i + self.batch_size]) for b, i in enumerate(range(0, len(order), self.batch_size))]

    def batch(self, job: tuple[int, int, np.ndarray]) -> tuple[np.ndarray, ...]:
        """Frames and labels of one job: (B, H, W, 3) and (B,), or (B, T, H, W, 3) and (B, T); a conditional
        model's batch adds the commands, (B,)."""
        epoch, b, ids = job
        rng = np.random.default_rng([self.config.seed, epoch, b])
        if not self.recurrent:
            frames, labels = self.maker.batch(ids, rng)
            black_out(frames, self.config.augment, rng)
            return (frames, labels) if self.commands is None else (frames, labels, self.commands[ids])
        T = self.config.seq_len
        flat = self.sequences[ids].reshape(-1)
        cams = rng.integers(0, 3, len(ids)) if self.config.augment.side_cameras else np.ones(len(ids), int)
        frames, labels = self.maker.batch(flat, rng, np.repeat(cams, T))
        frames = frames.reshape(len(ids), T, *frames.shape[1:])
        black_out(frames, self.config.augment, rng)
        return frames, labels.reshape(len(ids), T)


def batch_loss(model, x, y, precision: str = P.FLOAT32, commands=None, kl_weight: float = 1.0):
    """The training loss of a batch: frames (B, ...) against labels (B, 1), or sequences (B, T, ...)
    against (B, T, 1) through the recurrent model's whole sequence, or a model of options' negative ELBO
    per step of segments (B, T, ...), its KL weighted by `kl_weight`; a conditional model takes the batch's
    commands (B,). Under bf16 only the forward pass is autocast; the loss is reduced in float32 on the
    head output cast back."""
    if getattr(model, "segments", False):
        with P.autocast(precision, x.device):
            return model.elbo(x, y.reshape(x.shape[0], x.shape[1]), kl_weight)[0]
    with P.autocast(precision, x.device):
        if commands is not None:
            out = model(x, commands)
        else:
            out = model.forward_sequence(x)[0] if x.dim() == 5 else model(x)
    out = out.float()
    if x.dim() == 5:
        return model.loss(out.reshape(-1, out.shape[-1]), y.reshape(-1, 1))
    return model.loss(out, y)


def train_step(model, optimizer, scheduler, x, y, precision: str = P.FLOAT32, commands=None,
               kl_weight: float = 1.0) -> float:
    """One optimiser step on a batch; returns its loss."""
    loss = batch_loss(model, x, y, precision, commands, kl_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


# --- training -----------------------------------------------------------------------------------


def _initial_model(config: TrainConfig, init_model):
    if init_model is not None:
        return init_model
    if config.init is not None:
        return load_model(config.init)
    return build_model(config.model_config())


def _schedule(torch, optimizer, config: TrainConfig, total_updates: int):
    """Linear warm-up, then cosine decay to 10% of the learning rate over the run."""
    def factor(u: int) -> float:
        warm = min(1.0, (u + 1) / max(config.warmup_updates, 1))
        return warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(u / max(total_updates, 1), 1.0))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(config: TrainConfig, dataset: Dataset | None = None, init_model=None) -> TrainResult:
    """Train on `dataset` (default: open config.data); `init_model` warm-starts (DAgger)."""
    torch, device = _torch(config)
    precision = P.resolve(config.precision, device)
    dataset = dataset or Dataset.open(config.data)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    train_steps, val_steps = split_episodes(dataset, config.val_fraction, config.seed)
    if len(train_steps) == 0:
        raise ValueError(f"{config.data}: no training steps after the validation split")

    torch.manual_seed(config.seed)
    model = _initial_model(config, init_model).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    conditional = bool(getattr(model, "conditional", False))
    commands = dataset_commands(dataset.index, config.command_source) if conditional else None
    sequences = bool(getattr(model, "recurrent", False) or getattr(model, "segments", False))
    plan = BatchPlan(dataset, train_steps, config, sequences, commands)
    total_updates = math.ceil(len(train_steps) / config.batch_size) * config.epochs
    if config.max_updates:
        total_updates = min(total_updates, config.max_updates)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _schedule(torch, optimizer, config, total_updates)
    checkpoint = Checkpoint(out / "checkpoint")
    state = {"epoch": 0, "updates": 0, "best_val_loss": math.inf, "log": [], "precision": precision}
    if config.resume and checkpoint.exists():
        state = checkpoint.load(model, optimizer, scheduler)
        # Checkpoints from before the precision switch were float32. A run resumed in another
        # precision would end with weights neither precision reproduces, so it is refused.
        trained = state.setdefault("precision", P.FLOAT32)
        if trained != precision:
            raise ValueError(f"{checkpoint.directory} was trained in {trained}, this run would continue in "
                             f"{precision}: pass --precision {trained}, or --no-resume to start afresh")
    # The resolved precision, not 'auto': the file says how the run was trained and reruns it so.
    write_json_atomic(out / "train_config.json", to_jsonable(replace(config, precision=precision)))

    def tensors(batch):
        frames, labels, *command = batch
        x = torch.from_numpy(frames).to(device, non_blocking=True)
        y = torch.from_numpy(labels).to(device, non_blocking=True).reshape(-1, 1)
        c = torch.from_numpy(command[0]).to(device) if command else None
        return x, y, c

    t_start = time.perf_counter()
    samples_seen = 0
    while state["epoch"] < config.epochs and state["updates"] < total_updates:
        epoch = state["epoch"]
        model.train()
        jobs = plan.epoch(epoch)[: max(total_updates - state["updates"], 0)]
        losses = []
        fetch = Prefetcher(plan.batch, jobs)
        bar = tqdm(total=len(jobs), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress,
                   leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()
        try:
            for batch in fetch:
                x, y, c = tensors(batch)
                kl_weight = min(1.0, state["updates"] / config.kl_warmup_updates) if config.kl_warmup_updates else 1.0
                losses.append(train_step(model, optimizer, scheduler, x, y, precision, c, kl_weight))
                state["updates"] += 1
                samples_seen += y.numel()
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4g}")
        finally:
            fetch.close()
            bar.close()
        seconds = time.perf_counter() - t0
        val_loss = evaluate_loss(model, dataset, val_steps, config, torch, device, commands)
        state["epoch"] = epoch + 1
        row = {"epoch": epoch + 1, "updates": state["updates"], "train_loss": float(np.mean(losses)) if losses else math.nan,
               "val_loss": val_loss, "seconds": seconds, "samples_per_s": len(losses) * config.batch_size / max(seconds, 1e-9),
               "precision": precision}
        state["log"].append(row)
        if val_loss < state["best_val_loss"] or not math.isfinite(state["best_val_loss"]):
            state["best_val_loss"] = val_loss
            save_model(model, out / "model")
        checkpoint.save(model, optimizer, scheduler, state)
        pd.DataFrame(state["log"]).to_csv(out / "train_log.csv", index=False)
        if config.progress:
            tqdm.write(f"epoch {epoch + 1}: train {row['train_loss']:.5g}  val {val_loss:.5g}  "
                       f"({row['samples_per_s']:.0f} samples/s)")
    if not (out / "model" / "config.json").exists():
        save_model(model, out / "model")
    best = load_model(out / "model").to(device)
    elapsed = time.perf_counter() - t_start
    return TrainResult(best, out, float(state["best_val_loss"]), pd.DataFrame(state["log"]), int(state["updates"]),
                       samples_seen / max(elapsed, 1e-9), precision)


def evaluate_loss(model, dataset: Dataset, steps: np.ndarray, config: TrainConfig, torch, device,
                  commands: np.ndarray | None = None) -> float:
    """Mean loss on the centre camera's clean labels (no augmentation); NaN without validation data. A
    conditional model takes `commands` (per dataset row; by default those of config.command_source).

    Always in float32, whatever the training precision: the saved weights are float32 and are
    evaluated, exported and deployed in float32, so bf16 and float32 runs compare on one footing."""
    return _evaluate(model, model.loss, dataset, steps, config, torch, device, commands)


def evaluate_nll(model, dataset: Dataset, steps: np.ndarray, config: TrainConfig, torch, device) -> float:
    """Mean NLL [nats] of the centre camera's clean labels under the model's predictive density [per 1/m]
    (models.heads.nll), on the same samples as `evaluate_loss`; NaN without data. Gaussian, mixture and
    categorical heads; the point head has no distribution (ValueError)."""
    if model.config.head == "point":
        raise ValueError("the point head predicts no distribution, so it has no held-out NLL")
    return _evaluate(model, model.nll, dataset, steps, config, torch, device, None)


def _evaluate(model, measure, dataset: Dataset, steps: np.ndarray, config: TrainConfig, torch, device,
              commands: np.ndarray | None) -> float:
    """The per-sample mean of `measure(out, labels)` over (at most max_val_samples of) `steps`."""
    if len(steps) == 0:
        return math.nan
    if getattr(model, "conditional", False) and commands is None:
        commands = dataset_commands(dataset.index, config.command_source)
    steps = np.sort(np.random.default_rng([config.seed, 11]).permutation(steps)[: config.max_val_samples])
    model.eval()
    total, count = 0.0, 0
    recurrent = bool(getattr(model, "recurrent", False))
    overlay = validation_overlay(dataset, config.augment)
    with torch.inference_mode():
        if recurrent:  # whole validation sequences in episode order, state carried
            state = None
            episodes = dataset.index["episode"].to_numpy()[steps]
            for ep in np.unique(episodes):
                s = steps[episodes == ep]
                frames = torch.from_numpy(overlay(dataset.frames(s, 1), s)).to(device)[None]
                y = torch.from_numpy(dataset.index["label_center"].to_numpy(np.float32)[s]).to(device).reshape(-1, 1)
                out, state = model.forward_sequence(frames, None)
                total += float(measure(out.reshape(-1, out.shape[-1]), y)) * len(s)
                count += len(s)
        else:
            labels = dataset.index["label_center"].to_numpy(np.float32)
            for i in range(0, len(steps), 256):
                s = steps[i: i + 256]
                x = torch.from_numpy(overlay(dataset.frames(s, 1), s)).to(device)
                y = torch.from_numpy(labels[s]).to(device).reshape(-1, 1)
                out = model(x) if commands is None else model(x, torch.from_numpy(commands[s]).to(device))
                total += float(measure(out, y)) * len(s)
                count += len(s)
    model.train()
    return total / count



def run(config: TrainConfig) -> dict:
    result = fit(config)
    return {"out": str(result.out), "best_val_loss": result.best_val_loss, "updates": result.updates,
            "samples_per_s": round(result.samples_per_s, 1), "precision": result.precision}
