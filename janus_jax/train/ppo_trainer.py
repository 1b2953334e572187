"""``WorldModelPPOTrainer``: C learns by PPO on [z, h] from real rollouts mixed
with dreams started from them, while M keeps learning from the real data.

Every update is ``control.update`` (the env's rollout of C, then ``learn``).
Envs whose rollout is pure JAX (gymnax) run a chunk of updates as one compiled
``lax.scan``; the others (gymnasium) step on the host with C jitted, then one
compiled ``learn`` per update. Logs, progress and checkpoints happen between
chunks (``run_chunks``).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from janus_jax.agent import WorldModelAgent
from janus_jax.config.models import PPOConfig
from janus_jax.config.training import ControllerTrainingConfig, acting_as
from janus_jax.diagnostics.evaluate import (
    MAX_EVAL_ENVS,
    evaluate_episodes,
    single_trajectory_notice,
)
from janus_jax.envs import as_env, check_observation, remake
from janus_jax.models import mdn_rnn, reward
from janus_jax.optim import init_train_state
from janus_jax.parallel import DataParallel
from janus_jax.run.metrics_log import MetricsLogger
from janus_jax.run.record import record_trained, recorded_run_env
from janus_jax.train import control, replay, rewards
from janus_jax.train.loop import RunIO, run_chunks
from janus_jax.train.ppo_setup import (
    check_multi_process_env,
    control_setup,
    training_config,
)


class WorldModelPPOTrainer:
    """Trains ``world_model_agent``'s controller (and keeps its M learning) by PPO
    on real and imagined experience; the agent's params are updated in place.

    config: PPO's hyperparameters. training: the phase's ControllerTrainingConfig
    (steps, envs, imagination, M's refresh, chunks); its fields given as
    keywords (the seed's ``imagination_ratio=0.5``, ``num_envs=8``...) replace
    its values. envs: an env id (``training.num_envs`` copies), a
    ``janus_jax.envs.make`` env (with its own ``num_envs`` unless one is given),
    a gymnasium env (made anew from its id, or else copied), or a list of
    gymnasium envs of one spec or class (stepped together); envs
    that hold another number of envs than ``training.num_envs`` set it, with a
    warning. env_fn: a callable returning a new gymnasium env, for envs that
    cannot be copied (``envs`` may then be left out). run_dir: metrics,
    TensorBoard files and checkpoints (run_dir/checkpoints/controller); None
    keeps nothing on disk.
    reward_model: how the dreams are rewarded. None: M's reward head. A pure
    function ``reward_fn(z_t [Z], a_t [A], z_next [Z]) -> scalar`` for one
    example (a_t as M sees it: one-hot for discrete actions; a static part of
    the run, compiled once). A flax linen module with the seed's
    ``__call__(z_t, a_t, z_next)`` (batched, one scalar per example), or
    ``janus_jax.RewardModel(module=..., learning_rate=...)``: learned, a
    squared error against the real rewards on the windows of M's refresh, one
    step per M step; its variables are in the checkpoints, and
    ``reward_fn`` holds it bound to them after ``train``.
    """

    def __init__(
        self,
        world_model_agent: WorldModelAgent,
        envs=None,
        config: PPOConfig | None = None,
        *,
        env_fn: Callable[..., gymnasium.Env] | None = None,
        training: ControllerTrainingConfig | None = None,
        seed: int = 0,
        run_dir: str | Path | None = None,
        io: RunIO | None = None,
        parallel: DataParallel | None = None,
        reward_model=None,
        **training_fields,
    ):
        t = training_config(training, training_fields)
        self.dream_reward = rewards.dream_reward(
            reward_model, world_model_agent.mdn_rnn is not None
        )
        # The dreams' per-example reward function (a learned one's after train).
        learned = isinstance(self.dream_reward, reward.RewardModel)
        self.reward_fn = None if learned else self.dream_reward
        self.agent = world_model_agent
        self.config = config or PPOConfig()
        self.seed = seed
        # An env object brings its own count unless one was asked for.
        asked = training is not None or training_fields.get("num_envs") is not None
        asked = asked or isinstance(envs, str) or envs is None
        self.env = as_env(envs, t.num_envs if asked else None, env_fn=env_fn)
        if self.env.num_envs != t.num_envs:
            warnings.warn(
                f"WorldModelPPOTrainer: training.num_envs={t.num_envs} -> "
                f"{self.env.num_envs}: the envs given hold {self.env.num_envs} envs",
                stacklevel=2,
            )
            t = dataclasses.replace(t, num_envs=self.env.num_envs)
        self.training = t
        self.num_envs = t.num_envs
        if self.agent.vae is not None:
            check_observation(self.env.spec, self.agent.vae.config)
        elif self.env.spec.observation_shape != self.agent.observation_shape:
            raise ValueError(
                f"{self.env.spec.env_id} observes shape "
                f"{self.env.spec.observation_shape}; the agent was made for "
                f"{self.agent.observation_shape}"
            )
        self.agent.match_actions(self.env.spec.action, self.env.spec.env_id)
        self.parallel = parallel or DataParallel.create()
        check_multi_process_env(self.env.spec.env_id, self.env.spec.on_device)
        primary = self.parallel.is_primary
        self.io = io or RunIO(
            run_dir=None if run_dir is None else Path(run_dir), progress=primary
        )
        # Given a run_dir (not a pipeline's io, which writes its own config),
        # the trainer leaves a run that load_agent and the CLI can open.
        self._writes_run = run_dir is not None and io is None
        try:  # config.json names the env by its class path, not by a factory
            self._env_record = recorded_run_env(self.env, self.agent, self._writes_run)
        except ValueError:
            self.env.close()  # gymnasium envs hold worker processes
            raise
        if self.io.logger is None and self.io.run_dir is not None and primary:
            self.io.logger = MetricsLogger(
                self.io.run_dir,
                use_tensorboard=t.use_tensorboard,
                resume=self.io.resume,
            )
        self.real_env_steps = 0
        self.imagined_steps = 0

    def close(self) -> None:
        """Closes the envs (gymnasium envs hold worker processes)."""
        self.env.close()
        if getattr(self, "_eval_env", None) is not None:
            self._eval_env.close()

    def _setup(self, total_timesteps: int, rollout_length: int):
        """Returns (ControlSetup, number of updates rounded up to whole chunks)."""
        mdn = self.agent.mdn_rnn
        return control_setup(
            self.training,
            self.config,
            self.parallel,
            None if mdn is None else mdn.config,
            total_timesteps,
            rollout_length,
            self.dream_reward,
        )

    def _initial_state(self, setup: control.ControlSetup) -> control.ControlState:
        reset_key, state_key = jax.random.split(jax.random.key(self.seed))
        params = self.agent.params
        carry = mdn = memory = vae = None  # model-free: no M, no carry
        if params.mdn_rnn is not None:
            carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (self.num_envs,))
            mdn = init_train_state(params.mdn_rnn, setup.mdn_optimizer, state_key)
        if setup.vae_updates:
            vae_key = jax.random.fold_in(state_key, 1)
            vae = init_train_state(params.vae, setup.vae_optimizer, vae_key)
        if setup.mdn_updates or setup.vae_updates or setup.dream_from_replay:
            rows = replay.capacity_for(
                self.training.replay_steps,
                self.num_envs,
                max(setup.rollout_length, setup.sequence_length),
            )
            memory = replay.init(rows, self.env.spec, carry)
        rollout = self.env.start(reset_key, carry)
        state = control.ControlState(
            train=init_train_state(params.controller, setup.controller_optimizer),
            mdn=mdn,
            vae=vae,
            replay=memory,
            rollout=jax.tree.map(jnp.asarray, rollout),
            key=jax.random.key_data(state_key),
            updates=jnp.zeros((), jnp.int32),
            imagined_steps=jnp.zeros((), jnp.int32),
            reward=rewards.initial_state(setup, params.mdn_rnn, state_key),
        )
        # The chunk donates its state: no two leaves may share a buffer (the env's
        # reset can return one array twice, and the agent keeps its own params).
        state = jax.tree.map(jnp.copy, state)
        # The envs (and what each one carries) split over the devices; the rest
        # is replicated.
        par = self.parallel
        return par.replicate(state).replace(rollout=par.shard(state.rollout))

    def _restarted(self, state: control.ControlState) -> control.ControlState:
        """Returns a state restored from a checkpoint with a gymnasium env's
        episodes started afresh: the checkpoint holds the last observations but
        not the env's own state, and the envs here were just reset, so going on
        would pair stale observations with new episodes (and add a new
        episode's rewards to an old return). A gymnax env's state is in the
        checkpoint, so its run goes on exactly."""
        if self.env.spec.on_device:
            return state
        key = jax.random.fold_in(control.update_key(state), 1 << 30)
        carry = None
        if self.agent.mdn_rnn is not None:
            carry = mdn_rnn.initial_carry(self.agent.mdn_rnn.config, (self.num_envs,))
        rollout = jax.tree.map(jnp.asarray, self.env.start(key, carry))
        state = state.replace(rollout=self.parallel.shard(rollout))
        if state.replay is not None:  # the stored episodes end where the run did
            state = state.replace(replay=replay.cut(state.replay))
        return state

    def _chunk_fn(self, setup):
        """Returns run_chunk(state, done, count) for ``run_chunks``."""
        vae = self.agent.vae
        vae_params = None if vae is None else self.parallel.replicate(vae.params)
        real_per_update = setup.num_envs * setup.rollout_length
        count = self.training.updates_per_chunk
        if self.env.spec.on_device:  # the one place the env families differ
            compiled = jax.jit(
                functools.partial(
                    control.chunk, env=self.env, setup=setup, num_updates=count
                ),
                donate_argnums=0,
            )
            chunk = lambda state: compiled(state, vae_params)  # noqa: E731
        else:
            learn = jax.jit(control.learn, static_argnums=0)
            place = lambda tree, axis: self.parallel.shard(tree, axis=axis)  # noqa: E731

            def chunk(state):
                metrics = []
                for _ in range(count):
                    state, m = control.update(
                        self.env, setup, vae_params, state, learn, place
                    )
                    metrics.append(m)
                stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *metrics)
                return state, control.summarize(stacked)

        every = self.training.eval_every

        def run_chunk(state, done, count):
            before = int(state.updates) * real_per_update
            state, metrics = chunk(state)
            steps = int(state.updates) * real_per_update
            if every and steps // every > before // every:
                metrics = {**metrics, **self.evaluate(state, steps)}
            extra = {
                "real_env_steps": steps,
                "imagined_steps": int(state.imagined_steps),
            }
            return state, metrics, extra

        return run_chunk

    def evaluate(self, state: control.ControlState, steps: int) -> dict:
        """Returns eval/return_mean, eval/return_std and eval/distinct_episodes
        of the state's C (and M) over ``eval_episodes`` episodes of a copy of
        the env (acting as ``eval_policy`` says; the key derives from the seed
        and ``steps``). The first evaluation whose episodes were all one
        trajectory prints a notice, once per run."""
        t = self.training
        vae = self.agent.vae
        vae_params = None if vae is None else self.parallel.replicate(vae.params)
        params = self.parallel.local(control.params_of(state, vae_params))
        if getattr(self, "_eval_env", None) is None:
            self._eval_env = remake(
                self.env, min(t.eval_episodes, MAX_EVAL_ENVS), evaluation=True
            )
        key = jax.random.fold_in(jax.random.key(self.seed + 1), steps)
        deterministic = acting_as(t.eval_policy)
        evaluation = evaluate_episodes(
            key, self._eval_env, params, t.eval_episodes, deterministic=deterministic
        )
        if self.parallel.is_primary:
            notice = single_trajectory_notice(evaluation, deterministic)
            self.io.notice("single_trajectory", notice)
        return {
            "eval/return_mean": float(np.mean(evaluation.returns)),
            "eval/return_std": float(np.std(evaluation.returns)),
            "eval/distinct_episodes": evaluation.distinct,
        }

    def train(
        self, total_timesteps: int | None = None, rollout_length: int | None = None
    ) -> dict:
        """Returns the last chunk's metrics after at least ``total_timesteps`` real
        env steps (default: the training config's) of ``rollout_length`` steps per
        env per update."""
        t = self.training
        total_timesteps = (
            t.total_timesteps if total_timesteps is None else total_timesteps
        )
        rollout_length = t.rollout_length if rollout_length is None else rollout_length
        for name, value in (
            ("total_timesteps", total_timesteps),
            ("rollout_length", rollout_length),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid: must be an int >= 1")
        setup, updates = self._setup(total_timesteps, rollout_length)
        state = self._initial_state(setup)
        state, metrics = run_chunks(
            self.io,
            "controller",
            state,
            total=updates,
            chunk=t.updates_per_chunk,
            run_chunk=self._chunk_fn(setup),
            checkpoint_every=t.checkpoint_every,
            unit="updates",
            shown=("real/episode_return", "ppo/value_loss", "mdn/loss"),
            on_resume=self._restarted,
        )
        self.real_env_steps = int(state.updates) * setup.num_envs * rollout_length
        self.imagined_steps = int(state.imagined_steps)
        self.agent.controller.params = self.parallel.local(state.train.params)
        if self.agent.mdn_rnn is not None:
            self.agent.mdn_rnn.params = self.parallel.local(state.mdn.params)
        if state.vae is not None:
            self.agent.vae.params = self.parallel.local(state.vae.params)
        self.reward_fn = rewards.trained_reward_fn(
            setup, state.reward, self.parallel.local
        )
        self.state = state
        self._record_run()
        return metrics

    def _record_run(self) -> None:
        """Returns None once the agent knows the RunConfig it was trained under
        and, given a run_dir, that directory holds it (``record_trained``)."""
        record_trained(
            self.agent,
            self._env_record,
            run_dir=self.io.run_dir if self._writes_run else None,
            seed=self.seed,
            parallel=self.parallel,
            ppo=self.config,
            controller=self.training,
        )
