"""The agent as a policy: ``act``, the pure step a rollout calls with device
arrays (V, C and M's carry advanced), and for a plain env loop ``AgentState``
(M's carry between steps) and ``ActProgram``, the one compiled program behind
``WorldModelAgent.act``, where the observations come as the env gives them
(numpy, a batch ``[E, *obs]``, frames of any size) and the actions go back as
the env takes them (numpy: indices for ``Discrete``, values inside the box for
``Box``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from janus_jax.config.models import ActionSpec
from janus_jax.imagination import (
    ActInfo,
    WorldModelParams,
    controller_act,
    observation_features,
    world_step,
)
from janus_jax.models import mdn_rnn, vae
from janus_jax.records import PolicyStep


@flax.struct.dataclass
class AgentState:
    """What ``WorldModelAgent.act`` carries from one step to the next, for E envs."""

    carry: Any
    """M's recurrent state, leaves [E, H] (None for a model-free agent)."""
    num_envs: int = flax.struct.field(pytree_node=False)
    """E, the envs acted for."""

    def reset_where(self, done) -> AgentState:
        """Returns the state with M's carry zeroed for the envs whose episode
        ended (``done`` [E] bool, e.g. ``terminated | truncated``): their next
        observation starts a new episode, as in training."""
        done = np.asarray(done, bool).reshape(-1)
        if done.shape != (self.num_envs,):
            raise ValueError(
                f"done of shape {done.shape} is invalid: expected ({self.num_envs},), "
                "one flag per env"
            )
        if self.carry is None:
            return self
        from janus_jax.envs.rollout import reset_where  # envs load on first use

        return self.replace(carry=reset_where(jnp.asarray(done), self.carry))


def initial_state(mdn_config, num_envs: int) -> AgentState:
    """Returns the state of ``num_envs`` envs at the start of their episodes
    (M's carry zero; ``mdn_config`` None for a model-free agent)."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
        raise ValueError(f"num_envs={num_envs!r} is invalid: must be an int >= 1")
    if num_envs < 1:
        raise ValueError(f"num_envs={num_envs!r} is invalid: must be an int >= 1")
    carry = None
    if mdn_config is not None:
        carry = mdn_rnn.initial_carry(mdn_config, (int(num_envs),))
    return AgentState(carry=carry, num_envs=int(num_envs))


def resizing(
    obs_shape: tuple[int, ...], shape: tuple[int, ...], dtype, crop
) -> tuple | None:
    """Returns the (size, crop) that turns frames of ``obs_shape`` into the
    agent's ``shape`` as the gymnasium adapter does (None: already that shape);
    raises ValueError for observations no preprocessing makes fit."""
    if obs_shape == shape and crop is None:
        return None
    is_frames = len(shape) == 3 and len(obs_shape) == 3 and np.dtype(dtype) == np.uint8
    if is_frames and obs_shape[-1] == shape[-1]:
        return shape[:2], crop
    raise ValueError(
        f"observations of shape {obs_shape} and dtype {np.dtype(dtype)} are "
        f"invalid: the agent takes {shape} (frames of another height and width "
        "are resized: uint8 with the same channels)"
    )


def act(
    params: WorldModelParams,
    key: jax.Array,
    obs: jax.Array,
    carry: tuple,
    deterministic: bool | str = False,
) -> PolicyStep:
    """Returns the controller's step on real observations [E, ...]: z_t = V(obs),
    a_t = C([z_t, h_t]) (sampled, or as ``controller_act``'s ``deterministic``
    says: True the mode, "mean" the expected action), and M's
    carry advanced by (z_t, a_t) as the state; ``info`` is the ActInfo.

    A ``janus_jax.envs.RolloutPolicy`` (params, key, obs, state), so every env rollout
    can run the agent: ``env.rollout(act, params, state, key, T)``. Without V
    (``params.vae`` None: model-free PPO) C acts on the observations' features
    and the state (None) passes through."""
    c_params = params.controller
    if params.vae is None:  # model-free: C acts on the observations, no M
        feats = observation_features(obs)
        choice = controller_act(c_params, key, feats, deterministic)
        info = ActInfo(
            latent=feats,
            carry=None,
            raw_action=choice.raw_action,
            log_prob=choice.log_prob,
            value=choice.value,
            next_hidden=None,
            hidden=None,
        )
        return PolicyStep(choice.action, carry, info)
    latent = vae.get_latent(params.vae, obs)
    policy = lambda k, f: controller_act(c_params, k, f, deterministic)  # noqa: E731
    next_carry, _, info, action = world_step(params, policy, carry, latent, key)
    return PolicyStep(action, next_carry, info)


act_greedy = partial(act, deterministic=True)
"""``act`` with argmax (discrete) or mode (continuous) actions: for evaluation."""
act_mean = partial(act, deterministic="mean")
"""``act`` with the expected action (continuous; argmax for discrete actions)."""
# ActProgram's branches, in lax.switch's order: ``deterministic`` -> index.
_CHOICES = (False, True, "mean")


class ActProgram:
    """The agent's compiled step: preprocessing, V, C and M in one program,
    compiled once per observation shape and number of envs (``traces`` counts
    the compilations); sampled and greedy actions share it."""

    def __init__(self):
        self.traces = 0
        self._compiled = jax.jit(self._step, static_argnames=("resize",))

    def _step(self, params, key, obs, carry, deterministic, resize) -> PolicyStep:
        from janus_jax.envs.preprocess import preprocess_frames

        self.traces += 1  # runs only while JAX traces: one per compilation
        if resize is not None:
            obs = preprocess_frames(obs, *resize)
        elif obs.dtype != jnp.uint8:
            obs = obs.astype(jnp.float32)
        return jax.lax.switch(
            deterministic,
            [partial(act, params, key, obs, carry, choice) for choice in _CHOICES],
        )

    def __call__(
        self,
        params: WorldModelParams,
        action: ActionSpec,
        key: jax.Array,
        obs: np.ndarray,
        state: AgentState,
        deterministic: bool | str,
        resize: tuple | None,
    ) -> tuple[np.ndarray, AgentState]:
        """Returns (actions [E] int32 or [E, A] float32 as numpy, next state)."""
        if deterministic not in _CHOICES:
            raise ValueError(
                f"deterministic={deterministic!r} is invalid: must be False "
                "(sampled actions), True (the mode) or 'mean' (the expected action)"
            )
        choice = jnp.int32(_CHOICES.index(deterministic))
        step = self._compiled(
            params, key, jnp.asarray(obs), state.carry, choice, resize
        )
        actions = np.asarray(step.action)
        actions = actions.astype(np.float32 if action.continuous else np.int64)
        return actions, state.replace(carry=step.state)
