"""trials.api inside real Ray Tune: every result carries ``epoch``, checkpoints persist, and a
trial that crashes resumes from its last checkpoint (FailureConfig retries)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_report_checkpoint_and_resume_after_crash(ray_local, tmp_path):
    from ray import tune

    marker = tmp_path / "crashed-once"

    def trainable(config):
        import torch  # noqa: F401 - state holds tensors

        from trials.api import load_checkpoint, report

        state = load_checkpoint()
        start = 1 if state is None else state["epoch"] + 1
        resumed_from = 0 if state is None else state["epoch"]
        for epoch in range(start, config["max_epochs"] + 1):
            if epoch == 3 and not marker.exists():
                marker.write_text("x")
                raise RuntimeError("simulated crash at epoch 3")
            import torch as t

            report(
                epoch,
                loss=1.0 / epoch,
                resumed_from=resumed_from,
                checkpoint={"epoch": epoch, "w": t.full((2,), float(epoch))},
            )

    tuner = tune.Tuner(
        trainable,
        param_space={"max_epochs": 5},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=1),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "storage"),
            name="trials-api",
            failure_config=tune.FailureConfig(max_failures=1),
            verbose=0,
        ),
    )
    grid = tuner.fit()
    (res,) = list(grid)
    assert res.error is None
    assert marker.exists()  # it really crashed once
    df = res.metrics_dataframe
    assert list(df["epoch"]) == [1, 2, 3, 4, 5]  # epochs 1-2 were not repeated
    assert list(df["resumed_from"]) == [0, 0, 2, 2, 2]
    assert res.metrics["epoch"] == 5
    with res.checkpoint.as_directory() as d:
        import torch

        state = torch.load(f"{d}/state.pt", weights_only=True)
    assert state["epoch"] == 5 and state["w"].tolist() == [5.0, 5.0]
