"""``WorldModelPPOTrainer``: C learns by PPO on [z, h] from real rollouts mixed
with dreams started from them, while M keeps learning from the real data.

gymnax envs: a chunk of updates (rollout, M refresh, dreams, PPO) is one compiled
``lax.scan``. gymnasium envs: the host steps the envs with a jitted policy, then
one compiled ``learn`` per update. Logs, progress and checkpoints happen between
chunks (``run_chunks``).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from janus_jax import agent as agent_lib
from janus_jax import ppo
from janus_jax.agent import WorldModelAgent
from janus_jax.configs import PPOConfig
from janus_jax.envs import GymnasiumEnv, GymnaxEnv, check_observation, make
from janus_jax.envs.ids import gymnax_ids
from janus_jax.imagination import WorldModelParams
from janus_jax.models import mdn_rnn
from janus_jax.parallel import DataParallel
from janus_jax.train import control
from janus_jax.train.fit import init_fit_state, make_optimizer
from janus_jax.train.loop import RunIO, run_chunks, whole_chunks
from janus_jax.train.metrics_log import MetricsLogger


def dream_starts(real: int, ratio: float, horizon: int, batch_size: int) -> int:
    """Returns the dreams per update that make dreamed / all transitions about
    ``ratio`` (at ratio 1, as many as the real rollout's), in multiples that
    keep the PPO batch divisible into minibatches of ``batch_size``."""
    if ratio == 0:
        return 0
    wanted = real if ratio == 1 else ratio / (1 - ratio) * real
    step = batch_size // math.gcd(horizon, batch_size)
    return step * max(1, round(wanted / (horizon * step)))


def check_multi_process_env(env_id: str, on_device: bool) -> None:
    """Raises ValueError for a gymnasium env (not ``on_device``) in a multi-process
    run: one host steps all of its envs."""
    if not on_device and jax.process_count() > 1:
        raise ValueError(
            f"{env_id} is a gymnasium env, stepped on one host: a multi-process "
            "run needs a gymnax env (several devices of one process are fine)"
        )


def _make_env(envs, num_envs: int):
    """Returns one janus-jax env from what the seed's API allows for ``envs``."""
    if isinstance(envs, (list, tuple)):
        if len(envs) != 1:
            raise ValueError(
                f"envs holds {len(envs)} envs: pass one env (or id) and num_envs; "
                "janus-jax vectorises it"
            )
        envs = envs[0]
    if isinstance(envs, gymnasium.Env) and envs.spec is not None:
        envs = envs.spec.id
    if isinstance(envs, str):
        # A gymnax env is one env (vmapped here); a gymnasium one is vectorised.
        envs = make(envs) if envs in gymnax_ids() else make(envs, num_envs=num_envs)
    if not isinstance(envs, (GymnaxEnv, GymnasiumEnv)):
        raise ValueError(
            f"envs={envs!r} is invalid: pass an env id, janus_jax.envs.make(...), "
            "or a gymnasium.make env"
        )
    return envs


class WorldModelPPOTrainer:
    """Trains ``world_model_agent``'s controller (and keeps its M learning) by PPO
    on real and imagined experience; the agent's params are updated in place.

    imagination_ratio: share of dreamed transitions per PPO batch (0: plain PPO
    on [z, h]; 1: C learns only in the dream). imagination_horizon: dream length.
    config.batch_size is the PPO minibatch; it must divide num_envs x
    rollout_length. world_model_updates: M gradient steps per real rollout (0
    freezes M). run_dir: metrics, TensorBoard files and checkpoints
    (run_dir/checkpoints/controller); None keeps nothing on disk.
    """

    def __init__(
        self,
        world_model_agent: WorldModelAgent,
        envs,
        config: PPOConfig | None = None,
        imagination_ratio: float = 0.5,
        imagination_horizon: int = 50,
        use_tensorboard: bool = False,
        *,
        num_envs: int = 8,
        world_model_updates: int = 4,
        mdn_learning_rate: float = 1e-3,
        sequence_length: int = 32,
        temperature: float | None = None,
        updates_per_chunk: int = 10,
        checkpoint_every: int = 5,
        seed: int = 0,
        run_dir: str | Path | None = None,
        io: RunIO | None = None,
        parallel: DataParallel | None = None,
    ):
        if not 0 <= imagination_ratio <= 1:
            raise ValueError(
                f"imagination_ratio={imagination_ratio!r} is invalid: must lie in "
                "[0, 1]"
            )
        for name, value in (
            ("imagination_horizon", imagination_horizon),
            ("num_envs", num_envs),
            ("updates_per_chunk", updates_per_chunk),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid: must be an int >= 1")
        self.agent = world_model_agent
        self.config = config or PPOConfig()
        self.env = _make_env(envs, num_envs)
        check_observation(self.env.spec, self.agent.vae.config)
        if self.env.spec.action != self.agent.action_spec:
            raise ValueError(
                f"the env's actions {self.env.spec.action} differ from the agent's "
                f"{self.agent.action_spec}"
            )
        self.num_envs = (
            num_envs if isinstance(self.env, GymnaxEnv) else self.env.num_envs
        )
        self.imagination_ratio = float(imagination_ratio)
        self.imagination_horizon = imagination_horizon
        self.world_model_updates = int(world_model_updates)
        self.mdn_optimizer = make_optimizer(mdn_learning_rate, 1.0)
        self.sequence_length = sequence_length
        self.temperature = (
            self.agent.mdn_rnn.config.temperature
            if temperature is None
            else float(temperature)
        )
        self.updates_per_chunk = updates_per_chunk
        self.checkpoint_every = checkpoint_every
        self.seed = seed
        self.parallel = parallel or DataParallel.create()
        check_multi_process_env(self.env.spec.env_id, isinstance(self.env, GymnaxEnv))
        self.parallel.check_divisible("num_envs", self.num_envs)
        primary = self.parallel.is_primary
        self.io = io or RunIO(
            run_dir=None if run_dir is None else Path(run_dir), progress=primary
        )
        if self.io.logger is None and self.io.run_dir is not None and primary:
            self.io.logger = MetricsLogger(
                self.io.run_dir, use_tensorboard=use_tensorboard, resume=self.io.resume
            )
        self.real_env_steps = 0
        self.imagined_steps = 0

    def _setup(self, total_timesteps: int, rollout_length: int):
        """Returns (ControlSetup, number of updates rounded up to whole chunks)."""
        real = self.num_envs * rollout_length
        minibatch = self.config.batch_size
        use_real = self.imagination_ratio < 1
        if use_real and real % minibatch:
            raise ValueError(
                f"PPOConfig.batch_size={minibatch} must divide num_envs x "
                f"rollout_length = {self.num_envs} x {rollout_length} = {real}"
            )
        starts = dream_starts(
            real, self.imagination_ratio, self.imagination_horizon, minibatch
        )
        if starts:
            self.parallel.check_divisible("the dreams per update", starts)
        updates = math.ceil(total_timesteps / real)
        _, updates = whole_chunks(updates, self.updates_per_chunk)
        batch = real * use_real + starts * self.imagination_horizon
        grad_steps = updates * self.config.n_epochs * (batch // minibatch)
        window = min(self.sequence_length, rollout_length)
        setup = control.ControlSetup(
            num_envs=self.num_envs,
            rollout_length=rollout_length,
            dream_starts=starts,
            horizon=self.imagination_horizon,
            temperature=self.temperature,
            use_real=use_real,
            window=window,
            num_windows=self.num_envs * (-(-rollout_length // window) + 1),
            world_model_updates=self.world_model_updates,
            mdn_optimizer=self.mdn_optimizer,
            ppo=self.config,
            optimizer=ppo.make_optimizer(self.config, grad_steps),
            start_sharding=None
            if self.parallel.trivial
            else self.parallel.sharding(0, 1),
        )
        return setup, updates

    def _initial_state(self, setup: control.ControlSetup) -> control.ControlState:
        key = jax.random.key(self.seed)
        reset_key, state_key = jax.random.split(key)
        params = self.agent.params
        if isinstance(self.env, GymnaxEnv):
            obs, env_state = jax.vmap(self.env.reset)(
                jax.random.split(reset_key, self.num_envs)
            )
        else:
            obs, env_state = jnp.asarray(self.env.reset(seed=self.seed)), None
        state = control.ControlState(
            train=ppo.init_train_state(params.controller, setup.optimizer),
            mdn=init_fit_state(params.mdn_rnn, setup.mdn_optimizer, state_key),
            env_state=env_state,
            obs=obs,
            carry=mdn_rnn.initial_carry(params.mdn_rnn.config, (self.num_envs,)),
            episode_return=jnp.zeros(self.num_envs),
            key=jax.random.key_data(state_key),
            updates=jnp.zeros((), jnp.int32),
            imagined_steps=jnp.zeros((), jnp.int32),
        )
        # The chunk donates its state: no two leaves may share a buffer (the env's
        # reset can return one array twice, and the agent keeps its own params).
        state = jax.tree.map(jnp.copy, state)
        # Envs (and what each one carries) split over the devices; the rest is
        # replicated.
        par = self.parallel
        return par.replicate(state).replace(
            **{f: par.shard(getattr(state, f)) for f in control.PER_ENV_FIELDS}
        )

    def _gymnasium_update(self, setup, compiled, vae_params, state):
        """Returns (state, metrics) of one host rollout and a compiled ``learn``;
        compiled holds the jitted (learn, act, observe)."""
        learn, act, observe = compiled
        rollout_key, learn_key = jax.random.split(control.update_key(state))
        params = WorldModelParams(vae_params, state.mdn.params, state.train.params)
        records, carry, ret, obs = [], state.carry, state.episode_return, state.obs
        for t in range(setup.rollout_length):
            step = act(params, carry, obs, jax.random.fold_in(rollout_key, t))
            out = self.env.step(np.asarray(step.action))
            nxt = observe(params, step, jnp.asarray(out.final_obs))
            real, carry, ret = control.record(
                step,
                carry,
                jnp.asarray(out.reward),
                jnp.asarray(out.terminated),
                jnp.asarray(out.truncated),
                nxt,
                ret,
            )
            records.append(real)
            obs = jnp.asarray(out.obs)
        real = self.parallel.shard(
            jax.tree.map(lambda *xs: jnp.stack(xs), *records), axis=1
        )
        state = state.replace(obs=obs, carry=carry, episode_return=ret)
        return learn(params, state, real, learn_key)

    def _chunk_fn(self, setup):
        """Returns run_chunk(state, done, count) for ``run_chunks``."""
        vae_params = self.parallel.replicate(self.agent.vae.params)
        real_per_update = setup.num_envs * setup.rollout_length
        if isinstance(self.env, GymnaxEnv):
            compiled = jax.jit(
                functools.partial(
                    control.gymnax_chunk,
                    env=self.env,
                    setup=setup,
                    num_updates=self.updates_per_chunk,
                ),
                donate_argnums=0,
            )
            chunk = lambda state: compiled(state, vae_params)  # noqa: E731
        else:
            compiled = (
                jax.jit(functools.partial(control.learn, setup)),
                jax.jit(agent_lib.act),
                jax.jit(control.observe),
            )

            def chunk(state):
                metrics = []
                for _ in range(self.updates_per_chunk):
                    state, m = self._gymnasium_update(
                        setup, compiled, vae_params, state
                    )
                    metrics.append(m)
                stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *metrics)
                return state, control.summarize(stacked)

        def run_chunk(state, done, count):
            state, metrics = chunk(state)
            extra = {
                "real_env_steps": int(state.updates) * real_per_update,
                "imagined_steps": int(state.imagined_steps),
            }
            return state, metrics, extra

        return run_chunk

    def train(self, total_timesteps: int, rollout_length: int = 128) -> dict:
        """Returns the last chunk's metrics after at least ``total_timesteps`` real
        env steps of ``rollout_length`` steps per env per update."""
        for name, value in (
            ("total_timesteps", total_timesteps),
            ("rollout_length", rollout_length),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid: must be an int >= 1")
        setup, updates = self._setup(total_timesteps, rollout_length)
        state = self._initial_state(setup)
        state, metrics = run_chunks(
            self.io,
            "controller",
            state,
            total=updates,
            chunk=self.updates_per_chunk,
            run_chunk=self._chunk_fn(setup),
            checkpoint_every=self.checkpoint_every,
            unit="updates",
            shown=("real/episode_return", "ppo/value_loss", "mdn/loss"),
        )
        self.real_env_steps = int(state.updates) * setup.num_envs * rollout_length
        self.imagined_steps = int(state.imagined_steps)
        self.agent.controller.params = self.parallel.local(state.train.params)
        self.agent.mdn_rnn.params = self.parallel.local(state.mdn.params)
        self.state = state
        return metrics
