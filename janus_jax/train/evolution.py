"""C trained by CMA-ES, as the World Models paper trained its controller.

The search runs over the weights of C's actor (the run's ``network``; with
``layer_sizes=()`` the paper's linear C, a_t = tanh(W [z_t, h_t] + b) for
continuous actions, argmax for discrete ones). Each generation evosax's CMA-ES
proposes ``population`` weight vectors; each candidate acts by its mode and is
scored by its mean return over ``rollouts``:

- ``fitness="dream"``: dreams inside M from the real envs' reset frames (z_0 =
  V(o_0), M's carry zero), ``horizon`` steps, rewards and ends from M's heads.
  One compiled program scores the whole generation: candidates vmapped, each
  candidate's dreams vmapped, the steps scanned (``dream_fitness``). No real
  env step is taken.
- ``fitness="real"``: whole real episodes of each candidate; their steps count
  as real env steps.
- ``fitness="both"``: dream to search, real to select (as the paper did for
  DoomTakeCover): the candidates are scored in dreams, and after each chunk of
  generations the search's mean is scored on ``select_episodes`` real episodes,
  the same starts every time. The run keeps the mean that scored best there,
  which guards against a search that climbs M's errors rather than the env.

Every candidate of a generation meets the same starts and random draws
(common random numbers), so the ranking compares policies, not luck. The C the
run keeps is the search distribution's mean, not the best candidate seen: with
a noisy fitness the best score is biased by the luckiest draw, while the mean
is CMA-ES's estimate of the optimum.

The search state (evosax's ``State``, and with ``"both"`` the kept mean and
its real score) is checkpointed between chunks of
generations, and a generation's keys come from the run's seed and its index,
so a resumed search continues exactly where it stopped.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from janus_jax.config.training import CMAESConfig
from janus_jax.diagnostics.evaluate import MAX_EVAL_ENVS, evaluate_episodes
from janus_jax.imagination import WorldModelParams, controller_act, imagine
from janus_jax.models import controller, mdn_rnn, vae
from janus_jax.train.loop import RunIO, run_chunks, whole_chunks

# CMA-ES keeps a D x D covariance and decomposes it every generation: beyond a
# few thousand weights each generation costs more than the candidates' scoring.
MAX_DIMS = 5_000
INIT = 2**31 - 1  # the key index of the search's start (generations count from 0)
SELECT = 2**31 - 2  # the key index of the real episodes that select (fitness="both")


def actor_of(params: controller.ControllerParams) -> Any:
    """Returns the actor's weights: the part of C that chooses actions."""
    return params.net["params"]["actor"]


def with_actor(
    params: controller.ControllerParams, actor
) -> controller.ControllerParams:
    """Returns C with its actor's weights replaced by ``actor`` (the critic and a
    continuous policy's log-std unchanged)."""
    inner = dict(params.net["params"], actor=actor)
    return params.replace(net=dict(params.net, params=inner))


def dream_fitness(
    key: jax.Array,
    params: WorldModelParams,
    population: jax.Array,
    z0: jax.Array,
    carry0,
    *,
    unravel,
    horizon: int,
) -> tuple[jax.Array, jax.Array]:
    """Returns (fitness [P], dreamed steps [P]): each candidate's mean return over
    the dreams from starts (z0 [S, Z], carry0 leaves [S, H]), C acting by its
    mode with the actor ``unravel(population[p])``. Every candidate uses ``key``
    (the same draws of M)."""

    def one(theta):
        c = with_actor(params.controller, unravel(theta))

        def policy(k, feats):
            return controller_act(c, k, feats, deterministic=True)

        dream = imagine(key, params.replace(controller=c), z0, carry0, horizon,
                        policy=policy)  # fmt: skip
        returns = jnp.sum(dream.reward * dream.mask, axis=0)  # [S]
        return jnp.mean(returns), jnp.sum(dream.mask)

    return jax.vmap(one)(population)


def search_step(es, es_params, state, key, score):
    """Returns (state, fitness [P]) after one generation: ask, ``score(population)
    -> fitness [P]`` (higher is better), tell."""
    ask_key, tell_key = jax.random.split(key)
    population, state = es.ask(ask_key, state, es_params)
    fitness = score(population)
    # evosax minimises: it is told the negated returns.
    state, _ = es.tell(tell_key, population, -fitness, state, es_params)
    return state, fitness


class CMAESTrainer:
    """Trains ``agent``'s C by CMA-ES (see the module docstring) on ``env``: the
    env whose resets start the dreams (``fitness="dream"`` or ``"both"``:
    ``config.rollouts`` envs) or whose episodes score the candidates
    (``"real"``); ``select_env`` plays the selecting episodes of ``"both"``
    (default: ``env``)."""

    def __init__(
        self,
        agent,
        env,
        config: CMAESConfig,
        *,
        seed: int = 0,
        io: RunIO | None = None,
        checkpoint_every: int = 5,
        select_env=None,
    ):
        if not isinstance(config, CMAESConfig):
            raise ValueError(f"config={config!r} is invalid: must be a CMAESConfig")
        if config.fitness != "real" and agent.mdn_rnn is None:
            raise ValueError(
                f"cmaes.fitness={config.fitness!r} is invalid for a model-free "
                "agent: it has no M to dream in (use fitness='real')"
            )
        if jax.process_count() > 1:
            raise ValueError(
                f"controller.algorithm='cmaes' runs in one process; this run has "
                f"{jax.process_count()}"
            )
        self.agent, self.env, self.config = agent, env, config
        self.select_env = env if select_env is None else select_env
        self.seed = seed
        self.io = io or RunIO()
        self.checkpoint_every = checkpoint_every
        flat, self.unravel = ravel_pytree(actor_of(agent.controller.params))
        if flat.size > MAX_DIMS:
            raise ValueError(
                f"C's actor has {flat.size} weights: CMA-ES keeps a covariance of "
                f"their square and takes at most {MAX_DIMS}; set "
                "network.layer_sizes=[] (the paper's linear C) or smaller layers"
            )
        self.initial = flat
        from evosax.algorithms import CMA_ES

        self.es = CMA_ES(population_size=config.population, solution=flat)
        self.es_params = self.es.default_params.replace(
            std_init=jnp.float32(config.std_init)
        )
        self._dream_fitness = jax.jit(
            functools.partial(
                dream_fitness, unravel=self.unravel, horizon=config.horizon
            )
        )
        self.real_env_steps = 0
        self.imagined_steps = 0

    def _key(self, generation: int) -> jax.Array:
        """Returns generation's key (``INIT``: the search's start)."""
        return jax.random.fold_in(jax.random.key(self.seed), generation)

    def _initial_state(self) -> dict:
        es_state = self.es.init(self._key(INIT), self.initial, self.es_params)
        state = {
            "es": es_state,
            "real_steps": jnp.zeros((), jnp.int32),
            "imagined_steps": jnp.zeros((), jnp.int32),
        }
        if self.config.fitness == "both":
            state["kept"] = self.initial
            state["kept_return"] = jnp.asarray(-jnp.inf, jnp.float32)
        return state

    def _real_returns(self, key, env, theta, episodes: int) -> tuple[np.ndarray, int]:
        """Returns (returns [episodes], real steps) of the actor ``theta`` acting
        by its mode in ``episodes`` real episodes of ``env``."""
        params = self.agent.params
        c = with_actor(params.controller, self.unravel(jnp.asarray(theta)))
        evaluation = evaluate_episodes(key, env, params.replace(controller=c), episodes)
        return evaluation.returns, int(np.sum(evaluation.lengths))

    def _select(self, state: dict) -> tuple[dict, dict]:
        """Returns (state, metrics) with the search's mean scored on the selecting
        episodes and kept where it beats the mean kept so far."""
        returns, real = self._real_returns(
            self._key(SELECT),
            self.select_env,
            state["es"].mean,
            self.config.select_episodes,
        )
        score = jnp.asarray(np.mean(returns), jnp.float32)
        better = score > state["kept_return"]
        state = {
            **state,
            "kept": jnp.where(better, state["es"].mean, state["kept"]),
            "kept_return": jnp.maximum(score, state["kept_return"]),
            "real_steps": state["real_steps"] + real,
        }
        return state, {
            "cmaes/mean_real": score,
            "cmaes/kept_real": state["kept_return"],
        }

    def _score(self, population, key) -> tuple[jax.Array, int, int]:
        """Returns (fitness [P], real steps, dreamed steps) of one generation."""
        params = self.agent.params
        start_key, run_key = jax.random.split(key)
        if self.config.fitness != "real":
            state = self.env.start(start_key)
            z0 = vae.get_latent(params.vae, jnp.asarray(state.obs))
            carry0 = mdn_rnn.initial_carry(params.mdn_rnn.config, (z0.shape[0],))
            fitness, steps = self._dream_fitness(
                run_key, params, population, z0, carry0
            )
            return fitness, 0, int(jnp.sum(steps))
        fitness, real = [], 0
        for theta in np.asarray(population):
            returns, steps = self._real_returns(
                run_key, self.env, theta, self.config.rollouts
            )
            fitness.append(float(np.mean(returns)))
            real += steps
        return jnp.asarray(fitness, jnp.float32), real, 0

    def _generation(self, state: dict, generation: int) -> tuple[dict, jax.Array]:
        """Returns (state, fitness [P]) after one generation of the search."""
        counts = []

        def score(population):
            key = jax.random.fold_in(self._key(generation), 1)
            fitness, real, dreamed = self._score(population, key)
            counts.append((real, dreamed))
            return fitness

        es_state, fitness = search_step(
            self.es, self.es_params, state["es"], self._key(generation), score
        )
        ((real, dreamed),) = counts
        state = {
            **state,
            "es": es_state,
            "real_steps": state["real_steps"] + real,
            "imagined_steps": state["imagined_steps"] + dreamed,
        }
        return state, fitness

    def _run_chunk(self, state, done: int, count: int):
        for generation in range(done, done + count):
            state, fitness = self._generation(state, generation)
        metrics = {
            "cmaes/fitness_mean": jnp.mean(fitness),
            "cmaes/fitness_max": jnp.max(fitness),
            "cmaes/std": jnp.mean(state["es"].std),
        }
        if self.config.fitness == "both":
            state, selected = self._select(state)
            metrics.update(selected)
        metrics["cmaes/real_steps"] = state["real_steps"]
        return state, metrics, {}

    def train(self) -> dict:
        """Returns the last chunk's metrics after ``config.generations``
        generations; the agent's C is then the search distribution's mean (with
        ``fitness="both"``, the chunk's mean that scored best on the selecting
        real episodes)."""
        c = self.config
        chunk, total = whole_chunks(c.generations, c.generations_per_chunk)
        state, metrics = run_chunks(
            self.io,
            "controller",
            self._initial_state(),
            total=total,
            chunk=chunk,
            run_chunk=self._run_chunk,
            checkpoint_every=self.checkpoint_every,
            unit="generations",
            shown=("cmaes/fitness_mean", "cmaes/fitness_max"),
        )
        self.state = state
        self.real_env_steps = int(state["real_steps"])
        self.imagined_steps = int(state["imagined_steps"])
        kept = state["kept"] if c.fitness == "both" else state["es"].mean
        self.agent.controller.params = with_actor(
            self.agent.controller.params, self.unravel(kept)
        )
        return metrics


def env_count(config: CMAESConfig) -> int:
    """Returns how many envs the search steps at once: one per dream start, or
    the real episodes of a candidate (at most ``MAX_EVAL_ENVS`` at a time)."""
    return (
        min(config.rollouts, MAX_EVAL_ENVS)
        if config.fitness == "real"
        else config.rollouts
    )


def train_controller(config, agent, io: RunIO) -> dict:
    """Returns the summary fields of a run's C trained by CMA-ES (the pipeline's
    controller phase with ``controller.algorithm="cmaes"``)."""
    from janus_jax.envs import make
    from janus_jax.run.run_dir import env_kwargs

    c = config.controller
    env = make(config.env_id, **env_kwargs(config, env_count(c.cmaes)))
    select_env = None
    if c.cmaes.fitness == "both":
        count = min(c.cmaes.select_episodes, MAX_EVAL_ENVS)
        select_env = make(config.env_id, **env_kwargs(config, count))
    trainer = CMAESTrainer(
        agent,
        env,
        c.cmaes,
        seed=config.seed,
        io=io,
        checkpoint_every=c.checkpoint_every,
        select_env=select_env,
    )
    try:
        metrics = trainer.train()
    finally:
        env.close()
        if select_env is not None:
            select_env.close()
    return {
        "controller_env_steps": trainer.real_env_steps,
        "imagined_steps": trainer.imagined_steps,
        "algorithm": "cmaes",
        "controller_final_metrics": metrics,
    }
