"""Built-in trainable: a PyTorch MLP on scikit-learn's digits (8x8 images, 10 classes).

``train(config)`` follows the contract of ``trials.api``. Hyperparameters (defaults in
``DEFAULTS``)::

    lr             float > 0          base learning rate
    width          int >= 1           units per hidden layer
    depth          int >= 0           hidden layers (0: a linear classifier)
    dropout        float in [0, 1)    after each hidden layer
    weight_decay   float >= 0
    batch_size     int >= 1
    optimizer      adam | sgd | adamw (sgd with momentum 0.9)
    lr_schedule    a name from trials.examples.schedules (constant, cosine, step, ...)
    schedule_<p>   parameter <p> of the schedule (e.g. schedule_gamma for step)
    max_epochs     int >= 1
    seed           int                 weight init and batch order

Unknown keys raise ``ValueError``. The data split (1438 train / 359 validation, stratified) is
fixed (seed 0) so every trial is judged on the same validation set. Reports ``train_loss``,
``val_loss`` and ``val_accuracy`` each epoch with a checkpoint (model, optimizer, epoch) and
resumes from the last checkpoint. One epoch takes a few tens of milliseconds on one CPU thread.

torch is imported inside ``train``, so importing this module (``sweepcast validate`` does) is
cheap.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from trials.api import load_checkpoint, report
from trials.examples import schedules

DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "width": 64,
    "depth": 2,
    "dropout": 0.0,
    "weight_decay": 0.0,
    "batch_size": 64,
    "optimizer": "adam",
    "lr_schedule": "constant",
    "max_epochs": 10,
    "seed": 0,
}
OPTIMIZERS = ("adam", "sgd", "adamw")
SCHEDULE_PREFIX = "schedule_"
DATA_SEED = 0
VAL_FRACTION = 0.2


def hyperparameter_names() -> frozenset[str]:
    """Every key ``train`` accepts (schedule parameters of all registered schedules included)."""
    return frozenset(DEFAULTS) | {SCHEDULE_PREFIX + p for p in schedules.all_params()}


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") and callable(v.item) else v


def parse_config(config: dict[str, Any]) -> dict[str, Any]:
    """Merge ``config`` over ``DEFAULTS`` and check every value.

    Returns:
        The full hyperparameter dict, plus ``schedule_params`` (dict) for the schedule.

    Raises:
        ValueError: naming the unknown keys, or the key and value that is out of range.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    cfg = {k: _plain(v) for k, v in config.items()}
    known = hyperparameter_names()
    unknown = sorted(k for k in cfg if k not in known)
    if unknown:
        raise ValueError(
            f"trials.examples.mlp:train does not take hyperparameter(s) {', '.join(unknown)} "
            f"(it takes: {', '.join(sorted(known))})"
        )
    hp = {**DEFAULTS, **cfg}

    def bad(key: str, need: str) -> ValueError:
        return ValueError(f"hyperparameter {key} must be {need}, got {hp[key]!r}")

    def is_int(v: Any) -> bool:
        return isinstance(v, Integral) and not isinstance(v, bool)

    def is_real(v: Any) -> bool:
        return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)

    if not (is_real(hp["lr"]) and hp["lr"] > 0):
        raise bad("lr", "a number > 0")
    for key, low in (("width", 1), ("depth", 0), ("batch_size", 1), ("max_epochs", 1)):
        if not (is_int(hp[key]) and hp[key] >= low):
            raise bad(key, f"an integer >= {low}")
    if not is_int(hp["seed"]):
        raise bad("seed", "an integer")
    if not (is_real(hp["dropout"]) and 0 <= hp["dropout"] < 1):
        raise bad("dropout", "a number in [0, 1)")
    if not (is_real(hp["weight_decay"]) and hp["weight_decay"] >= 0):
        raise bad("weight_decay", "a number >= 0")
    if hp["optimizer"] not in OPTIMIZERS:
        raise bad("optimizer", f"one of {', '.join(OPTIMIZERS)}")
    if hp["lr_schedule"] not in schedules.SCHEDULES:
        raise bad("lr_schedule", f"one of {', '.join(sorted(schedules.SCHEDULES))}")
    sched_params = {
        k[len(SCHEDULE_PREFIX) :]: v for k, v in hp.items() if k.startswith(SCHEDULE_PREFIX)
    }
    # Fail now, not at epoch 1: unknown or out-of-range schedule parameters.
    schedules.lr_at(1, hp["max_epochs"], hp["lr"], hp["lr_schedule"], **sched_params)
    out = {k: v for k, v in hp.items() if not k.startswith(SCHEDULE_PREFIX)}
    out["schedule_params"] = sched_params
    return out


_DATA_CACHE: dict[str, Any] = {}


def _digits_arrays() -> tuple[Any, Any]:
    """scikit-learn's digits as numpy ``(x, y)``: shapes (1797, 64) and (1797,).

    Read straight from the CSV shipped inside the installed scikit-learn (what
    ``sklearn.datasets.load_digits`` reads), because importing scikit-learn costs seconds in
    every trial process; falls back to ``load_digits`` if the file is not where expected.
    """
    import importlib.util
    import os

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(
            next(iter(spec.submodule_search_locations)), "datasets", "data", "digits.csv.gz"
        )
        if os.path.exists(path):
            a = np.loadtxt(path, delimiter=",")
            return a[:, :-1], a[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x, y


def split_indices(y: Any, val_fraction: float, seed: int) -> tuple[Any, Any]:
    """A stratified split: ``round(val_fraction * n_c)`` of each class c to validation.

    Returns sorted index arrays ``(train_idx, val_idx)``; the same for the same inputs.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        val.append(rng.permutation(idx)[: round(val_fraction * len(idx))])
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(len(y)), val_idx)
    return train_idx, val_idx


def load_data() -> tuple[Any, Any, Any, Any]:
    """Digits as tensors ``(x_train, y_train, x_val, y_val)``, features scaled to [0, 1]."""
    if "data" not in _DATA_CACHE:
        import numpy as np
        import torch

        x, y = _digits_arrays()
        tr, va = split_indices(y, VAL_FRACTION, DATA_SEED)
        x = np.asarray(x / 16.0, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        _DATA_CACHE["data"] = tuple(
            torch.from_numpy(np.ascontiguousarray(a)) for a in (x[tr], y[tr], x[va], y[va])
        )
    return _DATA_CACHE["data"]


def build_model(n_in: int, n_out: int, width: int, depth: int, dropout: float) -> Any:
    """``depth`` hidden layers of ``width`` ReLU units with dropout, then a linear head."""
    from torch import nn

    layers: list[nn.Module] = []
    d = n_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = width
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


def _optimizer(name: str, params: Any, lr: float, weight_decay: float) -> Any:
    import torch

    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)


def train(config: dict[str, Any]) -> None:
    """Train the MLP for ``config["max_epochs"]`` epochs, reporting and checkpointing each.

    Resumes from ``trials.api.load_checkpoint()`` when there is one (the epochs already done
    are not repeated; batch order and dropout masks of each epoch depend only on ``seed`` and
    the epoch, so on CPU a resumed trial reproduces the uninterrupted one).
    """
    hp = parse_config(config)
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x_tr, y_tr, x_va, y_va = (t.to(device) for t in load_data())

    torch.manual_seed(hp["seed"])
    model = build_model(x_tr.shape[1], 10, hp["width"], hp["depth"], hp["dropout"]).to(device)
    opt = _optimizer(hp["optimizer"], model.parameters(), hp["lr"], hp["weight_decay"])

    start = 1
    state = load_checkpoint()
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["epoch"]) + 1

    n = x_tr.shape[0]
    bs = hp["batch_size"]
    for epoch in range(start, hp["max_epochs"] + 1):
        lr = schedules.lr_at(
            epoch, hp["max_epochs"], hp["lr"], hp["lr_schedule"], **hp["schedule_params"]
        )
        for group in opt.param_groups:
            group["lr"] = lr
        # Batch order and dropout masks depend only on (seed, epoch): a resumed trial
        # trains exactly as it would have without the restart.
        torch.manual_seed(hp["seed"] * 100_003 + epoch)
        order = torch.randperm(n).to(device)
        model.train()
        total = 0.0
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
        model.eval()
        with torch.no_grad():
            logits = model(x_va)
            val_loss = F.cross_entropy(logits, y_va).item()
            val_acc = (logits.argmax(dim=1) == y_va).float().mean().item()
        report(
            epoch,
            train_loss=total / n,
            val_loss=val_loss,
            val_accuracy=val_acc,
            lr=lr,
            checkpoint={
                "epoch": epoch,
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(),
            },
        )


train.hyperparameters = hyperparameter_names()  # type: ignore[attr-defined]


if __name__ == "__main__":  # python -m trials.examples.mlp lr=0.01 max_epochs=3
    import sys

    import yaml

    cfg = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in sys.argv[1:])}
    train(cfg)
