"""The DNAS loop: warm-up, alternating weight and architecture steps, budgets, export,
verification on the target devices, and refinement rounds against the refitted models.

    from search.dnas import SearchConfig, run_search
    result = run_search(SearchConfig(space="kws", data="synth:kws",
                                     devices=["virtual:nucleo-f446re"], latency_ms=30,
                                     max_width=32), client=api)
    result.final.arch, result.final.measured["virtual:nucleo-f446re"]

**Search** (MicroNets §5, after FBNet, Wu et al. CVPR 2019): one logit vector ``alpha`` per
decision node; every step samples ``z = softmax((alpha + Gumbel noise) / tau)`` per node and
runs the supernet (:mod:`search.dnas.supernet`) with it. The first ``warmup`` epochs train
the supernet's weights only (uniform logits), then each training batch takes a weight step
and a validation batch an architecture step whose loss is the cross-entropy plus
``lambda · Σ hinge(cost / budget - 1)`` over every target device's arena, plan and latency
(:mod:`search.dnas.costs`), ``lambda`` ramping up linearly over the search epochs and ``tau``
annealed geometrically from ``tau0`` to ``tau1``. The latency hinge aims below the budget by
the fit's interval (``budget / (1 + rel_hi)``), so a model predicted at its target is measured
within it.

**The result** is the most probable choice of every node. If it breaks a budget (the hinges
are soft) the closest architecture that meets them all is taken: nodes step down one choice
at a time, the step that loses the least logit mass per unit of violation first. A space
whose smallest architecture breaks a budget is refused before any training, with the figure
it would need.

**Resumable.** After every epoch the supernet's and the logits' values and both optimizers'
states go to ``<out>/checkpoint.npz`` and one line to ``<out>/journal.jsonl``; a rerun with the
same configuration continues after the last finished epoch, and randomness is drawn per epoch
from ``(seed, epoch)``, so an interrupted run and an uninterrupted one give the same
architecture (TensorFlow's op determinism is switched on).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.dnas.costs import ArchCosts, Budget, CostModel, argmax_arch
from search.dnas.relaxed import RelaxedSpace
from search.errors import SearchError
from search.spaces import SKIP, Architecture, Choice, get_space

CHECKPOINT = "checkpoint.npz"
JOURNAL = "journal.jsonl"
RESULT = "result.json"


@dataclass
class SearchConfig:
    """Everything a search run depends on (its journal's identity)."""

    space: str
    data: str
    devices: list[str]
    latency_ms: float | None = None
    sram_kib: float | None = None  # None: the board's arena capacity
    flash_kib: float | None = None  # None: the board's model region
    bits: str = "8"  # "8" or "w4" (4-bit conv and dense weights)
    max_width: int | None = None
    epochs: int = 10  # search epochs (warm-up included)
    warmup: int | None = None  # None: a quarter of the epochs
    final_epochs: int = 20
    qat_epochs: int = 3
    rounds: int = 1
    seed: int = 0
    batch_size: int = 32
    per_class: int | None = None  # synthetic sets: utterances per class
    tau0: float = 5.0
    tau1: float = 0.5
    lambda_max: float = 4.0
    lr_weights: float = 1e-2
    lr_arch: float = 0.05
    kernels: str = "dsp"
    bootstrap: int | None = None  # models to profile first where a fit is missing
    out: str | None = None

    @property
    def weight_bits(self) -> int:
        return 4 if self.bits == "w4" else 8

    def identity(self) -> dict[str, Any]:
        """What must be equal for a rerun to resume (everything but rounds and out)."""
        d = asdict(self)
        for k in ("rounds", "out", "bootstrap"):
            d.pop(k)
        return d

    def digest(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Candidate:
    """One exported architecture: predictions, training results and, once profiled, the
    measurements."""

    round: int
    arch: Architecture
    predicted: ArchCosts
    accuracy: dict[str, float] = field(default_factory=dict)
    path: str | None = None
    model_id: int | None = None
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "arch_id": self.arch.id, "arch": self.arch.to_dict(),
                "predicted": self.predicted.to_dict(), "accuracy": self.accuracy,
                "path": self.path, "model_id": self.model_id, "measured": self.measured}

    def report_rows(self, budgets: Sequence[Budget]) -> list[dict[str, Any]]:
        """Per device: predicted vs measured latency, SRAM and flash against the budget."""
        rows = []
        for b in budgets:
            m = self.measured.get(b.device, {})
            pred = self.predicted.latency_ms.get(b.device)
            lo, hi = self.predicted.latency_interval.get(b.device, (None, None))
            meas = m.get("latency_ms")
            rows.append({
                "device": b.device, "predicted_ms": pred, "interval_ms": [lo, hi],
                "measured_ms": meas,
                "error_pct": (None if meas is None or pred is None
                              else 100.0 * (meas - pred) / meas),
                "latency_budget_ms": b.latency_ms,
                "latency_ok": None if meas is None or b.latency_ms is None
                else meas <= b.latency_ms,
                "sram_bytes": m.get("arena_bytes", self.predicted.sram_bytes[b.device]),
                "sram_budget": b.sram_bytes,
                "flash_bytes": m.get("plan_bytes", self.predicted.flash_bytes[b.device]),
                "flash_budget": b.flash_bytes,
                "cycle_source": m.get("cycle_source"),
            })
        return rows


@dataclass
class SearchResult:
    config: SearchConfig
    budgets: list[Budget]
    candidates: list[Candidate]
    epochs: list[dict[str, Any]]
    warnings: list[str]
    fits: dict[str, dict[str, Any]]
    wall_s: float
    out: str

    @property
    def final(self) -> Candidate:
        """The last round's model."""
        return self.candidates[-1]

    @property
    def best(self) -> Candidate:
        """The search's answer: of the models every profiled budget holds for (all of them
        when none), the most accurate on the validation split (never the test sets)."""
        def meets(c: Candidate) -> bool:
            return all(r["latency_ok"] is not False and r["sram_bytes"] <= r["sram_budget"]
                       and r["flash_bytes"] <= r["flash_budget"]
                       for r in c.report_rows(self.budgets))

        pool = [c for c in self.candidates if meets(c)] or self.candidates
        return max(pool, key=lambda c: c.accuracy.get("validation", 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "budgets": [b.to_dict() for b in self.budgets],
                "candidates": [c.to_dict() for c in self.candidates], "epochs": self.epochs,
                "warnings": self.warnings, "fits": self.fits, "wall_s": self.wall_s,
                "out": self.out, "best": {"round": self.best.round,
                                          "arch_id": self.best.arch.id,
                                          "path": self.best.path}}

    def report(self) -> str:
        lines = [f"DNAS {self.config.space} on {', '.join(self.config.devices)}: "
                 f"{len(self.candidates)} round(s), {self.wall_s:.0f} s"]
        for c in self.candidates:
            acc = ", ".join(f"{k} {v:.3f}" for k, v in c.accuracy.items())
            lines.append(f"round {c.round}: {c.arch.name}  {c.predicted.ops / 1e6:.2f} Mops, "
                         f"int8 accuracy: {acc}")
            for r in c.report_rows(self.budgets):
                pred = r["predicted_ms"]
                lo, hi = r["interval_ms"]
                meas = r["measured_ms"]
                what = "cycle model" if str(r["device"]).startswith(("virtual:", "renode:")) \
                    else "measured"
                line = f"  {r['device']}: predicted {pred:.2f} ms [{lo:.2f}, {hi:.2f}]" \
                    if pred is not None else f"  {r['device']}: no latency model"
                if meas is not None:
                    line += (f", {what} {meas:.2f} ms ({r['error_pct']:+.1f} %)"
                             + (f", budget {r['latency_budget_ms']:g} ms "
                                f"{'met' if r['latency_ok'] else 'MISSED'}"
                                if r["latency_budget_ms"] is not None else ""))
                line += (f"; arena {r['sram_bytes']:,}/{r['sram_budget']:,} B, plan "
                         f"{r['flash_bytes']:,}/{r['flash_budget']:,} B")
                lines.append(line)
        best = self.best
        lines.append(f"best: round {best.round}, {best.path} (most accurate on the validation "
                     "split of the models within every budget)")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


Progress = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# Budgets, feasibility and repair
# --------------------------------------------------------------------------------------------


def restricted_choices(space: str, max_width: int | None) -> dict[str, tuple[Choice, ...]]:
    """Each node's choices, widths capped at ``max_width`` as a campaign caps them
    (:func:`search.campaign.restrict_widths`), so bootstrap and search share one sub-space."""
    from search.campaign import restrict_widths

    sp = get_space(space) if max_width is None else restrict_widths(space, max_width)
    return {node.name: node.choices for node in sp.nodes}


def smallest(rs: RelaxedSpace) -> Architecture:
    """The cheapest architecture: every width its smallest, every optional block skipped."""
    choices: dict[str, Choice | None] = {}
    for name, allowed in rs.choices.items():
        choices[name] = SKIP if SKIP in allowed else min(allowed)  # type: ignore[type-var]
    for node in rs.space.nodes:
        if node.active_if is not None and choices[node.active_if] == SKIP:
            choices[node.name] = None
    return Architecture(rs.space.name, choices, rs.input_shape)


def check_feasible(model: CostModel, budgets: Sequence[Budget]) -> None:
    """Refuse a budget that no architecture of the (sub-)space meets."""
    small = model.arch_costs(smallest(model.rs))
    broken = small.violations(budgets)
    if broken:
        raise SearchError(
            f"no architecture of the {model.rs.space.name} space meets the budget: its smallest "
            f"({small.arch.name}, {small.ops / 1e6:.2f} Mops) already breaks it: "
            + "; ".join(broken) + ". Raise the budget (e.g. --latency-ms above the predicted "
            "figure) or choose a faster board.")


def repair(model: CostModel, arch: Architecture, alpha: dict[str, np.ndarray],
           budgets: Sequence[Budget], *, latency_margin: dict[str, float]) -> Architecture:
    """The architecture nearest ``arch`` (by logit mass) that meets every budget."""
    rs = model.rs

    def excess(costs: ArchCosts) -> float:
        total = 0.0
        for b in budgets:
            total += max(costs.sram_bytes[b.device] / b.sram_bytes - 1.0, 0.0)
            total += max(costs.flash_bytes[b.device] / b.flash_bytes - 1.0, 0.0)
            if b.latency_ms is not None and b.device in costs.latency_ms:
                target = b.latency_ms * latency_margin.get(b.device, 1.0)
                total += max(costs.latency_ms[b.device] / target - 1.0, 0.0)
        return total

    current = arch
    costs = model.arch_costs(current)
    while excess(costs) > 0:
        best: tuple[float, Architecture, ArchCosts] | None = None
        for node in rs.space.nodes:
            value = current.choices.get(node.name)
            if value is None:
                continue
            allowed = list(rs.choices[node.name])
            if node.kind == "depth":
                if value == SKIP or SKIP not in allowed:
                    continue
                new_value: Choice = SKIP
            else:
                smaller = [c for c in allowed if c < value]  # type: ignore[operator]
                if not smaller:
                    continue
                new_value = max(smaller)  # type: ignore[type-var]
            choices = dict(current.choices)
            choices[node.name] = new_value
            for n in rs.space.nodes:  # a kept-again node needs a width; skip clears it
                if n.active_if == node.name and new_value == SKIP:
                    choices[n.name] = None
            cand = Architecture(rs.space.name, choices, rs.input_shape)
            c = model.arch_costs(cand)
            gain = excess(costs) - excess(c)
            if gain <= 0:
                continue
            a = alpha[node.name]
            loss = float(a[allowed.index(value)] - a[allowed.index(new_value)])
            score = gain / (max(loss, 0.0) + 1e-3)
            if best is None or score > best[0]:
                best = (score, cand, c)
        if best is None:
            break  # nothing lowers the excess: check_feasible has the word on it
        _, current, costs = best
    return current


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


class _Search:
    """The supernet, the logits and their optimizers, with checkpointing."""

    def __init__(self, cfg: SearchConfig, rs: RelaxedSpace, classes: int, out: Path) -> None:
        from search.dnas.supernet import Supernet
        from search.keras_builders import import_keras

        tf, keras = import_keras()
        self.tf, self.keras = tf, keras
        self.cfg, self.rs, self.out = cfg, rs, out
        tf.config.experimental.enable_op_determinism()  # same seed, same architecture
        keras.utils.set_random_seed(cfg.seed)
        self.net = Supernet(rs, classes, seed=cfg.seed)
        self.alpha = {n: tf.Variable(tf.zeros(len(c)), name=f"alpha_{n.replace('.', '_')}")
                      for n, c in rs.choices.items()}
        self.opt_w = keras.optimizers.Adam(cfg.lr_weights)
        self.opt_a = keras.optimizers.Adam(cfg.lr_arch)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.names = list(rs.choices)
        self.loaded_epoch = 0  # epochs the checkpoint held when the run resumed

    def build(self, x: np.ndarray) -> None:
        """Create every variable (a forward pass and a zero step of each optimizer)."""
        tf = self.tf
        z = {n: tf.nn.softmax(a) for n, a in self.alpha.items()}
        self.net(tf.constant(x[:1]), z, training=False)
        wv = self.net.trainable_variables
        self.opt_w.build(wv)
        self.opt_a.build(list(self.alpha.values()))

    def sample_z(self, tau: Any, seed: Any, uniform: bool) -> dict[str, Any]:
        """Gumbel-softmax weights of every node (stateless: ``seed`` fixes the draw). Soft
        samples: tried against straight-through one-hot samples (Jang et al. ICLR 2017
        §2.2) on synthetic KWS, the supernet trained far slower (cross-entropy 2.35 against
        1.79 after 10 epochs) and the search chose smaller networks."""
        tf = self.tf
        z = {}
        for i, (n, a) in enumerate(self.alpha.items()):
            u = tf.random.stateless_uniform(a.shape, seed=tf.stack([seed, tf.constant(
                i, tf.int64)]), minval=1e-6, maxval=1.0 - 1e-6)
            g = -tf.math.log(-tf.math.log(u))
            logits = (tf.zeros_like(a) if uniform else a) + g
            z[n] = tf.nn.softmax(logits / tau)
        return z

    # -- checkpoints ------------------------------------------------------------------------

    def _state(self) -> list[Any]:
        return [*self.net.variables, *self.alpha.values(), *self.opt_w.variables,
                *self.opt_a.variables]

    def save(self, epoch: int) -> None:
        arrays = {f"v{i}": np.asarray(v.numpy()) for i, v in enumerate(self._state())}
        tmp = self.out / (CHECKPOINT + ".tmp.npz")
        arrays["epoch"] = np.asarray(epoch)
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(self.out / CHECKPOINT)

    def load(self) -> int:
        """The epochs already done (0 when there is no checkpoint)."""
        path = self.out / CHECKPOINT
        if not path.is_file():
            return 0
        with np.load(path) as f:
            state = self._state()
            if len(f.files) - 1 != len(state):
                raise SearchError(f"{path} does not belong to this search (its variables "
                                  "differ); remove the folder or choose another --out")
            for i, v in enumerate(state):
                v.assign(f[f"v{i}"])
            self.loaded_epoch = int(f["epoch"])
            return self.loaded_epoch


def read_journal(out: Path) -> list[dict[str, Any]]:
    """The records of ``<out>/journal.jsonl`` (a torn last line, from a crash, is dropped)."""
    path = out / JOURNAL
    records = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _tau(cfg: SearchConfig, epoch: int) -> float:
    if cfg.epochs <= 1:
        return cfg.tau1
    return float(cfg.tau0 * (cfg.tau1 / cfg.tau0) ** (epoch / (cfg.epochs - 1)))


def search_architecture(cfg: SearchConfig, data: Any, model: CostModel, out: Path, *,
                        start_epoch_offset: int = 0, state: _Search | None = None,
                        progress: Progress | None = None,
                        on_epoch: Callable[[dict[str, Any]], None] | None = None,
                        ) -> tuple[Architecture, list[dict[str, Any]], _Search]:
    """Run (or resume) the search epochs; returns the most probable architecture, the epoch
    records and the search state (for a refinement round)."""
    say = progress or (lambda _m: None)
    rs = model.rs
    s = state or _Search(cfg, rs, len(data.classes), out)
    tf = s.tf
    if state is None:
        s.build(data.x_train)
    budgets = model.budgets
    warmup = cfg.warmup if cfg.warmup is not None else max(1, cfg.epochs // 4)
    margins = {b.device: latency_margin(model, b.device) for b in budgets}
    keys = []
    for b in budgets:
        keys += [(f"sram:{b.device}", float(b.sram_bytes)),
                 (f"flash:{b.device}", float(b.flash_bytes))]
        if b.latency_ms is not None and b.device in model.latency:
            keys.append((f"latency:{b.device}", b.latency_ms * margins[b.device]))
    raw_keys = [k for k, _ in keys]
    limits = tf.constant([v for _, v in keys], tf.float32)

    def st_ceil(x: Any) -> Any:
        half = x / 2.0
        return half + tf.stop_gradient(tf.math.ceil(half) - half)

    @tf.function(reduce_retracing=True, autograph=False)
    def weight_step(x: Any, y: Any, tau: Any, seed: Any, uniform: bool) -> Any:
        z = s.sample_z(tau, seed, uniform)
        z = {n: tf.stop_gradient(v) for n, v in z.items()}
        with tf.GradientTape() as tape:
            loss = s.loss_fn(y, s.net(x, z, training=True))
        wv = s.net.trainable_variables
        s.opt_w.apply_gradients(zip(tape.gradient(loss, wv), wv, strict=True))
        return loss

    @tf.function(reduce_retracing=True, autograph=False)
    def arch_step(x: Any, y: Any, tau: Any, seed: Any, lam: Any, corr: Any) -> Any:
        with tf.GradientTape() as tape:
            z = s.sample_z(tau, seed, False)
            # Batch statistics: the moving ones average over every sampled sub-network.
            ce = s.loss_fn(y, s.net(x, z, training=True))
            raw = model.raw(z, ceil=st_ceil)
            costs = tf.stack([tf.cast(raw[k], tf.float32) for k in raw_keys]) + corr
            penalty = tf.reduce_sum(tf.nn.relu(costs / limits - 1.0))
            loss = ce + lam * penalty
        av = list(s.alpha.values())
        s.opt_a.apply_gradients(zip(tape.gradient(loss, av), av, strict=True))
        return ce, penalty

    # A later round resumes where an interrupted run's checkpoint left it, too.
    done = s.load() if state is None else max(start_epoch_offset, s.loaded_epoch)
    if done:
        say(f"resuming after epoch {done} ({out / CHECKPOINT})")
    records = [rec for rec in read_journal(out) if rec.get("event") == "epoch"
               and rec.get("epoch", 0) <= done]
    journal = out / JOURNAL
    total = cfg.epochs + start_epoch_offset
    n_train, n_val = len(data.x_train), len(data.x_val)
    for epoch in range(done, total):
        t0 = time.time()
        local = epoch - start_epoch_offset
        tau = _tau(cfg, local)
        searching = local >= warmup
        ramp = max(1, cfg.epochs - warmup)
        lam = cfg.lambda_max * min(1.0, (local - warmup + 1) / ramp) if searching else 0.0
        rng = np.random.default_rng([cfg.seed, epoch])
        order = rng.permutation(n_train)
        losses, ces, pens = [], [], []
        for i in range(0, n_train, cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            step_seed = int(rng.integers(2**31))
            losses.append(float(weight_step(
                tf.constant(data.x_train[idx]), tf.constant(data.y_train[idx]),
                tf.constant(tau, tf.float32), tf.constant(step_seed, tf.int64),
                not searching)))
            if searching and n_val:
                vidx = rng.integers(0, n_val, size=min(cfg.batch_size, n_val))
                probs = {n: tf.nn.softmax(a).numpy() for n, a in s.alpha.items()}
                current = argmax_arch(rs, probs)
                corr = model.corrections(current)
                ce, pen = arch_step(
                    tf.constant(data.x_val[vidx]), tf.constant(data.y_val[vidx]),
                    tf.constant(tau, tf.float32), tf.constant(step_seed + 1, tf.int64),
                    tf.constant(lam, tf.float32),
                    tf.constant([corr.get(k, 0.0) for k in raw_keys], tf.float32))
                ces.append(float(ce))
                pens.append(float(pen))
        probs = {n: tf.nn.softmax(a).numpy() for n, a in s.alpha.items()}
        current = argmax_arch(rs, probs)
        costs = model.arch_costs(current)
        val_acc = _supernet_accuracy(s, data, probs)
        rec = {"event": "epoch", "epoch": epoch + 1, "round_epoch": local + 1, "tau": tau,
               "lambda": lam, "loss": float(np.mean(losses)) if losses else None,
               "arch_ce": float(np.mean(ces)) if ces else None,
               "penalty": float(np.mean(pens)) if pens else None, "val_acc": val_acc,
               "arch_id": current.id, "arch": current.to_dict(), "costs": costs.to_dict(),
               "entropy": float(np.mean([-(p * np.log(p + 1e-12)).sum()
                                         for p in probs.values()])),
               "wall_s": time.time() - t0}
        records.append(rec)
        s.save(epoch + 1)
        with journal.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        if on_epoch is not None:
            on_epoch(rec)
        say(_epoch_line(rec, budgets, total))
    probs = {n: s.alpha[n].numpy() for n in s.alpha}
    arch = argmax_arch(rs, {n: np.exp(a - a.max()) for n, a in probs.items()})
    return arch, records, s


def latency_margin(model: CostModel, device: str) -> float:
    """The share of the latency budget the search aims at: below it by the fit's upper
    prediction interval (a model predicted at its target is then measured within budget)."""
    lm = model.latency.get(device)
    if lm is None:
        return 1.0
    # The twin's error band against silicon is not added: the budget is checked on the same
    # twin the fit was made on.
    return 1.0 / (1.0 + max(lm.rel_hi, 0.0))


def _supernet_accuracy(s: _Search, data: Any, probs: dict[str, np.ndarray]) -> float:
    """Validation accuracy of the supernet at the most probable architecture, with batch
    normalization on the batch's statistics (the moving ones average over every sub-network
    the steps sampled, not this one's: single-path NAS evaluates the same way)."""
    tf = s.tf
    z = {}
    for n, p in probs.items():
        one = np.zeros_like(p)
        one[int(np.argmax(p))] = 1.0
        z[n] = tf.constant(one, tf.float32)
    hits = 0
    for i in range(0, len(data.x_val), 256):
        logits = s.net(tf.constant(data.x_val[i:i + 256]), z, training=True)
        hits += int(np.sum(np.argmax(logits.numpy(), axis=-1) == data.y_val[i:i + 256]))
    return hits / max(1, len(data.x_val))


def _epoch_line(rec: dict[str, Any], budgets: Sequence[Budget], total: int) -> str:
    c = rec["costs"]
    parts = [f"epoch {rec['epoch']}/{total}", f"tau {rec['tau']:.2f}",
             f"loss {rec['loss']:.3f}" if rec["loss"] is not None else "",
             f"val acc {rec['val_acc']:.3f}", f"{c['ops'] / 1e6:.2f} Mops"]
    for b in budgets:
        d = b.device
        lat = c["latency_ms"].get(d)
        seg = f"{d.split(':')[-1]}: "
        if lat is not None:
            seg += f"{lat:.1f}/{b.latency_ms:g} ms " if b.latency_ms else f"{lat:.1f} ms "
        seg += (f"arena {c['sram_bytes'][d] / 1024:.0f}/{b.sram_bytes / 1024:.0f} KiB "
                f"plan {c['flash_bytes'][d] / 1024:.0f}/{b.flash_bytes / 1024:.0f} KiB")
        parts.append(seg)
    return "  ".join(p for p in parts if p)
