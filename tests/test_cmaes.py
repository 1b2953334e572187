"""controller.algorithm="cmaes" (train/evolution.py): the search on a quadratic
with a known optimum, a linear C that finds the one paying action of a one-step
env, the dream fitness against a Python loop over the same candidates, the
real selection of fitness="both" against a loop over the chunks' means, and a
search resumed from its checkpoint against one run straight through."""

import dataclasses

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from evosax.algorithms import CMA_ES
from probe_envs import SignBandit

from janus_jax import MDNRNNConfig, NetworkConfig, VAEConfig, WorldModelAgent
from janus_jax.config.training import CMAESConfig, ControllerTrainingConfig
from janus_jax.diagnostics.evaluate import evaluate_episodes
from janus_jax.envs import GymnasiumEnv, make
from janus_jax.imagination import controller_act, imagine
from janus_jax.models import mdn_rnn
from janus_jax.train import evolution
from janus_jax.train.loop import RunIO


def test_the_search_finds_a_quadratics_optimum():
    target = jnp.array([0.5, -1.0, 2.0, 0.0, 1.5])
    es = CMA_ES(population_size=12, solution=jnp.zeros(5))
    params = es.default_params.replace(std_init=jnp.float32(1.0))
    state = es.init(jax.random.key(0), jnp.zeros(5), params)

    def score(population):  # higher is better: the peak at ``target``
        return -jnp.sum((population - target) ** 2, axis=1)

    for g in range(120):
        state, fitness = evolution.search_step(
            es, params, state, jax.random.key(g), score
        )
    np.testing.assert_allclose(state.mean, target, atol=1e-3)
    assert float(jnp.max(fitness)) > -1e-5


def test_a_linear_c_finds_the_paying_action_of_a_one_step_env():
    env = GymnasiumEnv.from_envs([SignBandit() for _ in range(16)])
    agent = WorldModelAgent(
        (2,),
        2,
        features="observation",
        controller_config=NetworkConfig(layer_sizes=()),
        seed=1,
    )
    obs = jnp.array([[1.0, 1.0], [-1.0, 1.0]])

    def actions():
        return controller_act(
            agent.controller.params, jax.random.key(0), obs, deterministic=True
        ).action

    assert actions().tolist() != [1, 0]  # the initial C is wrong on a sign
    config = CMAESConfig(population=8, generations=10, fitness="real", rollouts=16)
    trainer = evolution.CMAESTrainer(agent, env, config, seed=0)
    trainer.train()
    # the kept C (the search's mean) acts right on both signs
    np.testing.assert_array_equal(actions(), [1, 0])
    # every candidate played 16 one-step episodes a generation
    assert trainer.real_env_steps == 10 * 8 * 16
    assert trainer.imagined_steps == 0


def _cartpole_agent(seed=0):
    return WorldModelAgent(
        (4,),
        2,
        vae_config=VAEConfig(observation_size=4, latent_dim=3, hidden_sizes=(8,)),
        mdn_rnn_config=MDNRNNConfig(
            latent_dim=3, action_dim=2, hidden_dim=8, num_mixtures=2
        ),
        controller_config=NetworkConfig(layer_sizes=()),
        seed=seed,
    )


def test_the_dream_fitness_matches_a_loop_over_the_candidates():
    agent = _cartpole_agent()
    params = agent.params
    flat, unravel = jax.flatten_util.ravel_pytree(evolution.actor_of(params.controller))
    population = jax.random.normal(jax.random.key(1), (3, flat.size))
    z0 = jax.random.normal(jax.random.key(2), (5, 3))
    carry0 = mdn_rnn.initial_carry(params.mdn_rnn.config, (5,))
    key, horizon = jax.random.key(3), 12
    fitness, steps = evolution.dream_fitness(
        key, params, population, z0, carry0, unravel=unravel, horizon=horizon
    )
    for p in range(3):
        # the candidate's linear actor, written out by hand
        w = np.asarray(population[p])
        kernel, bias = w[2:].reshape(11, 2), w[:2]  # ravel order: bias, kernel
        c = evolution.with_actor(
            params.controller, {"Dense_0": {"bias": bias, "kernel": kernel}}
        )

        def policy(k, feats, c=c):
            return controller_act(c, k, feats, deterministic=True)

        dream = imagine(
            key, params.replace(controller=c), z0, carry0, horizon, policy=policy
        )
        reward = np.asarray(dream.reward, np.float64)
        mask = np.asarray(dream.mask, np.float64)
        np.testing.assert_allclose(
            fitness[p], (reward * mask).sum(axis=0).mean(), rtol=1e-5
        )
        assert int(steps[p]) == int(mask.sum())


def test_the_linear_actor_is_what_ravel_flattens():
    # the hand-written layout of the previous test: bias first, then kernel
    actor = evolution.actor_of(_cartpole_agent().params.controller)
    flat, _ = jax.flatten_util.ravel_pytree(actor)
    np.testing.assert_array_equal(flat[:2], actor["Dense_0"]["bias"])
    np.testing.assert_array_equal(
        flat[2:], np.asarray(actor["Dense_0"]["kernel"]).ravel()
    )


SMALL_SEARCH = CMAESConfig(
    population=4, rollouts=4, horizon=10, generations_per_chunk=1, select_episodes=4
)


def _search(run_dir, generations, resume=False, fitness="dream", env=None):
    agent = _cartpole_agent(seed=4)
    env = env or make("CartPole-v1", num_envs=4)
    config = dataclasses.replace(SMALL_SEARCH, generations=generations, fitness=fitness)
    io = RunIO(run_dir=run_dir, progress=False, resume=resume)
    trainer = evolution.CMAESTrainer(agent, env, config, seed=7, io=io)
    trainer.train()
    return trainer


@pytest.mark.parametrize("fitness", ["dream", "both"])
def test_a_resumed_search_continues_exactly(tmp_path, fitness):
    straight = _search(tmp_path / "a", 4, fitness=fitness)
    _search(tmp_path / "b", 2, fitness=fitness)  # stops after generation 2 ...
    resumed = _search(tmp_path / "b", 4, resume=True, fitness=fitness)  # ... to 4
    for name in ("mean", "std", "C", "p_std", "p_c"):
        np.testing.assert_array_equal(
            getattr(resumed.state["es"], name), getattr(straight.state["es"], name)
        )
    assert resumed.imagined_steps == straight.imagined_steps > 0
    assert resumed.real_env_steps == straight.real_env_steps
    if fitness == "both":
        for name in ("kept", "kept_return"):
            np.testing.assert_array_equal(resumed.state[name], straight.state[name])


def test_both_keeps_the_chunks_mean_that_scores_best_on_real_episodes():
    env = make("CartPole-v1", num_envs=4)
    both = _search(None, 3, fitness="both", env=env)
    # The search itself is the dream search's: its mean after 1, 2 and 3
    # generations, each from a dream-only search of that length.
    dreams = [_search(None, g, env=env) for g in (1, 2, 3)]
    np.testing.assert_array_equal(both.state["es"].mean, dreams[-1].state["es"].mean)
    assert both.imagined_steps == dreams[-1].imagined_steps
    # Each chunk's mean on the 4 selecting episodes (the same starts each time).
    params = _cartpole_agent(seed=4).params
    key = jax.random.fold_in(jax.random.key(7), evolution.SELECT)
    scores, steps = [], 0
    for d in dreams:
        c = evolution.with_actor(params.controller, d.unravel(d.state["es"].mean))
        run = evaluate_episodes(key, env, params.replace(controller=c), 4)
        scores.append(float(np.mean(run.returns)))
        steps += int(np.sum(run.lengths))
    best = int(np.argmax(scores))
    np.testing.assert_array_equal(both.state["kept"], dreams[best].state["es"].mean)
    np.testing.assert_allclose(float(both.state["kept_return"]), max(scores))
    assert both.real_env_steps == steps > 0
    # and the agent's C is the kept mean, not the last
    flat, _ = jax.flatten_util.ravel_pytree(
        evolution.actor_of(both.agent.controller.params)
    )
    np.testing.assert_array_equal(flat, dreams[best].state["es"].mean)


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(ValueError, match="fitness='dream'.*no M to dream"):
        ControllerTrainingConfig(
            algorithm="cmaes", features="observation", imagination_ratio=0.0
        )
    with pytest.raises(ValueError, match="fitness='both'.*no M to dream"):
        ControllerTrainingConfig(
            algorithm="cmaes",
            features="observation",
            imagination_ratio=0.0,
            cmaes=CMAESConfig(fitness="both"),
        )
    with pytest.raises(ValueError, match="population=1 is invalid"):
        CMAESConfig(population=1)
    with pytest.raises(ValueError, match="select_episodes=0 is invalid"):
        CMAESConfig(select_episodes=0)
    wide = WorldModelAgent(
        (4,), 2, controller_config=NetworkConfig(layer_sizes=(256, 256)), seed=0
    )
    with pytest.raises(ValueError, match=r"layer_sizes=\[\]"):
        evolution.CMAESTrainer(
            wide, make("CartPole-v1", num_envs=2), CMAESConfig(rollouts=2)
        )


@pytest.mark.parametrize("fitness", ["real", "both"])
def test_the_pipeline_trains_c_by_cmaes_and_says_so(tmp_path, fitness):
    from janus_jax.config import presets
    from janus_jax.config.run import apply_overrides
    from janus_jax.train import pipeline

    config = apply_overrides(
        presets.tiny(),
        [
            "controller.algorithm=cmaes",
            f"controller.cmaes.fitness={fitness}",
            "controller.cmaes.population=4",
            "controller.cmaes.generations=2",
            "controller.cmaes.rollouts=2",
            "controller.cmaes.generations_per_chunk=1",
            "network.layer_sizes=[]",
        ],
    )
    summary = pipeline.run(config, tmp_path, progress=False)
    assert summary["algorithm"] == "cmaes"
    rows = [r for r in pipeline.read_metrics(tmp_path / "metrics.jsonl")
            if r["phase"] == "controller"]  # fmt: skip
    assert [r["step"] for r in rows] == [1, 2]
    # the controller's real steps are the candidates' episodes ("real") or the
    # selecting episodes after each chunk ("both")
    assert summary["controller_env_steps"] == rows[-1]["cmaes/real_steps"] > 0
    if fitness == "both":
        assert rows[-1]["cmaes/kept_real"] == max(r["cmaes/mean_real"] for r in rows)
        assert summary["imagined_steps"] > 0
    assert summary["real_env_steps"] == (
        summary["random_data_steps"] + summary["controller_env_steps"]
    )
