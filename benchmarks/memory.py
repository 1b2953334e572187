"""Peak host memory of V's and M's training against the dataset's size: the
streaming loaders keep the data under ``max_resident_bytes`` whatever the size.

`python -m benchmarks.memory [--quick] [--json F]` writes a CarRacing-shaped
dataset (64x64x3 uint8 frames of noise, so nothing compresses; shards of one
499-step episode) and trains V then M of a small conv VAE on it in a fresh process per
case, reading the process's peak resident set (``ru_maxrss``):

- ``base``: a dataset of one shard, the model state and runtime alone;
- ``streamed``: a dataset several times the cap, streamed under it;
- ``in memory``: the same dataset with a cap above its size (loaded whole).

What the data costs is a case's peak minus ``base``'s: under the cap plus a
shard while streaming, about the dataset's size when loaded whole.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
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


def train(dataset: str, cap: int) -> dict:
    """Returns peak RSS and the trainer's own data peaks after V (one epoch)
    and M (one epoch) on ``dataset`` with ``max_resident_bytes=cap``."""
    from janus_jax.configs import MDNRNNConfig, VAEConfig
    from janus_jax.train import WorldModelTrainer
    from janus_jax.train.config import WorldModelTrainingConfig
    from janus_jax.train.loop import RunIO

    config = WorldModelTrainingConfig(
        vae_epochs=1,
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
    io = RunIO(progress=False)
    trainer = WorldModelTrainer("CarRacing-v3", config, dataset=dataset, io=io)
    trainer.train_world_model()
    return {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "data_peak_mb": {k: v / MB for k, v in trainer.data_peak_bytes.items()},
        "seconds": time.perf_counter() - start,
    }


def _child(dataset: Path, cap: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--child", str(dataset), str(cap)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict:
    """Returns the three cases' measurements (see the module docstring)."""
    cap = (24 if quick else 64) * MB
    episodes = 12 if quick else 32
    with tempfile.TemporaryDirectory(prefix="janus-jax-memory-") as tmp:
        small, big = Path(tmp) / "small", Path(tmp) / "big"
        write_dataset(small, 1, SHARD_STEPS - 1)
        write_dataset(big, episodes, SHARD_STEPS - 1)
        size = sum(f.stat().st_size for f in big.glob("*.npz"))
        cases = {
            "base": _child(small, cap),
            "streamed": _child(big, cap),
            "in memory": _child(big, 4 * size),
        }
    base = cases["base"]["peak_rss_mb"]
    for case in cases.values():
        case["above_base_mb"] = case["peak_rss_mb"] - base
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
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(train(args.child[0], int(args.child[1]))))
        return 0
    result = run(args.quick)
    print(
        f"dataset {result['dataset_mb']:.0f} MB, cap {result['cap_mb']:.0f} MB "
        f"({result['dataset_over_cap']:.1f}x the cap)"
    )
    for name, case in result["cases"].items():
        peaks = ", ".join(f"{k} {v:.0f}" for k, v in case["data_peak_mb"].items())
        print(
            f"  {name:>9}: peak RSS {case['peak_rss_mb']:.0f} MB "
            f"({case['above_base_mb']:+.0f} MB over base; data held: {peaks} MB; "
            f"{case['seconds']:.0f} s)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
