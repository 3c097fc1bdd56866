"""trials.api outside Ray Tune: reports, checkpoints, resume, bad input."""

from __future__ import annotations

import math

import pytest

from trials import api


def test_local_session_collects_results_with_epoch():
    seen = []
    with api.local_session(on_report=seen.append) as s:
        api.report(1, loss=0.5, acc=1)
        api.report(2, loss=float("nan"))
    assert s.results[0] == {"loss": 0.5, "acc": 1, "epoch": 1}
    assert s.results[1]["epoch"] == 2 and math.isnan(s.results[1]["loss"])
    assert [r["epoch"] for r in seen] == [1, 2] and seen[0] == s.results[0]


def test_no_session_prints_to_stderr(capsys):
    api.report(3, val_accuracy=0.75)
    err = capsys.readouterr().err
    assert "epoch 3" in err and "val_accuracy=0.75" in err


def test_checkpoint_roundtrip_and_resume():
    import torch
    state = {"epoch": 2, "w": torch.arange(3.0), "meta": {"name": "x", "steps": [1, 2]}}
    with api.local_session() as s:
        assert api.load_checkpoint() is None
        api.report(2, loss=1.0, checkpoint=state)
    ((epoch, saved),) = s.checkpoints
    assert epoch == 2 and torch.equal(saved["w"], state["w"]) and saved["meta"] == state["meta"]
    assert saved is not state  # a copy, as a restore from storage would give
    with api.local_session(resume_from=s.last_checkpoint):
        assert api.load_checkpoint()["epoch"] == 2


def test_save_checkpoint_is_attached_to_next_report_only():
    import torch  # noqa: F401
    with api.local_session() as s:
        api.save_checkpoint({"epoch": 1})
        api.report(1, loss=1.0)
        api.report(2, loss=0.5)
    assert [e for e, _ in s.checkpoints] == [1]


def test_tensor_metrics_are_converted():
    import torch
    with api.local_session() as s:
        api.report(1, loss=torch.tensor(0.25))
    assert s.results[0]["loss"] == 0.25 and type(s.results[0]["loss"]) is float


@pytest.mark.parametrize(
    "step,metrics,match",
    [
        (-1, {"loss": 1.0}, "step must be a finite number >= 0"),
        (True, {"loss": 1.0}, "step must be"),
        ("1", {"loss": 1.0}, "step must be"),
        (float("inf"), {"loss": 1.0}, "step must be"),
        (1, {}, "at least one metric"),
        (1, {"epoch": 1, "loss": 1.0}, "'epoch' and 'sweepcast_reads' are set by report"),
    ],
)
def test_report_rejects_bad_input(step, metrics, match):
    with api.local_session(), pytest.raises(ValueError, match=match):
        api.report(step, **metrics)


@pytest.mark.parametrize(
    "metrics,match",
    [
        ({"loss": "low"}, "metric 'loss' must be a real number, got 'low'"),
        ({"loss": None}, "metric 'loss' must be a real number"),
        ({"flag": True}, "metric 'flag' must be a real number"),
    ],
)
def test_report_rejects_non_numeric_metrics(metrics, match):
    with api.local_session(), pytest.raises(TypeError, match=match):
        api.report(1, **metrics)


def test_checkpoint_must_be_dict():
    with api.local_session():
        with pytest.raises(TypeError, match="checkpoint must be a dict, got list"):
            api.report(1, loss=1.0, checkpoint=[1, 2])
        with pytest.raises(TypeError, match="must be a dict, got int"):
            api.save_checkpoint(3)  # type: ignore[arg-type]


def test_not_in_tune_session_here():
    assert api.in_tune_session() is False


def test_read_input_goes_with_the_next_report_once():
    from trials.api import READS_KEY, parse_reads, read_input

    with api.local_session() as s:
        read_input("train", "dataset")
        read_input("train", "dataset")  # the same read twice is one dependency
        read_input("evaluate", "train")
        api.report(1, acc=0.5)
        api.report(2, acc=0.6)
    assert parse_reads(s.results[0][READS_KEY]) == [("train", "dataset"), ("evaluate", "train")]
    assert READS_KEY not in s.results[1]


@pytest.mark.parametrize("step, artifact", [("", "x"), ("train", " "), ("a\tb", "x"),
                                            ("train", "x\ny"), (3, "x")])
def test_read_input_rejects_bad_names(step, artifact):
    from trials.api import read_input

    with pytest.raises(ValueError, match="read_input"):
        read_input(step, artifact)


def test_reads_key_is_not_a_metric_name():
    with api.local_session(), pytest.raises(ValueError, match="sweepcast_reads"):
        api.report(1, sweepcast_reads=1.0)
