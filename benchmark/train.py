"""`python -m benchmark train bc`: behaviour cloning of the teacher's labels from a dataset.

Reads top to bottom: split episodes into train/validation, build the model, then for each epoch
draw batches (augmented in a background thread while the network trains), step the optimiser,
measure the validation loss, and checkpoint. Every epoch's batches derive from (seed, epoch, batch)
alone, so an interrupted run resumed from its last checkpoint ends with the same weights.

DAgger, DART and HG-DAgger (benchmark/imitation.py) call `fit` on their aggregated datasets.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from models import ModelConfig, build_model, load_model, save_model

from .augment import AugmentConfig, SampleMaker
from .dataset import Dataset
from .files import write_json_atomic


@dataclass(frozen=True)
class TrainConfig:
    """Behaviour cloning: fit a steering network to the teacher's labels in a recorded dataset."""

    data: Path = Path("data/teacher")
    """Dataset directory (from `record`, `drive`, `import-udacity` or an imitation run)."""
    out: Path = Path("runs/bc")
    """Run directory: checkpoint/, model/ (best validation loss), train_log.csv."""
    arch: Literal["pilotnet", "pilotnet-gru", "resnet18"] = "pilotnet"
    """Network: PilotNet, PilotNet features into a GRU, or ResNet-18 from scratch."""
    head: Literal["point", "gaussian"] = "point"
    """Output head: curvature with MSE, or mean and log-std with Gaussian NLL."""
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
    """Sequence length for recurrent models."""
    seed: int = 0
    """Seed of the initial weights, the split and every batch."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Shifted-camera and photometric augmentation."""
    init: Path | None = None
    """Start from this saved model directory instead of random weights (warm start)."""
    device: str = "auto"
    """'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'."""
    threads: int = 0
    """CPU threads for torch (0: all cores)."""
    resume: bool = True
    """Continue from out/checkpoint when it exists."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size and lr must be positive")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")


@dataclass
class TrainResult:
    model: object
    out: Path
    best_val_loss: float
    log: pd.DataFrame
    updates: int
    samples_per_s: float


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


def _save_checkpoint(directory: Path, model, optimizer, scheduler, state: dict) -> None:
    from safetensors.torch import save_file

    tmp = directory.with_name(directory.name + ".tmp")
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
    if directory.exists():
        import shutil

        shutil.rmtree(directory)
    tmp.rename(directory)


def _load_checkpoint(directory: Path, model, optimizer, scheduler) -> dict:
    from safetensors.torch import load_file

    model.load_state_dict(load_model(directory / "model").state_dict())
    state = json.loads((directory / "state.json").read_text())
    tensors = load_file(str(directory / "optimizer.safetensors")) if (directory / "optimizer.safetensors").exists() else {}
    opt_state: dict = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
    scheduler.load_state_dict(state.pop("scheduler"))
    return state


# --- training -----------------------------------------------------------------------------------


def fit(config: TrainConfig, dataset: Dataset | None = None, init_model=None) -> TrainResult:
    """Train on `dataset` (default: open config.data); `init_model` warm-starts (DAgger)."""
    torch, device = _torch(config)
    dataset = dataset or Dataset.open(config.data)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    train_steps, val_steps = split_episodes(dataset, config.val_fraction, config.seed)
    if len(train_steps) == 0:
        raise ValueError(f"{config.data}: no training steps after the validation split")

    torch.manual_seed(config.seed)
    model_config = ModelConfig(arch=config.arch, head=config.head)
    if init_model is not None:
        model = init_model
    elif config.init is not None:
        model = load_model(config.init)
    else:
        model = build_model(model_config)
    model = model.to(device)
    channels_last = device.type == "cpu"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    recurrent = bool(getattr(model, "recurrent", False))
    maker = SampleMaker(dataset, config.augment, seed=config.seed)
    if recurrent:  # sequences keep one camera, no synthetic views (they would break in time)
        maker = SampleMaker(dataset, replace(config.augment, synthetic_prob=0.0), seed=config.seed)
        train_seqs = _sequences(dataset, train_steps, config.seq_len)
        if len(train_seqs) == 0:
            raise ValueError(f"no training sequences of {config.seq_len} steps")
    per_epoch = math.ceil(len(train_steps) / config.batch_size)
    total_updates = per_epoch * config.epochs
    if config.max_updates:
        total_updates = min(total_updates, config.max_updates)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    def lr_factor(u: int) -> float:
        warm = min(1.0, (u + 1) / max(config.warmup_updates, 1))
        return warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(u / max(total_updates, 1), 1.0))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)

    state = {"epoch": 0, "updates": 0, "best_val_loss": math.inf, "log": []}
    ckpt = out / "checkpoint"
    if config.resume and (ckpt / "state.json").exists():
        state = _load_checkpoint(ckpt, model, optimizer, scheduler)
    write_json_atomic(out / "train_config.json", _jsonable(asdict(config)))

    def to_tensor(frames: np.ndarray, labels: np.ndarray):
        x = torch.from_numpy(frames).to(device, non_blocking=True)
        y = torch.from_numpy(labels).to(device, non_blocking=True).reshape(-1, 1)
        return x, y

    def make_batch(job):
        epoch, b, steps = job
        rng = np.random.default_rng([config.seed, epoch, b])
        if recurrent:  # `steps` holds sequence numbers into train_seqs
            flat = train_seqs[steps].reshape(-1)
            cams = np.repeat(rng.integers(0, 3, len(steps)) if config.augment.side_cameras else np.ones(len(steps), int),
                             config.seq_len)
            frames, labels = maker.batch(flat, rng, cams)
            return frames.reshape(len(steps), config.seq_len, *frames.shape[1:]), labels.reshape(len(steps), config.seq_len)
        return maker.batch(steps, rng)

    def epoch_jobs(epoch: int) -> list:
        rng = np.random.default_rng([config.seed, epoch, 1])
        pool = np.arange(len(train_seqs)) if recurrent else train_steps
        n = len(train_steps) if not recurrent else max(len(pool) // config.seq_len, 1)
        weights = None if recurrent else maker.weights(pool)
        order = rng.choice(pool, size=n, replace=weights is not None, p=weights) if weights is not None else rng.permutation(pool)[:n]
        bs = config.batch_size if not recurrent else max(config.batch_size // config.seq_len, 1)
        return [(epoch, b, order[i: i + bs]) for b, i in enumerate(range(0, len(order), bs))]

    t_start = time.perf_counter()
    samples_seen = 0
    while state["epoch"] < config.epochs and state["updates"] < total_updates:
        epoch = state["epoch"]
        model.train()
        jobs = epoch_jobs(epoch)[: max(total_updates - state["updates"], 0)]
        losses = []
        fetch = Prefetcher(make_batch, jobs)
        bar = tqdm(total=len(jobs), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress,
                   leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()
        try:
            for frames, labels in fetch:
                x, y = to_tensor(frames, labels)
                if recurrent:
                    out_seq, _ = model.forward_sequence(x)
                    loss = model.loss(out_seq.reshape(-1, out_seq.shape[-1]), y.reshape(-1, 1))
                else:
                    loss = model.loss(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                state["updates"] += 1
                samples_seen += y.numel()
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4g}")
        finally:
            fetch.close()
            bar.close()
        seconds = time.perf_counter() - t0
        val_loss = evaluate_loss(model, dataset, val_steps, config, torch, device)
        state["epoch"] = epoch + 1
        row = {"epoch": epoch + 1, "updates": state["updates"], "train_loss": float(np.mean(losses)) if losses else math.nan,
               "val_loss": val_loss, "seconds": seconds, "samples_per_s": len(losses) * config.batch_size / max(seconds, 1e-9)}
        state["log"].append(row)
        if val_loss < state["best_val_loss"] or not math.isfinite(state["best_val_loss"]):
            state["best_val_loss"] = val_loss
            save_model(model, out / "model")
        _save_checkpoint(ckpt, model, optimizer, scheduler, state)
        pd.DataFrame(state["log"]).to_csv(out / "train_log.csv", index=False)
        if config.progress:
            tqdm.write(f"epoch {epoch + 1}: train {row['train_loss']:.5g}  val {val_loss:.5g}  "
                       f"({row['samples_per_s']:.0f} samples/s)")
    if not (out / "model" / "config.json").exists():
        save_model(model, out / "model")
    best = load_model(out / "model").to(device)
    elapsed = time.perf_counter() - t_start
    return TrainResult(best, out, float(state["best_val_loss"]), pd.DataFrame(state["log"]), int(state["updates"]),
                       samples_seen / max(elapsed, 1e-9))


def evaluate_loss(model, dataset: Dataset, steps: np.ndarray, config: TrainConfig, torch, device) -> float:
    """Mean loss on the centre camera's clean labels (no augmentation); NaN without validation data."""
    if len(steps) == 0:
        return math.nan
    steps = np.sort(np.random.default_rng([config.seed, 11]).permutation(steps)[: config.max_val_samples])
    model.eval()
    total, count = 0.0, 0
    recurrent = bool(getattr(model, "recurrent", False))
    with torch.inference_mode():
        if recurrent:  # whole validation sequences in episode order, state carried
            state = None
            episodes = dataset.index["episode"].to_numpy()[steps]
            for ep in np.unique(episodes):
                s = steps[episodes == ep]
                frames = torch.from_numpy(dataset.frames(s, 1)).to(device)[None]
                y = torch.from_numpy(dataset.index["label_center"].to_numpy(np.float32)[s]).to(device).reshape(-1, 1)
                out, state = model.forward_sequence(frames, None)
                total += float(model.loss(out.reshape(-1, out.shape[-1]), y)) * len(s)
                count += len(s)
        else:
            labels = dataset.index["label_center"].to_numpy(np.float32)
            for i in range(0, len(steps), 256):
                s = steps[i: i + 256]
                x = torch.from_numpy(dataset.frames(s, 1)).to(device)
                y = torch.from_numpy(labels[s]).to(device).reshape(-1, 1)
                total += float(model.loss(model(x), y)) * len(s)
                count += len(s)
    model.train()
    return total / count


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def run(config: TrainConfig) -> dict:
    result = fit(config)
    return {"out": str(result.out), "best_val_loss": result.best_val_loss, "updates": result.updates,
            "samples_per_s": round(result.samples_per_s, 1)}
