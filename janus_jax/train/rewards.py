"""The controller phase's reward model, set up: what ``WorldModelPPOTrainer``
does with ``reward_model=`` (see ``janus_jax.models.reward``).

A pure function is a static part of the run (``ControlSetup.dream_reward``,
compiled once); a learned ``RewardModel`` also gets its optimiser there and its
train state in ``ControlState.reward`` (so checkpoints hold it), and learns in
``control._refresh_world_model`` on M's windows.
"""

from __future__ import annotations

import jax
import optax

from janus_jax.config.training import ControllerTrainingConfig
from janus_jax.models import reward
from janus_jax.optim import TrainState, init_train_state, make_optimizer

# Folded into the controller state's key for the reward model's own keys (M's
# train state takes the state key itself, V's folds in 1).
KEY_FOLD = 2


def dream_reward(reward_model, has_world_model: bool):
    """Returns ``reward_model`` as the controller phase carries it
    (``reward.as_dream_reward``); raises ValueError for an agent without M,
    which dreams nothing."""
    resolved = reward.as_dream_reward(reward_model)
    if resolved is not None and not has_world_model:
        raise ValueError(
            "reward_model scores dreams, but this agent has no world model "
            "(features='observation'): leave reward_model=None"
        )
    return resolved


def optimizer(
    resolved, training: ControllerTrainingConfig
) -> optax.GradientTransformation | None:
    """Returns a learned reward model's optimiser (None for a function or M's
    head): Adam at its learning rate, else M's refresh's."""
    if not isinstance(resolved, reward.RewardModel):
        return None
    rate = resolved.learning_rate or training.world_model_learning_rate
    return make_optimizer(rate, resolved.max_grad_norm)


def check(setup, training: ControllerTrainingConfig) -> None:
    """Raises ValueError where the setup's reward model would never be used
    (no dreams) or taught (a learned one without M's refresh)."""
    if setup.dream_reward is None:
        return
    if not setup.dream_starts:
        raise ValueError(
            "reward_model scores dreams, but training.imagination_ratio="
            f"{training.imagination_ratio} dreams none: set a ratio > 0"
        )
    if isinstance(setup.dream_reward, reward.RewardModel) and not setup.mdn_updates:
        raise ValueError(
            "a learned reward_model takes one step per step of M's refresh, on "
            "its windows, but training.mdn_updates=0: set mdn_updates >= 1"
        )


def initial_state(setup, mdn_params, state_key: jax.Array) -> TrainState | None:
    """Returns a learned reward model's first train state (None otherwise), for
    M's latents and action vectors (``mdn_params``' config)."""
    model = setup.dream_reward
    if not isinstance(model, reward.RewardModel):
        return None
    init_key, fit_key = jax.random.split(jax.random.fold_in(state_key, KEY_FOLD))
    config = mdn_params.config
    variables = reward.init(init_key, model, config.latent_dim, config.action_dim)
    return init_train_state(variables, setup.reward_optimizer, fit_key)


def trained_reward_fn(setup, state_reward: TrainState | None, local=lambda x: x):
    """Returns the per-example reward function the run's dreams scored with at
    its end: the learned model bound to its variables (``local`` brings them
    to this host), else the setup's function (None: M's head)."""
    if state_reward is None:
        return setup.dream_reward
    return reward.scorer(setup.dream_reward, local(state_reward.params))
