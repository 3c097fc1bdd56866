"""benchmarks/train_speed.py: the three set-ups time the same training on the same batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks.train_speed import main, torch_encoder
from search.forecast.pfn import PFN, PFNConfig, make_borders
from search.forecast.prior import get_prior
from search.forecast.train import make_batch


def test_the_before_setup_is_the_same_network(tmp_path):
    """The 'torch-encoder' baseline computes what the trainer now computes, only the old way."""
    prior = get_prior("sweepcast-v3")
    torch.manual_seed(0)
    net = PFN(PFNConfig(emsize=16, layers=2, nhead=4, n_buckets=50), make_borders(prior.sample(300, np.random.default_rng(0)).y, 50))
    x, y, c, oi, _, _ = make_batch(prior, 0, 0, 12, 3)
    with torch.no_grad():
        want = net(x, y, c, out_idx=oi)
        net._encode = torch_encoder(net)
        got = net(x, y, c, out_idx=oi)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_writes_one_row_per_setup_with_speedups_against_the_baseline(tmp_path):
    out = tmp_path / "speed.json"
    main(["--threads", "1", "--batch", "16", "--emsize", "16", "--groups", "2", "--steps", "1", "--rounds", "1",
          "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [r["setup"] for r in rows] == ["torch-encoder", "plain-attention", "plain-attention+groups2"]
    assert rows[0]["speedup_vs_torch_encoder"] == 1.0
    for r in rows:  # s_per_step is rounded to 0.1 ms in the JSON
        assert r["s_per_step"] > 0
        assert abs(r["curves_per_s"] * r["s_per_step"] / 16 - 1) < 0.01
        speedup = rows[0]["curves_per_s"] and r["curves_per_s"] / rows[0]["curves_per_s"]
        assert abs(r["speedup_vs_torch_encoder"] / speedup - 1) < 0.01


def test_queries_table_one_row_per_count_against_the_first(tmp_path):
    out = tmp_path / "speed.json"
    main(["--threads", "1", "--batch", "16", "--emsize", "16", "--groups", "2", "--steps", "1", "--rounds", "1",
          "--queries", "2,4", "--json", str(out)])
    rows = json.loads(out.read_text())["queries"]
    assert [r["queries"] for r in rows] == [2, 4]
    assert rows[0]["query_points_vs_queries2"] == 1.0
    for r in rows:
        total = r["s_per_step"] + r["s_draw_batch"]
        assert total > 0
        assert abs(r["query_points_per_s"] * total / (16 * r["queries"]) - 1) < 0.02
    ratio = rows[1]["query_points_per_s"] / rows[0]["query_points_per_s"]
    assert abs(rows[1]["query_points_vs_queries2"] / ratio - 1) < 0.01


def test_queries_must_be_positive(tmp_path):
    with pytest.raises(SystemExit):
        main(["--queries", "8,0", "--json", str(tmp_path / "x.json")])
