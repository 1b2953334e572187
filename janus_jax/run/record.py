"""The run ``WorldModelPPOTrainer`` leaves: the env as config.json records it,
checked when the trainer is made (an env that cannot be recorded fails before
any update, not after the last), and, after ``train``, the agent's RunConfig
and, given a run_dir, config.json with the agent checkpoint."""

from __future__ import annotations

from pathlib import Path

from janus_jax.agent import WorldModelAgent
from janus_jax.envs.custom import recorded_env
from janus_jax.parallel import DataParallel
from janus_jax.run.run_dir import agent_config, check_rebuilds, load_config, write_run


def recorded_run_env(env, agent: WorldModelAgent, writes: bool) -> tuple[str, dict]:
    """Returns (id, kwargs) that name the janus-jax ``env`` in a RunConfig (a
    factory's env by its class path and arguments). ``writes``: the run goes to
    disk, so a ValueError says now, in one line, what to do where they cannot
    make the env again in another process or would make one the agent does not
    fit; otherwise they come back as they are where they cannot be recorded."""
    try:
        env_id, kwargs = recorded_env(env.spec.env_id, env.made_with, strict=writes)
        if writes:
            check_rebuilds(env_id, kwargs, agent)
    except ValueError as err:
        raise ValueError(
            f"run_dir is given, so config.json must name the env to load the agent "
            f"again: {err} (or pass run_dir=None to keep nothing on disk)"
        ) from None
    return env_id, kwargs


def record_trained(
    agent: WorldModelAgent,
    env_record: tuple[str, dict],
    *,
    run_dir: Path | None,
    seed: int,
    parallel: DataParallel,
    **sections,
) -> None:
    """Returns None once the agent knows the RunConfig it was trained under
    (``agent.save`` writes it: the env record, ``seed`` and the ``sections``
    over the agent's own) and, given a ``run_dir``, that directory holds it as
    config.json (over the sections of a config already there: the world
    model's run, say) with the agent checkpoint (``load_agent`` opens it)."""
    base = agent.run_config
    if run_dir is not None and (run_dir / "config.json").exists():
        base = load_config(run_dir)
    env_id, env_kwargs = env_record
    config = agent_config(agent, env_id, env_kwargs, seed=seed, base=base, **sections)
    agent.run_config = config
    if run_dir is not None:
        write_run(run_dir, agent, config, "controller", parallel)
