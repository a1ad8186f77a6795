"""Head-to-head: gradleak's ``ig`` recipe against breaching 0.1.2's ``invertinggradients`` preset.

Both attacks see the same model (same weights), the same FedSGD gradient of the same natural
32x32 photo(s) that the project never used (``gl.data.load("holdout", ...)``), the same
labels (shared with the server: the IG threat model and breaching's single-image case), the
same normalisation (CIFAR-10's), the same iteration and restart counts, the same seeds, and
one torch thread count. PSNR is computed for both by the same function (``gl.evaluate``).
Breaching's attack code and preset run unchanged; ``benchmarks/breaching_ref`` explains how
it is imported without torchvision.

Targets (the issue): mean PSNR of ``ig`` >= breaching's mean - 0.5 dB over 8 photos on LeNet
and on a small BN ConvNet; iterations per second >= 1.5x breaching's with 1 restart and
>= 3x with 4 restarts, at batch 4.

Speed is iterations / time of one ``reconstruct`` call (all restarts included), warm-up run
first, the two libraries interleaved, best of ``--repeats``. With one torch thread (the
default) the clock is the process' CPU time (``--clock cpu``): on a machine shared with
other jobs it equals the wall time the run takes on an idle core, while the wall clock
counts time the scheduler gave to other processes. ``--clock wall`` uses the wall clock.

Run (after ``bash benchmarks/setup_breaching.sh``; a plain ``python3`` re-runs itself in
that venv)::

    python3 benchmarks/compare_breaching.py --quick
    python3 benchmarks/compare_breaching.py --iterations 2000 --json runs/compare.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
VENV_PYTHON = HERE.parent / ".cache" / "breaching-venv" / "bin" / "python"


def _use_reference_venv() -> None:
    """Re-runs this script in the reference venv when this interpreter lacks breaching."""
    if importlib.util.find_spec("breaching") is not None:
        return
    in_venv = Path(sys.prefix).resolve() == VENV_PYTHON.parent.parent.resolve()
    if VENV_PYTHON.is_file() and not in_venv:  # (the venv's python is a symlink: no resolve)
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.exit(
        "breaching 0.1.2 is not installed: run `bash benchmarks/setup_breaching.sh` "
        "(an isolated venv in .cache/breaching-venv; this script then uses it)"
    )


if __name__ == "__main__":
    _use_reference_venv()
sys.path.insert(0, str(HERE))

import breaching_ref  # noqa: E402

import gradleak as gl  # noqa: E402
from gradleak.attacks.optimization.compilation import resolve_compile  # noqa: E402

# CIFAR-10 normalisation: the IG paper's and breaching's CIFAR10 case (config/case/data).
CIFAR10_NORM = (
    (0.4914672374725342, 0.4822617471218109, 0.4467701315879822),
    (0.24703224003314972, 0.24348513782024384, 0.26158785820007324),
)
PSNR_TOLERANCE_DB = 0.5
SPEEDUP_TARGETS = {1: 1.5, 4: 3.0}
TIMING_BATCH = 4
SIDES = ("gradleak", "breaching")


# ----------------------------------------------------------------------------- inputs
def load_photos(n: int, seed: int) -> tuple[Tensor, Tensor, str]:
    """Natural 32x32 photos the project never used (its hold-out set), and their labels."""
    images, labels = gl.data.load("holdout", size=32, n=n, seed=seed)
    return images.float(), labels.long(), f"gl.data.load('holdout', n={n}, seed={seed})"


def build_model(name: str, width: int, seed: int, bn_mode: str) -> nn.Module:
    """The attacked model, with fixed-seed random weights (identical for both attacks)."""
    torch.manual_seed(seed)
    model = gl.models.create(name, width=width) if name == "convnet" else gl.models.create(name)
    return model.train() if bn_mode == "train" else model.eval()


def observe(model: nn.Module, images: Tensor, labels: Tensor) -> tuple[Any, Any]:
    """The FedSGD gradient both attacks invert (labels shared: the IG threat model)."""
    return gl.simulate(model, images, labels, share_labels=True, normalization=CIFAR10_NORM)


# ----------------------------------------------------------------------------- attacks
@dataclass
class Run:
    images: Tensor
    wall: float
    cpu: float


def run_gradleak(obs: Any, iterations: int, restarts: int, seed: int,
                 overrides: dict[str, Any]) -> Run:
    t0, c0 = time.perf_counter(), time.process_time()
    rec = gl.reconstruct(obs, attack="ig", iterations=iterations, restarts=restarts, seed=seed,
                         **overrides)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Run(rec.images.detach(), wall, cpu)


def run_breaching(obs: Any, iterations: int, restarts: int, seed: int,
                  overrides: dict[str, Any]) -> Run:
    res = breaching_ref.reconstruct(obs, iterations=iterations, restarts=restarts, seed=seed)
    return Run(res.images, res.seconds, res.cpu_seconds)


ATTACKS: dict[str, Callable[[Any, int, int, int, dict[str, Any]], Run]] = {
    "gradleak": run_gradleak,
    "breaching": run_breaching,
}


def psnr(images: Tensor, truth: Any) -> float:
    """Mean PSNR by gradleak's own evaluation (the same function for both attacks)."""
    rec = gl.Reconstruction(images=images, labels=None, attack="compare", config={})
    return float(gl.evaluate(rec, truth)["psnr"])


# ----------------------------------------------------------------------------- measurements
@dataclass
class PsnrRow:
    model: str
    setting: str
    per_photo: dict[str, list[float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def mean(self, side: str) -> float:
        return statistics.fmean(self.per_photo[side])

    @property
    def diff(self) -> float:
        return self.mean("gradleak") - self.mean("breaching")

    @property
    def passed(self) -> bool:
        return self.diff >= -PSNR_TOLERANCE_DB


@dataclass
class SpeedRow:
    model: str
    setting: str
    restarts: int
    clock: str
    its_cpu: dict[str, list[float]] = field(default_factory=dict)
    its_wall: dict[str, list[float]] = field(default_factory=dict)
    compile_seconds: float = 0.0  # wall time of the first (compiling) call; 0: eager

    def best(self, side: str) -> float:
        return max((self.its_cpu if self.clock == "cpu" else self.its_wall)[side])

    @property
    def speedup(self) -> float:
        return self.best("gradleak") / self.best("breaching")

    @property
    def passed(self) -> bool:
        return self.speedup >= SPEEDUP_TARGETS[self.restarts]


def measure_psnr(
    model_name: str, model: nn.Module, photos: Tensor, labels: Tensor, args: argparse.Namespace
) -> PsnrRow:
    """Batch 1, one photo at a time; photo i uses seed ``args.seed + i`` on both sides."""
    row = PsnrRow(model_name, f"B=1 it={args.iterations} R={args.restarts} n={len(photos)}")
    row.per_photo = {side: [] for side in SIDES}
    row.seconds = {side: 0.0 for side in SIDES}
    for i in range(len(photos)):
        obs, truth = observe(model, photos[i : i + 1], labels[i : i + 1])
        for side in SIDES:
            run = ATTACKS[side](obs, args.iterations, args.restarts, args.seed + i, args.ig_set)
            row.per_photo[side].append(psnr(run.images, truth))
            row.seconds[side] += run.wall
        print(
            f"  {model_name} photo {i}: gradleak {row.per_photo['gradleak'][-1]:6.2f} dB, "
            f"breaching {row.per_photo['breaching'][-1]:6.2f} dB",
            flush=True,
        )
    return row


def speed_overrides(obs: Any, restarts: int, args: argparse.Namespace) -> dict[str, Any]:
    """The ``ig`` settings timed: the user's, with ``compile`` as a default-length run has it.

    ``compile="auto"`` decides from the run length; a timing run of a few hundred iterations
    would run eagerly although the recipe's default run (24 000 iterations) compiles. The
    timing therefore uses the decision of a default-length run (``--ig-set compile=...``
    overrides it); the one-off compile time is measured and reported separately.
    """
    overrides = dict(args.ig_set)
    if "compile" not in overrides:
        default_iterations = gl.attacks.create("ig").config.iterations
        overrides["compile"] = resolve_compile("auto", obs, batch=TIMING_BATCH, restarts=restarts,
                                               iterations=default_iterations)
    return overrides


def measure_speed(
    model_name: str, model: nn.Module, photos: Tensor, labels: Tensor, restarts: int,
    args: argparse.Namespace,
) -> SpeedRow:
    """Steady-state iterations per second of one reconstruct call at batch 4."""
    obs, _ = observe(model, photos[:TIMING_BATCH], labels[:TIMING_BATCH])
    overrides = {"gradleak": speed_overrides(obs, restarts, args), "breaching": {}}
    compiled = bool(overrides["gradleak"]["compile"])
    row = SpeedRow(model_name, f"B={TIMING_BATCH} it={args.timing_iterations}"
                   f"{' compiled' if compiled else ''}", restarts, args.clock)
    row.its_cpu = {side: [] for side in SIDES}
    row.its_wall = {side: [] for side in SIDES}
    for side in SIDES:  # warm-up: allocator, lazy imports, torch.compile (cached per obs)
        warm = ATTACKS[side](obs, 3, restarts, args.seed, overrides[side])
        if side == "gradleak" and compiled:
            row.compile_seconds = warm.wall
    for rep in range(args.repeats):  # interleaved, so load from other jobs hits both sides
        order = SIDES if rep % 2 == 0 else SIDES[::-1]
        for side in order:
            run = ATTACKS[side](obs, args.timing_iterations, restarts, args.seed + rep,
                                overrides[side])
            row.its_cpu[side].append(args.timing_iterations / run.cpu)
            row.its_wall[side].append(args.timing_iterations / run.wall)
    extra = f", first call (compiling) {row.compile_seconds:.1f} s wall" if compiled else ""
    print(
        f"  {model_name} R={restarts}: gradleak {row.best('gradleak'):7.1f} it/s, "
        f"breaching {row.best('breaching'):7.1f} it/s ({args.clock} clock{extra})",
        flush=True,
    )
    return row


# ----------------------------------------------------------------------------- report
def _mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render(psnr_rows: list[PsnrRow], speed_rows: list[SpeedRow]) -> str:
    """The results table."""
    head = (
        f"{'model':<14} {'setting':<26} {'gl PSNR':>8} {'br PSNR':>8} {'diff':>6} "
        f"{'gl it/s':>8} {'br it/s':>8} {'speedup':>7}  target"
    )
    lines = [head, "-" * len(head)]
    for p in psnr_rows:
        lines.append(
            f"{p.model:<14} {p.setting:<26} {p.mean('gradleak'):8.2f} {p.mean('breaching'):8.2f} "
            f"{p.diff:+6.2f} {'':>8} {'':>8} {'':>7}  {_mark(p.passed)} "
            f"(diff >= -{PSNR_TOLERANCE_DB} dB)"
        )
    for s in speed_rows:
        lines.append(
            f"{s.model:<14} {s.setting + f' R={s.restarts}':<26} {'':>8} {'':>8} {'':>6} "
            f"{s.best('gradleak'):8.1f} {s.best('breaching'):8.1f} {s.speedup:6.2f}x  "
            f"{_mark(s.passed)} (>= {SPEEDUP_TARGETS[s.restarts]}x)"
        )
    return "\n".join(lines)


def _override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=JSON, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=2000, help="iterations of the PSNR runs")
    ap.add_argument("--photos", type=int, default=8, help="hold-out photos for PSNR (batch 1)")
    ap.add_argument("--restarts", type=int, default=1, help="restarts of the PSNR runs")
    ap.add_argument("--timing-iterations", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats (best is kept)")
    ap.add_argument("--models", default="lenet,convnet")
    ap.add_argument("--width", type=int, default=16, help="ConvNet width (IG paper: 64)")
    ap.add_argument("--bn-mode", choices=("train", "eval"), default="train",
                    help="BN threat model: batch statistics (train) or shared running stats")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, both attacks")
    ap.add_argument("--clock", choices=("cpu", "wall"), default=None,
                    help="speed clock (default: cpu with 1 thread, else wall)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-psnr", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--ig-set", type=_override, action="append", default=[], metavar="KEY=JSON",
                    help="override a field of gradleak's ig recipe (diagnostics only; the "
                         "headline comparison uses the recipe's defaults)")
    ap.add_argument("--json", type=Path, default=None, help="write all numbers here")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 100 iterations, 2 photos, 20 timing iterations, 1 repeat")
    args = ap.parse_args(argv)
    if args.quick:
        args.iterations, args.photos, args.timing_iterations, args.repeats = 100, 2, 20, 1
    if args.clock is None:
        args.clock = "cpu" if args.threads == 1 else "wall"
    args.ig_set = dict(args.ig_set)
    return args


def main(argv: list[str] | None = None) -> int:
    """Runs the comparison; exit status 0 iff every target is met."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(args.threads)
    except RuntimeError:
        pass
    breaching_ref.load_attacks()
    n_photos = max(args.photos, 0 if args.skip_speed else TIMING_BATCH)
    photos, labels, source = load_photos(n_photos, args.seed)
    print(
        f"gradleak {gl.__version__} 'ig'{' ' + str(args.ig_set) if args.ig_set else ''} vs "
        f"breaching {breaching_ref.REFERENCE_VERSION} '{breaching_ref.PRESET}' | torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s), {args.clock} clock, "
        f"{platform.machine()} | photos: {source} | BN mode: {args.bn_mode}",
        flush=True,
    )
    psnr_rows: list[PsnrRow] = []
    speed_rows: list[SpeedRow] = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        label = f"convnet(w={args.width})" if name == "convnet" else name
        model = build_model(name, args.width, args.seed, args.bn_mode)
        if not args.skip_psnr and args.photos > 0:
            psnr_rows.append(measure_psnr(label, model, photos[: args.photos],
                                          labels[: args.photos], args))
        if not args.skip_speed:
            for restarts in SPEEDUP_TARGETS:
                speed_rows.append(measure_speed(label, model, photos, labels, restarts, args))
    print("\n" + render(psnr_rows, speed_rows))
    ok = all(r.passed for r in psnr_rows) and all(r.passed for r in speed_rows)
    print(f"\nall targets met: {ok}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({
            "settings": settings, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "photos": source,
            "psnr": [asdict(r) | {"diff": r.diff, "passed": r.passed} for r in psnr_rows],
            "speed": [asdict(r) | {"speedup": r.speedup, "passed": r.passed} for r in speed_rows],
            "all_passed": ok,
        }, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
