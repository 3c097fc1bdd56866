"""Minimal plain Ray Tune sweep pruned by sweepcast's ``CurveScheduler``.

Run: ``python examples/plain_tune.py`` (a local Ray with 2 CPUs, about a minute).

The scheduler needs the metric and mode (here from ``TuneConfig``), the result key that counts
epochs (``time_attr``, default ``"epoch"``) and the horizon ``max_t`` in that unit. Every
decision is a verdict with a reason code; ``on_verdict`` receives them (a tracker's
``log_verdict``, a logger, ...), and ``last_verdict(trial_id)`` returns the latest one.
"""

from __future__ import annotations

import math

from ray import tune

from search.adapters.ray_tune import CurveScheduler

EPOCHS = 30


def train(config):
    # a stand-in for a training loop: accuracy rises towards a config-dependent plateau
    plateau = 0.95 - 0.4 * abs(math.log10(config["lr"]) + 2.5) / 2.5
    for epoch in range(1, EPOCHS + 1):
        acc = plateau * (1 - math.exp(-epoch / (3 + 20 * config["lr"])))
        tune.report({"epoch": epoch, "val_acc": acc})


def main() -> None:
    stops = []
    scheduler = CurveScheduler(
        max_t=EPOCHS,          # the horizon, in units of time_attr ("epoch")
        threshold=0.05,        # stop when P(final beats the best completed trial) < 5%
        grace_epochs=3,
        model="pfn",           # or "parametric", "last-value", or any CurveModel instance
        on_verdict=lambda v: stops.append(v) if v.stop else None,
    )
    tuner = tune.Tuner(
        train,
        param_space={"lr": tune.loguniform(1e-5, 1e-0)},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=scheduler,
                                    num_samples=16, max_concurrent_trials=2),
        run_config=tune.RunConfig(name="plain-tune-curve", verbose=0),
    )
    results = tuner.fit()
    best = results.get_best_result()
    epochs = sum(r.metrics["epoch"] for r in results)
    print(f"best lr={best.config['lr']:.2e} val_acc={best.metrics['val_acc']:.3f}; "
          f"{epochs} of {16 * EPOCHS} epochs trained; {len(stops)} trials stopped")
    for v in stops:
        print(f"  stopped {v.trial_id} at epoch {v.step:.0f}: {v.reason}, p_beat={v.p_beat:.3f}, "
              f"forecast median {v.q50:.3f} vs incumbent {v.incumbent:.3f}")


if __name__ == "__main__":
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    main()
