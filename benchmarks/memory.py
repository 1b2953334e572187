"""Peak host memory of V's and M's training against the dataset's size: the
streaming loaders keep the data under ``max_resident_bytes`` whatever the size.

`python -m benchmarks.memory [--quick] [--json F]` writes a CarRacing-shaped
dataset (64x64x3 uint8 frames of noise, so nothing compresses; shards of one
499-step episode; 800 MB against a 256 MB cap, --quick 74 MB against 24 MB)
and trains V (a quarter epoch; --quick one) then M (an epoch) of a small conv
VAE on it, in a fresh process per case:

- ``base``: a dataset of one shard, the model state and runtime alone;
- ``streamed``: a dataset several times the cap, streamed under it;
- ``in memory``: the same dataset with a cap above its size (loaded whole).

The resident set is sampled every 10 ms; each phase's figure is its most once
its first chunk has run (compiling the chunk takes more memory for a moment
than small data does, and is the same in every case). What the data costs is
a case's figure minus ``base``'s: under the cap while streaming, about the
dataset's size when loaded whole.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MB = 1024**2
FRAME = (64, 64, 3)
SHARD_STEPS = 500  # one 499-step episode (6.1 MB of frames) a shard


def write_dataset(path: Path, episodes: int, steps: int, seed: int = 0) -> None:
    """Writes ``episodes`` episodes of ``steps`` noise frames as CarRacing-v3's."""
    from janus_jax.data import DatasetWriter

    rng = np.random.default_rng(seed)
    with DatasetWriter(
        path,
        env_id="CarRacing-v3",
        observation_shape=FRAME,
        observation_dtype="uint8",
        action_shape=(3,),
        action_dtype="float32",
        shard_steps=SHARD_STEPS,
    ) as writer:
        for _ in range(episodes):
            writer.add_episode(
                rng.integers(0, 256, (steps + 1, *FRAME), dtype=np.uint8),
                rng.uniform(0, 1, (steps, 3)).astype(np.float32),
                rng.normal(size=steps).astype(np.float32),
                np.zeros(steps, bool),
                np.arange(steps) == steps - 1,
            )


def train(dataset: str, cap: int, vae_epochs: float) -> dict:
    """Returns the resident set while V (``vae_epochs``) and M (one epoch) train on
    ``dataset`` with ``max_resident_bytes=cap``: sampled every 10 ms, its most
    in each phase's steady part (after the phase's first chunk, so compiling is
    left out) and overall, with the trainer's own data peaks."""
    from benchmarks.probes import rss_bytes
    from janus_jax.config.models import MDNRNNConfig, VAEConfig
    from janus_jax.config.training import WorldModelTrainingConfig
    from janus_jax.train import WorldModelTrainer
    from janus_jax.train.loop import RunIO

    samples: list[tuple[float, float]] = []
    firsts: dict[str, float] = {}
    done = threading.Event()

    def sample():
        while not done.is_set():
            samples.append((time.perf_counter(), rss_bytes() / MB))
            time.sleep(0.01)

    class Marks(RunIO):
        def log(self, phase, step, metrics, **extra):
            firsts.setdefault(phase, time.perf_counter())

    config = WorldModelTrainingConfig(
        vae_epochs=vae_epochs,
        mdn_epochs=1,
        vae_batch_size=64,
        mdn_batch_size=16,
        sequence_length=32,
        chunk_steps=20,
        max_resident_bytes=cap,
        vae=VAEConfig(latent_dim=16, hidden_channels=(8, 8, 16, 16)),
        mdn_rnn=MDNRNNConfig(latent_dim=16, action_dim=3, hidden_dim=32),
    )
    start = time.perf_counter()
    trainer = WorldModelTrainer(
        "CarRacing-v3", config, dataset=dataset, io=Marks(progress=False)
    )
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    trainer.train_world_model()
    ends = {"vae": firsts.get("mdn", time.perf_counter()), "mdn": time.perf_counter()}
    done.set()
    thread.join()

    def steady(phase):
        inside = [r for t, r in samples if firsts[phase] <= t <= ends[phase]]
        return max(inside) if inside else None

    return {
        "steady_rss_mb": {phase: steady(phase) for phase in ("vae", "mdn")},
        "peak_rss_mb": max(r for _, r in samples),
        "data_peak_mb": {k: v / MB for k, v in trainer.data_peak_bytes.items()},
        "seconds": time.perf_counter() - start,
    }


def _child(dataset: Path, cap: int, vae_epochs: float) -> dict:
    argv = ["--child", str(dataset), str(cap), str(vae_epochs)]
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", *argv],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict:
    """Returns the three cases' measurements (see the module docstring)."""
    # The data must dwarf what compiling leaves in the allocator (hundreds of
    # MB, reused by later arrays) for the resident set to show it.
    cap = (24 if quick else 256) * MB
    episodes = 12 if quick else 130
    vae_epochs = 1.0 if quick else 0.25
    with tempfile.TemporaryDirectory(prefix="janus-jax-memory-") as tmp:
        small, big = Path(tmp) / "small", Path(tmp) / "big"
        write_dataset(small, 1, SHARD_STEPS - 1)
        write_dataset(big, episodes, SHARD_STEPS - 1)
        size = sum(f.stat().st_size for f in big.glob("*.npz"))
        cases = {
            "base": _child(small, cap, vae_epochs),
            "streamed": _child(big, cap, vae_epochs),
            "in memory": _child(big, 4 * size, vae_epochs),
        }
    base = cases["base"]["steady_rss_mb"]
    for case in cases.values():
        case["steady_above_base_mb"] = {
            phase: rss - base[phase] for phase, rss in case["steady_rss_mb"].items()
        }
    return {
        "dataset_mb": size / MB,
        "cap_mb": cap / MB,
        "dataset_over_cap": size / cap,
        "cases": cases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("--quick", action="store_true", help="a smaller dataset")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        dataset, cap, vae_epochs = args.child
        print(json.dumps(train(dataset, int(cap), float(vae_epochs))))
        return 0
    result = run(args.quick)
    print(
        f"dataset {result['dataset_mb']:.0f} MB, cap {result['cap_mb']:.0f} MB "
        f"({result['dataset_over_cap']:.1f}x the cap)"
    )
    for name, case in result["cases"].items():
        held = case["data_peak_mb"]
        over = case["steady_above_base_mb"]
        print(
            f"  {name:>9}: training V {over['vae']:+5.0f} MB over base "
            f"(data held {held['vae']:.0f}), M {over['mdn']:+5.0f} MB "
            f"(data held {held['mdn']:.0f}); peak RSS {case['peak_rss_mb']:.0f} MB "
            f"with compiling; {case['seconds']:.0f} s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
