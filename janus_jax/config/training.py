"""Training configs: the world model's phases and the controller's, validated like
the model configs (a bad value raises ValueError naming the field). Neither holds
a seed: a run has one, ``RunConfig.seed``, and the trainers take it as ``seed=``."""

from __future__ import annotations

import dataclasses

from janus_jax.config.checks import (
    check_bool,
    fail,
    in_range,
    is_number,
    non_negative,
    non_negative_int,
    positive_int,
)
from janus_jax.config.models import FEATURES, MDNRNNConfig, VAEConfig
from janus_jax.config.renamed import renamed_fields
from janus_jax.devices import check_device

DREAM_FROM = ("replay", "rollout")
# How evaluations act: the most likely action, or one sampled as in training.
EVAL_POLICIES = ("mode", "mean", "sample")


def acting_as(eval_policy: str) -> bool | str:
    """Returns ``controller_act``'s ``deterministic`` for an ``eval_policy``:
    False to sample, True for the mode, "mean" for the expected action."""
    return {"sample": False, "mode": True, "mean": "mean"}[eval_policy]


# How C learns: PPO on real and dreamed batches, or the paper's CMA-ES search.
ALGORITHMS = ("ppo", "cmaes")
# Where a CMA-ES candidate is scored: in M's dreams, in the real envs, or in
# the dreams with the real envs choosing which search mean to keep.
CMAES_FITNESS = ("dream", "real", "both")


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorldModelTrainingConfig:
    """Random-policy collection, then V, then M (see ``WorldModelTrainer``)."""

    num_episodes: int = 1000
    """Episodes of a uniformly random policy to collect."""
    random_steps: int = 0
    """Real env steps of random-policy data to collect, in whole episodes (at
    least this many; each env's episode in progress is finished); 0 uses
    num_episodes."""
    vae_epochs: float = 30
    """Passes of V over every frame of the dataset (fractions allowed)."""
    mdn_epochs: float = 50
    """Passes of M over every window of the dataset (fractions allowed)."""
    vae_batch_size: int = 32
    """Frames per V gradient step (per micro-batch with accumulation)."""
    mdn_batch_size: int = 16
    """Windows per M gradient step (per micro-batch with accumulation)."""
    vae_learning_rate: float = 1e-3
    """Adam step size of V."""
    mdn_learning_rate: float = 1e-3
    """Adam step size of M."""
    sequence_length: int = 32
    """Steps per M training window (episodes are cut, never mixed)."""
    max_grad_norm: float = 1.0
    """Global-norm gradient clipping of V and M (0 disables it)."""
    gradient_accumulation_steps: int = 1
    """Micro-batches averaged per optimiser step (optax.MultiSteps)."""
    collect_envs: int = 8
    """Parallel envs during collection."""
    chunk_steps: int = 200
    """Gradient steps per compiled chunk (a log line and progress update each)."""
    checkpoint_every: int = 5
    """Chunks between checkpoints (a phase also saves when it ends)."""
    max_resident_bytes: int = 2 * 1024**3
    """Host memory for the dataset's arrays while V and M train. A dataset that
    fits is loaded once; a bigger one streams from disk in blocks of shards, two
    at most in memory (see ``train/blocks.py``), so any dataset size trains."""
    vae: VAEConfig | None = None
    """V's architecture; None derives one from the env's observation shape."""
    mdn_rnn: MDNRNNConfig | None = None
    """M's architecture; None derives one from V's latent and the env's actions."""
    device: dataclasses.InitVar[str | None] = None
    """Taken by the constructor only, for the seed README's configs (not stored):
    one of auto, cpu, cuda, gpu, tpu; JAX runs on its default backend and warns
    when that is another kind."""

    def __post_init__(self, device: str | None):
        for field in (
            "num_episodes",
            "vae_batch_size",
            "mdn_batch_size",
            "sequence_length",
            "gradient_accumulation_steps",
            "collect_envs",
            "chunk_steps",
            "checkpoint_every",
            "max_resident_bytes",
        ):
            positive_int(self, field)
        for field, kind in (("vae", VAEConfig), ("mdn_rnn", MDNRNNConfig)):
            value = getattr(self, field)
            if value is not None and not isinstance(value, kind):
                fail(
                    type(self).__name__,
                    field,
                    value,
                    f"must be a {kind.__name__} or None",
                )
        non_negative_int(self, "random_steps")
        for field in ("vae_epochs", "mdn_epochs", "max_grad_norm"):
            non_negative(self, field)
        for field in ("vae_learning_rate", "mdn_learning_rate"):
            in_range(self, field, 1e-12, 10.0)
        if device is not None:
            # __init__ -> __post_init__ -> check_device: warn at the user's call.
            check_device(device, where=f"{type(self).__name__}.device", stacklevel=4)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CMAESConfig:
    """The World Models paper's controller search (``controller.algorithm=
    "cmaes"``): CMA-ES over the weights of C's actor, each candidate scored by the
    mean return of its mode actions, in M's dreams or in the real envs. The
    actor is the run's ``network`` (``layer_sizes=()``: the paper's linear C);
    C's critic is not used. See ``janus_jax/train/evolution.py``."""

    population: int = 16
    """Candidates per generation (the paper: 64)."""
    generations: int = 50
    """Generations of the search (ask, score, tell)."""
    fitness: str = "dream"
    """Where candidates are scored: "dream" (inside M, from the real envs' reset
    frames, M's reward and done heads; no real step), "real" (whole real
    episodes; every step counts as a real env step) or "both" (dream to search,
    real to select: scored in dreams, and after each chunk the search's mean is
    scored on ``select_episodes`` real episodes; the run keeps the mean that
    scored best there)."""
    rollouts: int = 16
    """Dreams (or real episodes) per candidate; every candidate of a generation
    meets the same starts and draws (common random numbers)."""
    horizon: int = 200
    """Steps per dream (a dream also ends where M's done head ends it)."""
    std_init: float = 0.1
    """The search distribution's first standard deviation around C's initial
    weights."""
    generations_per_chunk: int = 5
    """Generations between log lines (and checkpoints, every checkpoint_every)."""
    select_episodes: int = 8
    """With ``fitness="both"``: the real episodes (the same tracks or starts
    every time) that score the search's mean after each chunk."""

    def __post_init__(self):
        name = type(self).__name__
        for field in (
            "population",
            "generations",
            "rollouts",
            "horizon",
            "generations_per_chunk",
            "select_episodes",
        ):
            positive_int(self, field)
        if self.population < 2:
            fail(name, "population", self.population, "must be >= 2 (CMA-ES ranks)")
        in_range(self, "std_init", 1e-8, 1e3)
        if self.fitness not in CMAES_FITNESS:
            fail(name, "fitness", self.fitness, f"must be one of {CMAES_FITNESS}")


# M's refresh was named for the world model, but V's refresh has its own vae_*
# fields: mdn_* as in the world_model section. world_model_learning_rate keeps its
# name, since it is the step size of both V's and M's refresh.
@renamed_fields(
    world_model_updates="mdn_updates", world_model_batch_size="mdn_batch_size"
)
@dataclasses.dataclass(frozen=True, kw_only=True)
class ControllerTrainingConfig:
    """C's PPO phase on real and dreamed experience (see ``WorldModelPPOTrainer``)."""

    total_timesteps: int = 500_000
    """Real env steps of the phase (rounded up to whole chunks)."""
    rollout_length: int = 128
    """Steps per env per update."""
    num_envs: int = 4
    """Parallel real envs."""
    imagination_ratio: float = 0.5
    """Imagined share of each PPO batch, in [0, 1): the real part is the whole real
    rollout, so each update dreams ratio / (1 - ratio) x the rollout's transitions
    (0: plain PPO on [z, h]; 0.5: as many dreamed as real)."""
    learn_from_real: bool = True
    """Put the real rollout in the PPO batch. False: C learns only inside the dream
    (the real rollouts still give the dreams their starts and M its data), with
    as many dreams as the ratio sets (0.5: as many dreamed transitions as real)."""
    imagination_horizon: int = 16
    """Steps per dream (each dream starts from a real [z, h])."""
    dream_from: str = "replay"
    """Where dreams start: "replay" (stored steps of the recent real data, with
    the carry M had there: many more, and more varied, starts than one rollout)
    or "rollout" (the latest real rollout's steps)."""
    mdn_updates: int = 4
    """M gradient steps on each fresh real rollout (0 freezes M). Was
    world_model_updates (still accepted, with a DeprecationWarning)."""
    dream_updates: int = 0
    """Extra PPO updates per real rollout, each on fresh dreams of the current C
    only (as many dreams as the ratio sets; needs imagination_ratio > 0): C
    takes several clipped steps per real rollout, all in the dream."""
    world_model_learning_rate: float = 1e-3
    """Adam step size of M's refresh on the real rollouts, and of V's when
    vae_updates > 0 (each with its own optimiser)."""
    sequence_length: int = 32
    """Steps per window of M's refresh."""
    mdn_batch_size: int = 16
    """Windows per gradient step of M's refresh, drawn afresh from the replay at
    every step (each starts from the carry M had when C acted there). Was
    world_model_batch_size (still accepted, with a DeprecationWarning)."""
    vae_updates: int = 0
    """V gradient steps per update on frames drawn from the replay (0: V stays as
    the world-model phase left it). V then sees the states the current C
    reaches (later bricks, faster driving); C and M follow V as it moves."""
    vae_batch_size: int = 64
    """Frames per gradient step of V's refresh."""
    replay_steps: int = 5_000
    """Real steps the replay keeps for V's and M's refresh and the dreams' starts
    (the newest, over all envs; at least one rollout): memory is bounded by this
    whatever the run's length (64x64 pixels: about 25 kB a step)."""
    updates_per_chunk: int = 10
    """PPO updates per compiled chunk."""
    checkpoint_every: int = 5
    """Chunks between checkpoints."""
    features: str = "world_model"
    """What C acts on: "world_model" ([z, h] from V and M) or "observation"
    (model-free PPO on the raw observations, flattened, pixels / 255: no data
    collection, no V, no M, no dreams; the baseline the world model is measured
    against, run by the same trainer, evaluation and logs)."""
    eval_episodes: int = 32
    """Episodes of the final evaluation (and of the random baseline)."""
    eval_every: int = 0
    """Real env steps between evaluations during training (eval/return_mean in
    the metrics log, at the first chunk past each multiple; 0: only the final
    evaluation). Same episodes count and policy as the final one."""
    eval_policy: str = "mode"
    """How C acts in evaluations: "mode" (argmax for discrete actions, the
    Gaussian's mean squashed for continuous ones), "mean" (the expected action
    of the squashed Gaussian: deterministic, and as the samples act on average;
    the argmax for discrete actions) or "sample" (drawn from the policy, as in
    training). A policy still far from deterministic can drive worse by its mode
    than by its samples (CarRacing: its results page)."""
    use_tensorboard: bool = False
    """Also write TensorBoard event files (run_dir/tensorboard)."""
    algorithm: str = "ppo"
    """How C learns: "ppo" (the fields above) or "cmaes" (the paper's search over
    C's actor weights, ``cmaes``'s fields; M and V stay as the world-model phase
    left them, and the PPO fields of this section are not used)."""
    cmaes: CMAESConfig = dataclasses.field(default_factory=CMAESConfig)
    """The CMA-ES search, with ``algorithm="cmaes"``."""

    def __post_init__(self):
        name = type(self).__name__
        for field in (
            "total_timesteps",
            "rollout_length",
            "num_envs",
            "imagination_horizon",
            "sequence_length",
            "mdn_batch_size",
            "vae_batch_size",
            "replay_steps",
            "updates_per_chunk",
            "checkpoint_every",
            "eval_episodes",
        ):
            positive_int(self, field)
        non_negative_int(self, "mdn_updates")
        non_negative_int(self, "vae_updates")
        in_range(self, "world_model_learning_rate", 1e-12, 10.0)
        check_bool(self, "use_tensorboard")
        check_bool(self, "learn_from_real")
        non_negative_int(self, "eval_every")
        non_negative_int(self, "dream_updates")
        if self.dream_from not in DREAM_FROM:
            fail(name, "dream_from", self.dream_from, f"must be one of {DREAM_FROM}")
        if self.eval_policy not in EVAL_POLICIES:
            fail(
                name, "eval_policy", self.eval_policy, f"must be one of {EVAL_POLICIES}"
            )
        if self.features not in FEATURES:
            fail(name, "features", self.features, f"must be one of {FEATURES}")
        if self.algorithm not in ALGORITHMS:
            fail(name, "algorithm", self.algorithm, f"must be one of {ALGORITHMS}")
        if not isinstance(self.cmaes, CMAESConfig):
            fail(name, "cmaes", self.cmaes, "must be a CMAESConfig")
        if (
            self.algorithm == "cmaes"
            and self.features == "observation"
            and self.cmaes.fitness != "real"
        ):
            fail(
                name,
                "cmaes",
                f"fitness={self.cmaes.fitness!r}",
                "a model-free C has no M to dream in: set cmaes.fitness='real', or "
                "features='world_model'",
            )
        if self.features == "observation" and (
            self.imagination_ratio or not self.learn_from_real
        ):
            fail(
                name,
                "features",
                self.features,
                "model-free PPO dreams nothing: set imagination_ratio=0 (and "
                "learn_from_real=True), or features='world_model'",
            )
        ratio = self.imagination_ratio
        if not is_number(ratio) or not 0 <= ratio < 1:
            fail(
                name,
                "imagination_ratio",
                ratio,
                "must lie in [0, 1) (the imagined share of each PPO batch); for C "
                "to learn only in the dream set learn_from_real=False with a ratio "
                "below 1 (e.g. 0.5: as many dreamed transitions as real)",
            )
        if not self.learn_from_real and ratio == 0:
            fail(
                name,
                "learn_from_real",
                False,
                "C would have no data at imagination_ratio=0; set a ratio above 0 "
                "(e.g. 0.5) or learn_from_real=True",
            )
