"""Pictures of a World Models run: reconstructions, dreams and learning curves.

Pure NumPy + matplotlib + imageio + pillow, no JAX: these run in the Python loop
around the jitted chunks. Figures are built on `matplotlib.figure.Figure` with an
Agg canvas, so global pyplot state (and any interactive backend) is never touched.
Every file is written to a temporary name in its directory and then renamed, so a
reader (or a crash) never sees half a picture.
"""

import math
from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from janus_jax.run import files

GAP = 2  # pixels between tiles and panels
GAP_GRAY = 128  # mid-gray, distinct from the black/white of most frames

_VAE_KEYS = ("vae/loss", "vae/reconstruction", "vae/kl")
_MDN_KEYS = ("mdn/loss", "mdn/latent_nll", "mdn/reward_mse", "mdn/done_bce")


def _write_atomically(path, write: Callable[[Path], None]) -> Path:
    """Returns `path` after `write(tmp)` filled a temp file that was renamed to it."""
    with files.atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def _save_figure(figure: Figure, path) -> Path:
    """Returns `path` after writing `figure` there as a PNG."""
    FigureCanvasAgg(figure)
    return _write_atomically(path, lambda tmp: figure.savefig(tmp, format="png"))


def _as_array(x, name: str) -> np.ndarray:
    """Returns `x` as a NumPy array: images [N, H, W, C] or vectors [N, O]."""
    x = np.asarray(x)
    if x.ndim not in (2, 4) or x.shape[0] == 0:
        raise ValueError(
            f"{name} has shape {x.shape}; expected images [N, H, W, C] or vectors "
            "[N, O] with N >= 1"
        )
    allowed = np.number if x.ndim == 2 else np.floating
    if not (np.issubdtype(x.dtype, allowed) or x.dtype == np.uint8):
        raise ValueError(
            f"{name} has dtype {x.dtype}; expected uint8 in [0, 255] or float in "
            "[0, 1] for images, any numeric dtype for vectors"
        )
    return x


# Channel colours for frames that are neither gray nor RGB (MinAtar's object
# layers): each layer gets its own colour, brightest layer wins.
_PALETTE = np.array(
    [[230, 80, 60], [80, 170, 230], [240, 200, 60], [120, 210, 110],
     [200, 110, 220], [250, 150, 70], [110, 220, 210], [230, 230, 230],
     [160, 120, 80], [250, 120, 170]], np.float32
)  # fmt: skip


def _to_rgb8(frames: np.ndarray) -> np.ndarray:
    """Returns uint8 RGB [N, H, W, 3] from frames [N, H, W, C], floats clipped;
    C other than 1 or 3 is drawn with one palette colour per channel."""
    channels = frames.shape[-1]
    if channels not in (1, 3):
        scaled = frames / 255.0 if frames.dtype == np.uint8 else frames
        colours = _PALETTE[np.arange(channels) % len(_PALETTE)] / 255.0
        frames = np.max(scaled[..., :, None] * colours, axis=-2)
    if frames.dtype != np.uint8:
        # NaN from a diverged model becomes black rather than undefined bytes.
        clipped = np.clip(np.nan_to_num(frames, nan=0.0), 0.0, 1.0)
        frames = np.round(clipped * 255.0).astype(np.uint8)
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r}; expected an integer >= 1")


def reconstruction_grid(real, recon, path, *, columns: int = 8) -> Path:
    """Returns the path of a PNG comparing observations with their reconstructions.

    Images `real`, `recon` [N, H, W, C] (C = 1 gray, 3 RGB, other: one colour per
    channel; uint8 or float in [0, 1]) are tiled in pairs of rows: up to `columns`
    real frames above their reconstructions, with 2-pixel mid-gray gaps. Vectors
    [N, O] give a figure with one bar chart (real beside reconstruction) for each
    of the first `columns` samples.
    """
    _check_positive_int(columns, "columns")
    real, recon = _as_array(real, "real"), _as_array(recon, "recon")
    if real.shape != recon.shape:
        raise ValueError(
            f"real has shape {real.shape} but recon has shape {recon.shape}; "
            "they must match"
        )
    if real.ndim == 2:
        return _vector_grid(real, recon, path, columns)
    real, recon = _to_rgb8(real), _to_rgb8(recon)
    n, height, width, _ = real.shape
    cols = min(columns, n)
    pair_rows = math.ceil(n / cols)
    grid_height = 2 * pair_rows * (height + GAP) - GAP
    canvas = np.full((grid_height, cols * (width + GAP) - GAP, 3), GAP_GRAY, np.uint8)
    for i in range(n):
        pair, col = divmod(i, cols)
        x = col * (width + GAP)
        for row, frames in ((2 * pair, real), (2 * pair + 1, recon)):
            y = row * (height + GAP)
            canvas[y : y + height, x : x + width] = frames[i]
    return _write_atomically(
        path, lambda tmp: Image.fromarray(canvas).save(tmp, format="PNG")
    )


def _vector_grid(real, recon, path, columns: int) -> Path:
    n = min(columns, real.shape[0])
    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    figure = Figure(figsize=(3.5 * ncols, 2.5 * nrows), layout="constrained")
    dims = np.arange(real.shape[1])
    for i in range(n):
        axes = figure.add_subplot(nrows, ncols, i + 1)
        axes.bar(dims - 0.2, real[i], width=0.4, label="real")
        axes.bar(dims + 0.2, recon[i], width=0.4, label="reconstruction")
        axes.set_title(f"sample {i}")
        axes.set_xlabel("observation dimension")
        if i == 0:
            axes.legend(fontsize="small")
    return _save_figure(figure, path)


def _caption_strip(width: int, panel_width: int, labels) -> np.ndarray:
    """Returns a dark RGB strip [h, width, 3] with one centred label per panel."""
    font = ImageFont.load_default()
    height = font.getbbox("realVAEdreamgy")[3] + 4
    strip = Image.new("RGB", (width, height), (32, 32, 32))
    draw = ImageDraw.Draw(strip)
    for i, label in enumerate(labels):
        text_width = draw.textlength(label, font=font)
        x = i * (panel_width + GAP) + max(0, (panel_width - text_width) // 2)
        draw.text((x, 2), label, fill=(255, 255, 255), font=font)
    return np.asarray(strip)


def _image_dream_frames(images: np.ndarray, scale: int) -> list[np.ndarray]:
    """Returns T frames [caption + H * scale, (3 * W + 4) * scale, 3] from the
    stacked uint8 RGB `images` [3, T, H, W, 3] (real, reconstruction, dream)."""
    real, recon, dream = images
    steps, height, width, _ = real.shape
    gap = np.full((steps, height, GAP, 3), GAP_GRAY, np.uint8)
    rows = np.concatenate([real, gap, recon, gap, dream], axis=2)
    # Integer nearest-neighbour upscaling keeps pixels crisp (and exact to test).
    rows = rows.repeat(scale, axis=1).repeat(scale, axis=2)
    caption = _caption_strip(rows.shape[2], width * scale, ("real", "VAE", "dream"))
    return [np.concatenate([caption, row], axis=0) for row in rows]


def _vector_dream_frames(values: np.ndarray, scale: int) -> list[np.ndarray]:
    """Returns T RGB bar-chart frames from the stacked vectors `values` [3, T, O]."""
    finite = values[np.isfinite(values)]
    # Limits over the whole sequence, so the axes stay still while bars move.
    low, high = min(0.0, finite.min(initial=0.0)), max(0.0, finite.max(initial=0.0))
    margin = 0.05 * (high - low) or 1.0
    dims = np.arange(values.shape[2])
    width = max(4.0, 0.4 * len(dims) + 2.0)
    figure = Figure(figsize=(width, 3.0), dpi=50 * scale, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_ylim(low - margin, high + margin)
    axes.set_xlabel("observation dimension")
    bars = [
        axes.bar(dims + (k - 1) * 0.27, values[k, 0], width=0.27, label=label)
        for k, label in enumerate(("real", "VAE", "dream"))
    ]
    axes.legend(loc="upper right", fontsize="small")
    frames = []
    for t in range(values.shape[1]):
        for k, container in enumerate(bars):
            for bar, value in zip(container, values[k, t], strict=True):
                bar.set_height(value)
        axes.set_title(f"t = {t}")
        canvas.draw()
        frames.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return frames


def dream_gif(real, recon, dream, path, *, fps: float = 10, scale: int = 2) -> Path:
    """Returns the path of a looping GIF: real | VAE reconstruction | dream per step.

    `real`, `recon`, `dream` are images [T, H, W, C] (as in ``reconstruction_grid``)
    or vectors [T, O]; lengths may differ and the shortest sets T. Images
    are upscaled by the integer `scale` (nearest neighbour) under a caption strip;
    vectors become grouped bar charts with fixed y-limits (`scale` sets the dpi).
    """
    _check_positive_int(scale, "scale")
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not fps > 0:
        raise ValueError(f"fps={fps!r}; expected a number > 0")
    named = {"real": real, "recon": recon, "dream": dream}
    arrays = [_as_array(x, name) for name, x in named.items()]
    shapes = [x.shape for x in arrays]
    if len({s[1:] for s in shapes}) != 1:
        raise ValueError(
            f"real, recon, dream have shapes {shapes}; all but the first (time) "
            "axis must match"
        )
    steps = min(s[0] for s in shapes)
    if arrays[0].ndim == 2:
        vectors = np.stack([x[:steps] for x in arrays]).astype(np.float64)
        frames = np.stack(_vector_dream_frames(vectors, scale))
    else:
        # To uint8 each on its own: the three may mix uint8 and float inputs.
        images = np.stack([_to_rgb8(x[:steps]) for x in arrays])
        frames = np.stack(_image_dream_frames(images, scale))

    def write(tmp: Path) -> None:
        # Pillow takes the frame duration in milliseconds; loop=0 loops forever.
        iio.imwrite(
            tmp, frames, extension=".gif", plugin="pillow", duration=1000 / fps, loop=0
        )

    return _write_atomically(path, write)


def _check_rows(rows: list[dict], source: str) -> list[dict]:
    """Returns the metrics rows, each checked to carry a string 'phase' and a
    numeric 'step' (ValueError naming ``source`` and the row otherwise)."""
    for number, row in enumerate(rows, start=1):
        if not (isinstance(row.get("phase"), str) and _is_number(row.get("step"))):
            raise ValueError(
                f"{source} row {number} is not a JSON object with a "
                "string 'phase' and a numeric 'step'"
            )
    return rows


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _table(rows, phase: str, keys, defaults=None) -> np.ndarray:
    """Returns [K, len(keys)] numbers from the K rows of `phase` with all `keys`."""
    defaults = defaults or {}
    table = []
    for row in rows:
        values = [row.get(key, defaults.get(key)) for key in keys]
        if row["phase"] == phase and all(map(_is_number, values)):
            table.append(values)
    # A resumed run can repeat steps; sorting keeps a line from doubling back.
    table.sort(key=lambda values: values[0])
    return np.array(table, np.float64).reshape(-1, len(keys))


def training_returns(rows: list[dict]) -> np.ndarray:
    """Returns [N, 2] (real env steps, mean return) of the controller's chunks in
    which episodes ended: a chunk that ended none (CarRacing's 1000-step
    episodes span several) logs a return of 0 that no episode had."""
    none_ended = lambda row: row.get("real/episodes") == 0  # noqa: E731
    ended = [row for row in rows if not none_ended(row)]
    return _table(ended, "controller", ("real_env_steps", "real/episode_return"))


def _plot_returns(rows, path: Path) -> Path | None:
    train = training_returns(rows)
    evals = _table(
        rows,
        "eval",
        ("real_env_steps", "eval/return_mean", "eval/return_std"),
        defaults={"eval/return_std": 0.0},
    )
    if not len(train) and not len(evals):
        return None
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.add_subplot()
    if len(train):
        # A marker for a lone point, which a line alone would not show.
        marker = "o" if len(train) == 1 else None
        axes.plot(*train.T, marker=marker, label="episode return (training)")
    if len(evals):
        x, mean, std = evals.T
        axes.errorbar(x, mean, yerr=std, fmt="o", capsize=3, label="evaluation")
    random_policy = _table(rows, "random", ("step", "random/return_mean"))
    if len(random_policy):
        axes.axhline(random_policy[-1, 1], ls="--", c="gray", label="random policy")
    axes.set_xlabel("real environment steps")
    axes.set_ylabel("return")
    axes.legend()
    return _save_figure(figure, path)


def _plot_keys(rows, keys, path: Path, title: str) -> Path | None:
    """Returns `path` after plotting one subplot per key, one line per phase."""
    panels = []
    for key in keys:
        lines = []
        for phase in dict.fromkeys(row["phase"] for row in rows):
            table = _table(rows, phase, ("step", key))
            if len(table):
                lines.append((phase, *table.T))
        if lines:
            panels.append((key, lines))
    if not panels:
        return None
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    figure = Figure(figsize=(4.5 * ncols, 3.2 * nrows), layout="constrained")
    figure.suptitle(title)
    for i, (key, lines) in enumerate(panels):
        axes = figure.add_subplot(nrows, ncols, i + 1)
        for phase, x, y in lines:
            axes.plot(x, y, marker="o" if len(x) == 1 else None, label=f"{phase} phase")
        axes.set_title(key)
        axes.set_xlabel("step (of each phase)")
        axes.legend(fontsize="small")
    return _save_figure(figure, path)


def learning_curves(rows: list[dict], out_dir, source: str = "metrics") -> list[Path]:
    """Returns the paths of the learning-curve PNGs written into `out_dir`.

    rows: a metrics log's rows (``read_metrics``: "phase", "step" and numeric
    metrics; other keys and values are ignored); writes `returns.png`,
    `world_model_losses.png` and `ppo.png`, each only when it has data.
    source: the rows' file, named in errors.
    """
    rows = _check_rows(rows, source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ppo_keys = sorted({k for row in rows for k in row if k.startswith("ppo/")})
    world_model = out_dir / "world_model_losses.png"
    written = [
        _plot_returns(rows, out_dir / "returns.png"),
        _plot_keys(rows, _VAE_KEYS + _MDN_KEYS, world_model, "World model losses"),
        _plot_keys(rows, ppo_keys, out_dir / "ppo.png", "PPO"),
    ]
    return [path for path in written if path is not None]
