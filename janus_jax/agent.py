"""The user-facing agent: V, M and C bundled, and ``act``, the agent as a policy
of any env's rollout.

The pure functions live in ``janus_jax.models`` and ``janus_jax.imagination``;
the agent only holds parameters (``janus_jax.components``) and a PRNG key (like
gymnax's gymnasium wrapper), so code written against the PyTorch World Model
README (``agent.vae.load_state_dict(...)``, ``agent.imagine_trajectory(...)``)
has a direct equivalent.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from janus_jax.acting import ActProgram, AgentState, initial_state, resizing

# The pure step of every rollout, importable from here as it always was.
from janus_jax.acting import act as act
from janus_jax.acting import act_greedy as act_greedy
from janus_jax.acting import act_mean as act_mean

# V's, M's and C's holders are importable from here too (janus_jax, the trainers).
from janus_jax.components import MDNRNN as MDNRNN
from janus_jax.components import Component as Component
from janus_jax.components import VariationalAutoencoder as VariationalAutoencoder
from janus_jax.components import init_components
from janus_jax.config.models import (
    FEATURES,
    ActionSpec,
    MDNRNNConfig,
    NetworkConfig,
    VAEConfig,
)
from janus_jax.config.tasks import TaskSlot
from janus_jax.devices import check_device
from janus_jax.imagination import (
    RewardFn,
    WorldModelParams,
)
from janus_jax.trajectory import (
    ImagineProgram,
    check_reward_fn,
    check_temperature,
    start_observations,
)


def channels_last(observation_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Returns the shape channels-last: a PyTorch-style (C, H, W) image shape such
    as the seed's (3, 64, 64) becomes (64, 64, 3), with a warning saying so."""
    shape = tuple(int(s) for s in observation_shape)
    if len(shape) == 3 and shape[0] <= 4 < min(shape[1:]):
        fixed = shape[1:] + shape[:1]
        warnings.warn(
            f"observation_shape={shape} is channels-first; janus-jax images are "
            f"channels-last, so the agent takes {fixed} (pass that to silence this)",
            stacklevel=3,
        )
        return fixed
    return shape


class WorldModelAgent:
    """V + M + C for one observation and action space, holding params and a PRNG key.

    observation_shape: (H, W, C) for images (channels-last; the seed's (C, H, W)
        is turned round with a warning) or (size,) for vectors.
    action_dim: the number of discrete actions, or the size of a continuous action.
    device: accepted for the PyTorch README's calls; JAX places arrays on its
        default backend, and a kind it does not have ("cuda" on a CPU) warns.
    features: "world_model" (C on [z, h]) or "observation": no V and no M, C
        acting on the raw observations (model-free PPO, the baseline).
    task: in a shared world model, this env's slot in M's action vector
        (``janus_jax.config.tasks``); None for a world model of one env.
    """

    def __init__(
        self,
        observation_shape: tuple[int, ...],
        action_dim: int,
        continuous_actions: bool = False,
        *,
        controller_config: NetworkConfig | None = None,
        vae_config: VAEConfig | None = None,
        mdn_rnn_config: MDNRNNConfig | None = None,
        action_low: tuple[float, ...] | None = None,
        action_high: tuple[float, ...] | None = None,
        seed: int = 0,
        device: str | None = None,
        features: str = "world_model",
        task: TaskSlot | None = None,
    ):
        if device is not None:
            check_device(device)
        if features not in FEATURES:
            raise ValueError(
                f"features={features!r} is invalid: must be one of {FEATURES}"
            )
        self.features = features
        self.seed = seed
        self.run_config = None
        """The RunConfig ``save`` writes (set by ``load_agent`` and the trainers)."""
        self.crop = None
        """(top, bottom, left, right) pixels ``act`` crops off frames before
        resizing them, as the run's env did (set by ``load_agent``)."""
        self._act_program = ActProgram()
        observation_shape = channels_last(observation_shape)
        self._observation_shape = tuple(observation_shape)
        self._default_bounds = action_low is None and action_high is None
        self.action_spec = ActionSpec(
            continuous=bool(continuous_actions),
            dim=int(action_dim),
            low=action_low,
            high=action_high,
        )
        self.controller_config = controller_config or NetworkConfig()
        self.vae, self.mdn_rnn, self.controller, self._key = init_components(
            observation_shape,
            self.action_spec,
            self.controller_config,
            vae_config,
            mdn_rnn_config,
            features=features,
            seed=seed,
            task=task,
        )

    def match_actions(self, env_action: ActionSpec, env_id: str) -> None:
        """Returns None when the agent acts in ``env_action``'s space. An agent
        made without ``action_low``/``action_high`` takes the env's box (with a
        warning): C's weights stay, only its squash into the box changes. Any
        other difference raises ValueError naming both spaces."""
        mine = self.action_spec
        if mine == env_action:
            return
        same_kind = (mine.continuous, mine.dim) == (
            env_action.continuous,
            env_action.dim,
        )
        if not (same_kind and mine.continuous and self._default_bounds):
            raise ValueError(
                f"the env's actions {env_action} differ from the agent's {mine}"
            )
        warnings.warn(
            f"the agent was made without action_low/action_high; it takes "
            f"{env_id}'s bounds low={env_action.low}, high={env_action.high}",
            stacklevel=3,
        )
        self.action_spec = env_action
        self.controller.params = self.controller.params.replace(action=env_action)
        self._default_bounds = False

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self._observation_shape

    @property
    def params(self) -> WorldModelParams:
        """All parameters as one pytree, for the pure functions and for jit."""
        if self.vae is None:
            return WorldModelParams(None, None, self.controller.params)
        return WorldModelParams(
            self.vae.params, self.mdn_rnn.params, self.controller.params
        )

    @property
    def act_traces(self) -> int:
        """How many times ``act``'s program has been compiled."""
        return self._act_program.traces

    def reset(self, num_envs: int = 1) -> AgentState:
        """Returns the state ``act`` starts ``num_envs`` envs' episodes from
        (M's carry zero)."""
        return initial_state(
            None if self.mdn_rnn is None else self.mdn_rnn.config, num_envs
        )

    def act(
        self,
        obs,
        state: AgentState,
        key: jax.Array | None = None,
        deterministic: bool | str = False,
    ) -> tuple[np.ndarray, AgentState]:
        """Returns (actions as the env takes them, the next state) for a batch of
        observations [E, *obs] as the env gives them (or one observation, and
        then one action).

        Actions are numpy: indices [E] for discrete actions, [E, A] inside the
        action box for continuous ones; sampled, or C's most likely when
        ``deterministic`` (True; "mean": the expected action of a continuous
        policy). Frames of another height and width are cropped
        (``self.crop``) and resized as the gymnasium adapter does. M's carry
        rides in the state: after an episode ends, ``state.reset_where(done)``
        (or ``reset``). Without ``key`` the agent's own key stream is used.
        One compiled program per observation shape and E (``act_traces``)."""
        if not isinstance(state, AgentState):
            raise ValueError(
                f"state={type(state).__name__} is invalid: pass agent.reset(num_envs)"
            )
        obs = np.asarray(obs)
        shape = self.observation_shape
        single = obs.ndim == len(shape)
        if single:
            obs = obs[None]
        if obs.ndim != len(shape) + 1:
            raise ValueError(
                f"obs of shape {obs.shape} is invalid: expected [num_envs, "
                f"{', '.join(map(str, shape))}] or one observation {shape}"
            )
        if obs.shape[0] != state.num_envs:
            raise ValueError(
                f"obs holds {obs.shape[0]} observations but the state is for "
                f"{state.num_envs} envs: make it with agent.reset({obs.shape[0]})"
            )
        resize = resizing(obs.shape[1:], shape, obs.dtype, self.crop)
        key = self.next_key() if key is None else key
        actions, state = self._act_program(
            self.params, self.action_spec, key, obs, state, deterministic, resize
        )
        return (actions[0] if single else actions), state

    def save(self, path, env=None):
        """Returns the directory ``path`` once it holds what ``load_agent`` needs:
        config.json (a RunConfig, as a ``janus-jax train`` run writes it) and
        the agent checkpoint.

        env: the env the agent acts in (an id, a ``janus_jax.envs.make`` env or
        a ``gymnasium.make`` env); default: the one it was loaded from or
        trained on. A directory holding another run is refused."""
        from janus_jax.run.run_dir import save_run  # run/ imports the agent

        return save_run(path, self, env)

    def next_key(self) -> jax.Array:
        """Returns a fresh key from the agent's own stream (seeded at construction)."""
        self._key, key = jax.random.split(self._key)
        return key

    @property
    def imagine_traces(self) -> int:
        """How many times ``imagine_trajectory``'s program has been compiled."""
        return self._imagine_program().traces

    def _imagine_program(self) -> ImagineProgram:
        if getattr(self, "_imagine", None) is None:
            self._imagine = ImagineProgram()
        return self._imagine

    def imagine_trajectory(
        self,
        initial_obs,
        horizon: int = 50,
        temperature: float | None = None,
        *,
        key: jax.Array | None = None,
        reward_fn: RewardFn | None = None,
        carry: tuple | None = None,
        done_mode: str = "sample",
        decode: bool = False,
        crop: tuple[int, int, int, int] | None = None,
    ) -> dict[str, Any]:
        """Returns a dream from raw observations as a dict of arrays [T, ...]
        (``[T, B, ...]`` when ``initial_obs`` is a batch [B, *obs]):

        'latents' z_t [T, Z] (z_0 = V(initial_obs)); 'actions' a_t as the env
        takes them: int32 indices [T] for discrete actions, floats [T, A] inside
        the action box for continuous ones; 'rewards' [T] (masked); 'dones'
        [T], 1 where a termination was predicted; 'mask' [T], 1 while the dream
        is alive; 'values', 'log_probs' [T] (C's); 'hiddens' h_t [T, H];
        'next_latents' z_{t+1} [T, Z]; with ``decode``, 'frames': V's decoding
        of each z_t [T, *observation_shape] (images in [0, 1]), the frame the
        agent saw when it took a_t.

        initial_obs: observations as the env gives them (numpy, lists, torch
        tensors): the agent's shape, or uint8 frames of another height and width
        (a raw 96x96 CarRacing frame), cropped (``crop``, default ``self.crop``
        where the agent has one) and resized as the gymnasium adapter does
        (``janus_jax.envs.preprocess_frames``). Without ``key`` the agent's own
        key stream is used, so successive calls differ but a fresh agent with
        the same seed repeats them. ``temperature`` defaults to the MDN-RNN
        config's; ``carry`` is M's state to start from (leaves [B, H]; None:
        zeros). ``reward_fn`` and ``done_mode`` are as in
        ``janus_jax.imagination.imagine``: a_t reaches ``reward_fn`` as M's
        vector (one-hot for discrete actions). The program compiles once per
        shape, horizon, ``reward_fn`` object, done mode and ``decode``
        (``imagine_traces``): pass one function object, not a new lambda per
        call."""
        if self.mdn_rnn is None:
            raise ValueError(
                "this agent has no world model (features='observation'): it cannot "
                "dream; make one with features='world_model'"
            )
        check_reward_fn(reward_fn)
        obs, single, resize = start_observations(
            initial_obs, self.observation_shape, self.crop if crop is None else crop
        )
        if temperature is None:
            temperature = self.mdn_rnn.config.temperature
        check_temperature(temperature)
        key = self.next_key() if key is None else key
        out = self._imagine_program()(
            self.params,
            key,
            jnp.asarray(obs),
            carry,
            jnp.float32(temperature),
            horizon=horizon,
            reward_fn=reward_fn,
            done_mode=done_mode,
            resize=resize,
            decode=decode,
        )
        if single:
            out = {k: v[:, 0] for k, v in out.items()}
        return out
