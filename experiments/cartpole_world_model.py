"""World Models end to end on gymnax CartPole-v1: V, then M, then C by PPO.

    python experiments/cartpole_world_model.py [--imagination-ratio 0.5] [--out DIR]

1. a uniformly random policy fills a dataset (64 envs x 512 steps, on-device);
2. V, a vector VAE, learns standardised observations;
3. M, the MDN-RNN, learns z_{t+1}, r_t and done_t on episode-aligned windows;
4. C, the PPO controller on [z, h], trains on each real rollout mixed with dreams
   started from that rollout's (z, carry) states: ``--imagination-ratio`` is the
   share of dreamed transitions in each PPO batch (0: plain PPO on [z, h]; 1:
   C learns from dreams only, the real rollouts giving it start states and M
   its refresh data). M keeps learning from each fresh real rollout
   (``--mdn-refresh-steps``, 0 freezes it);
5. C (argmax actions) and a random policy are evaluated in the real env.
Every phase is a jitted chunk (a ``lax.scan`` over updates) called from a
Python loop that logs. Writes OUT/metrics.jsonl and OUT/summary.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import pathlib
import time

import cartpole_control as control
import cartpole_data as real_data
import gymnax
import jax
import jax.numpy as jnp
import optax

from janus_jax import ppo
from janus_jax.configs import (
    ActionSpec,
    MDNRNNConfig,
    NetworkConfig,
    PPOConfig,
    VAEConfig,
)
from janus_jax.imagination import WorldModelParams
from janus_jax.models import controller, mdn_rnn, vae

ENV_ID = "CartPole-v1"


class MetricsLog:
    """Prints one progress line per logged step and appends it to metrics.jsonl."""

    def __init__(self, path: pathlib.Path):
        self.file = path.open("w")
        self.start = time.perf_counter()

    def write(self, phase: str, step: int, metrics: dict, rate: float, unit: str):
        row = {"phase": phase, "step": step, "time_s": time.perf_counter() - self.start}
        row.update({k: float(v) for k, v in metrics.items()})
        row[f"{unit}_per_s"] = rate
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        shown = " ".join(f"{k}={float(v):.4g}" for k, v in metrics.items())
        print(f"[{phase}] step {step} {shown} {unit}/s={rate:.0f}", flush=True)
        return row


def fit(log, phase, state, data, key, steps, chunk_steps, **fit_kwargs):
    """Returns (state, last chunk's metrics) after ``steps`` gradient steps, run as
    jitted chunks of ``chunk_steps`` (compiled once)."""
    chunk_steps = min(chunk_steps, steps)
    chunk = functools.partial(control.fit_chunk, num_steps=chunk_steps, **fit_kwargs)
    chunk = jax.jit(chunk, donate_argnums=0)
    metrics, done = {}, 0
    for chunk_key in jax.random.split(key, math.ceil(steps / chunk_steps)):
        tic = time.perf_counter()
        state, metrics = jax.block_until_ready(chunk(state, data, chunk_key))
        done += chunk_steps
        log.write(
            phase, done, metrics, chunk_steps / (time.perf_counter() - tic), "grad"
        )
    return state, {k: float(v) for k, v in metrics.items()}


def _number(convert, low: float, high: float = math.inf, above: bool = False):
    """Returns an argparse type: ``convert`` then check low <= x <= high (low < x
    when ``above``), so a bad value gets argparse's one-line error."""
    bound = f"> {low}" if above else f">= {low}"
    bound += f" and <= {high}" if high < math.inf else ""

    def parse(text: str):
        value = convert(text)
        if not (math.isfinite(value) and low <= value <= high) or (
            above and value == low
        ):
            raise argparse.ArgumentTypeError(f"{text} is invalid: must be {bound}")
        return value

    parse.__name__ = convert.__name__  # argparse names it in "invalid int value"
    return parse


COUNT = _number(int, 1)
NON_NEGATIVE = _number(float, 0.0)
RATE = _number(float, 0.0, above=True)


def build_parser() -> argparse.ArgumentParser:
    """Returns the command-line parser; every option says what it sets."""
    usage = "%(prog)s [options] (see --help)"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], usage=usage)
    add = p.add_argument
    add("--seed", type=int, default=0, help="PRNG seed of the whole run")
    add("--out", default="runs/cartpole", help="directory for metrics and summary")
    add("--collect-envs", type=COUNT, default=64, help="parallel envs, random data")
    add("--collect-steps", type=COUNT, default=512, help="steps per env, random data")
    add("--window", type=COUNT, default=32, help="length of M's training windows")
    add("--chunk-steps", type=COUNT, default=500, help="V/M gradient steps per chunk")
    add("--latent-dim", type=COUNT, default=4, help="size of V's latent z")
    add(
        "--kl-tolerance", type=NON_NEGATIVE, default=1.0, help="V's free nats per z dim"
    )
    add("--vae-steps", type=COUNT, default=3000, help="V gradient steps")
    add("--vae-batch", type=COUNT, default=256, help="V minibatch (observations)")
    add("--vae-lr", type=RATE, default=1e-3, help="V Adam learning rate")
    add("--hidden-dim", type=COUNT, default=64, help="M's LSTM size")
    add("--mixtures", type=COUNT, default=5, help="M's Gaussians per latent dim")
    add("--mdn-steps", type=COUNT, default=2000, help="M gradient steps")
    add("--mdn-batch", type=COUNT, default=64, help="M minibatch (windows)")
    add("--mdn-lr", type=RATE, default=1e-3, help="M Adam learning rate")
    add(
        "--mdn-refresh-steps",
        type=_number(int, 0),
        default=4,
        help="M gradient steps on each fresh real rollout (0: M frozen)",
    )
    add(
        "--ppo-steps",
        type=COUNT,
        default=500_000,
        help="real env steps of the controller phase (rounded up to whole chunks)",
    )
    add("--num-envs", type=COUNT, default=4, help="parallel envs, controller phase")
    add("--rollout-steps", type=COUNT, default=128, help="steps per env per update")
    add("--updates-per-chunk", type=COUNT, default=10, help="PPO updates per chunk")
    add("--epochs", type=COUNT, default=4, help="PPO epochs per update")
    add("--minibatches", type=COUNT, default=4, help="PPO minibatches per epoch")
    add("--lr", type=RATE, default=2.5e-4, help="PPO learning rate (annealed to 0)")
    add("--entropy-coef", type=NON_NEGATIVE, default=0.01, help="PPO entropy bonus")
    add(
        "--imagination-ratio",
        type=_number(float, 0.0, 1.0),
        default=0.5,
        help="share of dreamed transitions in each PPO batch (0: plain PPO)",
    )
    add("--horizon", type=COUNT, default=16, help="dream length in steps")
    add("--temperature", type=NON_NEGATIVE, default=1.0, help="M's sampling tau")
    add("--eval-episodes", type=COUNT, default=32, help="evaluation episodes")
    return p


def parse_args(argv: list[str] | None):
    """Returns the parsed options; a bad value exits with argparse's one-line error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    real = args.num_envs * args.rollout_steps
    if real % args.minibatches:
        parser.error(
            f"--minibatches={args.minibatches} must divide --num-envs x "
            f"--rollout-steps = {real}"
        )
    return args


def dream_starts(args) -> int:
    """Returns how many dreams each update runs so that dreamed / all transitions
    is about --imagination-ratio (at ratio 1, as many as the real rollout's)."""
    real = args.num_envs * args.rollout_steps
    ratio = args.imagination_ratio
    if ratio == 0:
        return 0
    wanted = real if ratio == 1 else ratio / (1 - ratio) * real
    # A multiple of --minibatches keeps the PPO batch divisible into minibatches.
    return args.minibatches * max(1, round(wanted / (args.horizon * args.minibatches)))


def imagined_share(args) -> float:
    """Returns the dreamed slots' share of each PPO batch (the realised ratio)."""
    dreamed = dream_starts(args) * args.horizon
    real = args.num_envs * args.rollout_steps * (args.imagination_ratio < 1)
    return dreamed / (dreamed + real)


def collect_phase(args, log, env, env_params, key):
    """Returns (episode-aligned Windows, standardisation stats, flat obs [N, O])
    of the random policy's experience."""
    tic = time.perf_counter()
    collect = functools.partial(
        real_data.collect_random,
        env=env,
        env_params=env_params,
        num_envs=args.collect_envs,
        num_steps=args.collect_steps,
    )
    traj = jax.jit(collect)(key)
    num_windows = int(real_data.count_windows(traj, args.window))
    cut = jax.jit(real_data.make_windows, static_argnums=(1, 2))
    windows = cut(traj, args.window, num_windows)
    obs = traj.obs.reshape(-1, traj.obs.shape[-1])
    stats = real_data.ObsStats(jnp.mean(obs, axis=0), jnp.std(obs, axis=0) + 1e-6)
    metrics = {"episodes": jnp.sum(traj.terminated | traj.truncated)}
    metrics["windows"] = num_windows
    steps = obs.shape[0]
    log.write("collect", steps, metrics, steps / (time.perf_counter() - tic), "env")
    return windows, stats, obs


def world_model_phase(args, log, windows, stats, obs, num_actions, key):
    """Returns (V params, M's FitState, M's optimizer, losses) trained on the data."""
    vae_key, vae_fit_key, mdn_key, mdn_fit_key = jax.random.split(key, 4)
    vae_config = VAEConfig(
        observation_size=obs.shape[-1],
        latent_dim=args.latent_dim,
        kl_tolerance=args.kl_tolerance,
        hidden_sizes=(64, 64),
    )
    params = vae.init(vae_key, vae_config)
    optimizer = optax.adam(args.vae_lr)
    vae_state, vae_losses = fit(
        log,
        "vae",
        control.FitState(params, optimizer.init(params)),
        real_data.normalize(stats, obs),
        vae_fit_key,
        args.vae_steps,
        args.chunk_steps,
        loss_fn=vae.loss,
        optimizer=optimizer,
        batch_size=args.vae_batch,
    )
    mdn_config = MDNRNNConfig(
        latent_dim=args.latent_dim,
        action_dim=num_actions,
        hidden_dim=args.hidden_dim,
        num_mixtures=args.mixtures,
        temperature=args.temperature,
    )
    encode = jax.jit(real_data.to_sequences, static_argnums=3)
    sequences = encode(vae_state.params, stats, windows, num_actions)
    params = mdn_rnn.init(mdn_key, mdn_config)
    optimizer = optax.adam(args.mdn_lr)
    mdn_state, mdn_losses = fit(
        log,
        "mdn",
        control.FitState(params, optimizer.init(params)),
        sequences,
        mdn_fit_key,
        args.mdn_steps,
        args.chunk_steps,
        loss_fn=control.mdn_loss,
        optimizer=optimizer,
        batch_size=args.mdn_batch,
    )
    losses = {"vae": vae_losses, "mdn": mdn_losses}
    return vae_state.params, mdn_state, optimizer, losses


def control_phase(args, log, env, env_params, stats, vae_params, mdn_fit, key):
    """Returns (the final ControlState, real steps, dreamed steps, last metrics)."""
    mdn_state, mdn_optimizer = mdn_fit
    num_actions = env.num_actions
    real_per_update = args.num_envs * args.rollout_steps
    starts = dream_starts(args)
    use_real = args.imagination_ratio < 1
    batch = real_per_update * use_real + starts * args.horizon
    ppo_config = PPOConfig(
        learning_rate=args.lr,
        n_epochs=args.epochs,
        batch_size=batch // args.minibatches,
        gamma=0.99,
        gae_lambda=0.95,
        entropy_coef=args.entropy_coef,
        anneal_lr=True,
    )
    num_chunks = math.ceil(args.ppo_steps / (real_per_update * args.updates_per_chunk))
    grad_steps = num_chunks * args.updates_per_chunk * args.epochs * args.minibatches
    setup = control.ControlSetup(
        env=env,
        env_params=env_params,
        stats=stats,
        num_envs=args.num_envs,
        num_steps=args.rollout_steps,
        dream_starts=starts,
        horizon=args.horizon,
        temperature=args.temperature,
        use_real=use_real,
        window=args.window,
        num_windows=real_data.max_windows(
            args.rollout_steps, args.num_envs, args.window
        ),
        mdn_refresh_steps=args.mdn_refresh_steps,
        mdn_optimizer=mdn_optimizer,
        ppo=ppo_config,
        optimizer=ppo.make_optimizer(ppo_config, grad_steps),
    )
    init_key, reset_key, chunks_key = jax.random.split(key, 3)
    controller_params = controller.init(
        init_key,
        NetworkConfig(layer_sizes=(64, 64), activation="tanh"),
        ActionSpec(continuous=False, dim=num_actions),
        args.latent_dim + args.hidden_dim,
    )
    env_obs, env_state = real_data.env_reset(env, env_params, reset_key, args.num_envs)
    carry = mdn_rnn.initial_carry(mdn_state.params.config, (args.num_envs,))
    state = control.ControlState(
        train=ppo.init_train_state(controller_params, setup.optimizer),
        mdn=mdn_state,
        env_state=env_state,
        obs=env_obs,
        carry=carry,
        episode_return=jnp.zeros(args.num_envs),
    )
    chunk = functools.partial(
        control.control_chunk, setup=setup, num_updates=args.updates_per_chunk
    )
    chunk = jax.jit(chunk, donate_argnums=0)
    real_steps, dreamed, metrics = 0, 0, {}
    for chunk_key in jax.random.split(chunks_key, num_chunks):
        tic = time.perf_counter()
        state, metrics = jax.block_until_ready(chunk(state, vae_params, chunk_key))
        steps = args.updates_per_chunk * real_per_update
        real_steps += steps
        dreamed += int(metrics.get("dream/steps", 0))
        log.write(
            "ppo", real_steps, metrics, steps / (time.perf_counter() - tic), "env"
        )
    return state, real_steps, dreamed, {k: float(v) for k, v in metrics.items()}


def main(argv: list[str] | None = None) -> dict:
    """Runs the five phases and returns the summary written to OUT/summary.json."""
    args = parse_args(argv)
    wall_start = time.perf_counter()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(out / "metrics.jsonl")
    env, env_params = gymnax.make(ENV_ID)
    keys = jax.random.split(jax.random.key(args.seed), 6)

    windows, stats, obs = collect_phase(args, log, env, env_params, keys[0])
    vae_params, mdn_state, mdn_optimizer, losses = world_model_phase(
        args, log, windows, stats, obs, env.num_actions, keys[1]
    )
    state, real_steps, dreamed, losses["ppo"] = control_phase(
        args,
        log,
        env,
        env_params,
        stats,
        vae_params,
        (mdn_state, mdn_optimizer),
        keys[2],
    )

    params = WorldModelParams(vae_params, state.mdn.params, state.train.params)
    evaluate = functools.partial(
        control.evaluate,
        env=env,
        env_params=env_params,
        stats=stats,
        num_episodes=args.eval_episodes,
    )
    evaluate = jax.jit(evaluate, static_argnames="deterministic")
    returns = {
        "controller_argmax": evaluate(keys[3], params=params, deterministic=True),
        "controller_sampled": evaluate(keys[4], params=params, deterministic=False),
        "random": evaluate(keys[5], params=None),
    }
    means = {f"{k}_mean": float(jnp.mean(v)) for k, v in returns.items()}
    log.write("eval", real_steps, means, args.eval_episodes, "episodes")
    summary = {
        "env_id": ENV_ID,
        "seed": args.seed,
        "eval_policy": "argmax of C's logits on [z, h]",
        "eval_return_mean": means["controller_argmax_mean"],
        "eval_return_std": float(jnp.std(returns["controller_argmax"])),
        "eval_episodes": args.eval_episodes,
        "eval_sampled_return_mean": means["controller_sampled_mean"],
        "random_return_mean": means["random_mean"],
        "random_return_std": float(jnp.std(returns["random"])),
        "real_env_steps": obs.shape[0] + real_steps,
        "real_env_steps_random_data": obs.shape[0],
        "real_env_steps_controller": real_steps,
        "imagined_steps": dreamed,
        "imagination_ratio": args.imagination_ratio,
        "dream_starts_per_update": dream_starts(args),
        "imagined_share_of_ppo_batch": imagined_share(args),
        "final_losses": losses,
        "obs_stats": {"mean": stats.mean.tolist(), "std": stats.std.tolist()},
        "args": vars(args),
        "wall_time_s": time.perf_counter() - wall_start,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"eval: controller {summary['eval_return_mean']:.1f} +- "
        f"{summary['eval_return_std']:.1f} (argmax, {args.eval_episodes} episodes; "
        f"sampled {summary['eval_sampled_return_mean']:.1f}), random "
        f"{summary['random_return_mean']:.1f}; real steps {summary['real_env_steps']}, "
        f"imagined {dreamed}; wall {summary['wall_time_s']:.0f}s"
    )
    return summary


if __name__ == "__main__":
    main()
