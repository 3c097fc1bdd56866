"""The PFN network: a transformer over (step, value[, covariates]) tokens with a bar-distribution head.

Input per curve: context tokens (observed steps x and values y, plus ``n_covariates`` per-step
covariates) and query tokens (a step x, plus its covariates, no value). The encoder has no
positional encoding: a token is ``enc_x(x) + enc_y(y) + enc_cov(cov)`` for context and
``enc_x(x) + q + enc_cov(cov)`` for a query, ``q`` a learned vector. Attention: every token sees
the context tokens of its own curve; a query also sees itself; queries never see each other, so a
query's prediction does not depend on which other queries are asked. Curves with different
numbers of context points share one batch through the boolean masks.

Output per query: a bar (Riemann) distribution over ``n_buckets`` buckets with borders at prior
quantiles (a buffer, shipped in the state_dict); the two outer buckets are replaced by half-normal
tails (half of a tail's mass lies within the bucket width), so the density has full support.

Domain: x in ``1..horizon`` (scaled by ``1/horizon`` inside), y about [0, 1], higher is better.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

_HALF_NORMAL_Q50 = 0.6744897501960817  # the 75% quantile of N(0, 1): half-normal median


@dataclass
class PFNConfig:
    """Architecture (and provenance) of a PFN; saved next to the weights as JSON."""

    emsize: int = 128
    layers: int = 3
    nhead: int = 4
    nhid_factor: int = 2
    n_buckets: int = 1000
    n_covariates: int = 0
    horizon: int = 100
    prior: str = "sweepcast"
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        for k in ("emsize", "layers", "nhead", "nhid_factor", "n_buckets", "horizon"):
            v = getattr(self, k)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"PFNConfig.{k} must be a positive int, got {v!r}")
        if self.n_covariates < 0:
            raise ValueError(f"PFNConfig.n_covariates must be >= 0, got {self.n_covariates!r}")
        if self.emsize % self.nhead:
            raise ValueError(f"PFNConfig.emsize {self.emsize} must be divisible by nhead {self.nhead}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PFNConfig:
        d = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown PFN config keys {sorted(unknown)}")
        return cls(**d)


class BarDistribution(nn.Module):
    """Riemann distribution with half-normal tails over fixed borders (n_buckets + 1,)."""

    def __init__(self, borders: torch.Tensor):
        super().__init__()
        b = torch.as_tensor(borders, dtype=torch.float32)
        if b.ndim != 1 or b.numel() < 4 or not bool(torch.all(b[1:] > b[:-1])):
            raise ValueError("borders must be a strictly increasing 1-D tensor of >= 4 values")
        self.register_buffer("borders", b)

    @property
    def widths(self) -> torch.Tensor:
        return self.borders[1:] - self.borders[:-1]

    def _tail_scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.widths
        return w[0] / _HALF_NORMAL_Q50, w[-1] / _HALF_NORMAL_Q50

    def log_prob(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Log density of ``y`` (shape ``logits.shape[:-1]``) under the bar distribution."""
        logp = torch.log_softmax(logits.float(), dim=-1)
        b = self.borders
        nb = b.numel() - 1
        idx = torch.searchsorted(b, y.contiguous(), right=True) - 1
        idx = idx.clamp(0, nb - 1)
        lp_bucket = logp.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        dens = lp_bucket - torch.log(self.widths[idx])
        sl, sr = self._tail_scales()
        # tails: half-normal from the inner border of the outer bucket outwards
        zl = (b[1] - y).clamp(min=0.0) / sl
        zr = (y - b[-2]).clamp(min=0.0) / sr
        hn = math.log(2.0) - 0.5 * math.log(2 * math.pi)
        left = logp[..., 0] + hn - torch.log(sl) - 0.5 * zl**2
        right = logp[..., -1] + hn - torch.log(sr) - 0.5 * zr**2
        dens = torch.where(y < b[1], left, dens)
        dens = torch.where(y >= b[-2], right, dens)
        return dens

    def cdf(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """P(Y <= y); ``y`` broadcastable to ``logits.shape[:-1]``."""
        p = torch.softmax(logits.float(), dim=-1)
        b = self.borders
        y = torch.as_tensor(y, dtype=torch.float32, device=p.device).expand(p.shape[:-1]).unsqueeze(-1)
        # inner buckets 1..nb-2: uniform mass within [b_i, b_i+1]
        lo, hi = b[:-1], b[1:]
        frac = ((y - lo) / (hi - lo)).clamp(0.0, 1.0)
        sl, sr = self._tail_scales()
        # left tail mass below y (y < b1): p0 * 2 * (1 - Phi((b1 - y)/sl)) ; above b1: p0
        zl = ((b[1] - y[..., 0]).clamp(min=0.0) / sl)
        fl = torch.special.erfc(zl / math.sqrt(2.0))  # = 2 * (1 - Phi(z))
        zr = ((y[..., 0] - b[-2]).clamp(min=0.0) / sr)
        fr = 1.0 - torch.special.erfc(zr / math.sqrt(2.0))
        frac = frac.clone()
        frac[..., 0] = fl
        frac[..., -1] = fr
        return (p * frac).sum(-1).clamp(0.0, 1.0)

    def icdf(self, logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Quantiles: logits (..., nb), q (k,) in (0, 1) -> (..., k), non-decreasing in q."""
        p = torch.softmax(logits.float(), dim=-1)
        c = torch.cumsum(p, dim=-1)
        c = torch.cat([torch.zeros_like(c[..., :1]), c], dim=-1)  # (..., nb+1) at borders
        q = torch.as_tensor(q, dtype=torch.float32, device=p.device)
        qq = q.expand(*p.shape[:-1], q.numel()).contiguous()
        b = self.borders
        nb = b.numel() - 1
        i = (torch.searchsorted(c.contiguous(), qq, right=True) - 1).clamp(0, nb - 1)
        c_lo = c.gather(-1, i)
        pi = p.gather(-1, i).clamp(min=1e-12)
        frac = ((qq - c_lo) / pi).clamp(0.0, 1.0)
        out = b[i] + frac * self.widths[i]
        sl, sr = self._tail_scales()
        # left tail: mass p0 as half-normal below b1; P(Y <= y) = p0 * erfc(z/sqrt2)
        p0 = p[..., :1].clamp(min=1e-12)
        pl = (qq / p0).clamp(1e-12, 1.0)
        zl = torch.special.erfinv(1.0 - pl) * math.sqrt(2.0)
        out_l = b[1] - sl * zl
        pn = p[..., -1:].clamp(min=1e-12)
        pr = ((qq - (1.0 - pn)) / pn).clamp(0.0, 1.0 - 1e-7)
        zr = torch.special.erfinv(pr) * math.sqrt(2.0)
        out_r = b[-2] + sr * zr
        out = torch.where(i == 0, out_l, out)
        out = torch.where(i == nb - 1, out_r, out)
        return torch.cummax(out, dim=-1).values

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits.float(), dim=-1)
        b = self.borders
        mids = (b[:-1] + b[1:]) / 2
        sl, sr = self._tail_scales()
        mids = mids.clone()
        c = math.sqrt(2.0 / math.pi)
        mids[0] = b[1] - sl * c
        mids[-1] = b[-2] + sr * c
        return (p * mids).sum(-1)


def make_borders(samples: np.ndarray, n_buckets: int) -> torch.Tensor:
    """Bucket borders at quantiles of prior values, made strictly increasing (min width 1e-4)."""
    s = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    s = s[np.isfinite(s)]
    qs = np.quantile(s, np.linspace(0.0, 1.0, n_buckets + 1))
    lo, hi = qs[0], qs[-1]
    # mix with a uniform grid so exact repeats (y = 0 for collapsed runs) do not make empty buckets
    grid = np.linspace(lo, hi, n_buckets + 1)
    b = 0.8 * qs + 0.2 * grid
    for i in range(1, b.size):
        b[i] = max(b[i], b[i - 1] + 1e-4)
    return torch.as_tensor(b, dtype=torch.float32)


class PFN(nn.Module):
    """The transformer. See the module docstring for tokens, masks and the output head."""

    def __init__(self, config: PFNConfig, borders: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        e = config.emsize
        if borders is None:
            borders = torch.linspace(-0.1, 1.1, config.n_buckets + 1)
        if borders.numel() != config.n_buckets + 1:
            raise ValueError(f"borders must have n_buckets + 1 = {config.n_buckets + 1} values, got {borders.numel()}")
        self.enc_x = nn.Sequential(nn.Linear(1, e), nn.GELU(), nn.Linear(e, e))
        self.enc_y = nn.Sequential(nn.Linear(1, e), nn.GELU(), nn.Linear(e, e))
        self.enc_cov = nn.Linear(config.n_covariates, e) if config.n_covariates > 0 else None
        self.query = nn.Parameter(torch.zeros(e))
        layer = nn.TransformerEncoderLayer(
            e, config.nhead, e * config.nhid_factor, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(e)
        self.head = nn.Sequential(nn.Linear(e, e * 2), nn.GELU(), nn.Linear(e * 2, config.n_buckets))
        self.bar = BarDistribution(borders)

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        ctx: torch.Tensor,
        cov: torch.Tensor | None = None,
        out_idx: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits over buckets for every token (or the tokens at ``out_idx``).

        Args:
            x: (B, L) steps on the model domain.
            y: (B, L) values; ignored where ``ctx`` is False.
            ctx: (B, L) bool, True for context tokens. Every other token is a query.
            cov: (B, L, k) covariates, required iff ``n_covariates`` > 0.
            out_idx: optional (B, Q) long positions whose logits are wanted (saves the head's
                cost on tokens nobody asks about).

        Returns:
            (B, L, n_buckets) logits, or (B, Q, n_buckets) with ``out_idx``; only query
            positions are meaningful.
        """
        B, L = x.shape
        k = self.config.n_covariates
        if k > 0 and (cov is None or cov.shape != (B, L, k)):
            raise ValueError(f"cov must have shape {(B, L, k)}, got {None if cov is None else tuple(cov.shape)}")
        xs = (x / self.config.horizon).unsqueeze(-1)
        ys = torch.where(ctx, y, torch.zeros_like(y)).clamp(-1.0, 2.0).unsqueeze(-1)
        h = self.enc_x(xs)
        h = h + torch.where(ctx.unsqueeze(-1), self.enc_y(ys), self.query.expand(B, L, -1))
        if self.enc_cov is not None:
            h = h + self.enc_cov(cov)
        # attention: a token sees its curve's context tokens and itself (an additive bias, shared by the heads)
        eye = torch.eye(L, dtype=torch.bool, device=x.device)
        allowed = ctx.unsqueeze(1) | eye.unsqueeze(0)  # (B, L, L): [b, i, j] query i sees key j
        bias = torch.zeros(allowed.shape, dtype=h.dtype, device=x.device).masked_fill_(~allowed, float("-inf"))
        h = self._encode(h, bias.unsqueeze(1))
        if out_idx is not None:
            h = h.gather(1, out_idx.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
        return self.head(self.norm(h))

    def _encode(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``self.encoder``'s pre-norm layers, written out with plain attention.

        The same parameters and the same arithmetic as ``nn.TransformerEncoder`` (outputs agree to
        float rounding; ``tests/unit/test_forecast_pfn.py`` checks it), about 1.2x faster to train
        on a CPU: no per-head copy of the mask, and the short sequences (at most 48 context tokens
        plus the queries) are cheaper in two batched matmuls than in the fused attention kernel.
        """
        B, L, E = h.shape
        H = self.config.nhead
        D = E // H
        scale = 1.0 / math.sqrt(D)
        for layer in self.encoder.layers:
            att = layer.self_attn
            qkv = F.linear(layer.norm1(h), att.in_proj_weight, att.in_proj_bias)
            q, k, v = qkv.view(B, L, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, L, D) each
            w = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * scale + bias, dim=-1)
            o = torch.matmul(w, v).transpose(1, 2).reshape(B, L, E)
            h = h + att.out_proj(o)
            h = h + layer.linear2(F.gelu(layer.linear1(layer.norm2(h))))
        return h

    def loss(self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean NLL over positions where ``target`` (bool) is True."""
        nll = -self.bar.log_prob(logits, y)
        return (nll * target).sum() / target.sum().clamp(min=1)


def save_pfn(model: PFN, directory: str | Path, stem: str) -> tuple[Path, Path]:
    """Write ``stem.pt`` (a plain state_dict) and ``stem.json`` (the config)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pt, js = d / f"{stem}.pt", d / f"{stem}.json"
    sd = {k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()}
    tmp = pt.with_suffix(".pt.tmp")
    torch.save(sd, tmp)
    tmp.replace(pt)
    js.write_text(model.config.to_json() + "\n")
    return pt, js


def load_pfn(pt: str | Path, js: str | Path | None = None) -> PFN:
    """Load a PFN from a state_dict file (``weights_only=True``) and its JSON config."""
    pt = Path(pt)
    js = Path(js) if js is not None else pt.with_suffix(".json")
    if not pt.is_file():
        raise FileNotFoundError(f"PFN weights not found: {pt}")
    if not js.is_file():
        raise FileNotFoundError(f"PFN config not found: {js}")
    config = PFNConfig.from_json(js.read_text())
    sd = torch.load(pt, map_location="cpu", weights_only=True)
    model = PFN(config, borders=sd["bar.borders"])
    model.load_state_dict(sd)
    model.eval()
    return model
