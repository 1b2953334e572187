"""Every Python block of README.md and docs/**/*.md, executed as a reader would
paste them: a page's blocks in order, in one namespace, in an empty directory.

What differs from the page, and why (shrunk in size only, as the seed
walkthrough is): the names a page's prose gives its code (``observation``,
``z_t``, a trained model's params...) are made first by ``GIVEN``, small;
``SHRINK`` swaps a size on the page for a smaller one (each swap must still
find its text, so a page that changes fails here until this file follows);
CarRacing's episodes stop after 30 steps. A statement followed by a comment
``# SomeError: message`` must raise that error with that message. A block
that cannot run here (a GPU, an hour) says ``# docs-test: skip (why)``, and
``MAX_SKIPS`` keeps those few.
"""

import ast
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import gymnasium
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SKIP = "# docs-test: skip"
MAX_SKIPS = 2
FENCE = re.compile(r"^( *)```python\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)
EXPECTED_ERROR = re.compile(r"^\s*# (\w+Error): (.+)$")

_TOUR_C = """
import jax.numpy as jnp
features = jnp.zeros((64, 32 + 256))
key = jax.random.key(3)
rewards, values, next_values = (jnp.ones((4, 2)) * i for i in (1.0, 0.5, 0.4))
terminated = truncated = jnp.zeros((4, 2), bool)
"""
_TOUR_C_BATCH = """
from janus_jax import ppo as _ppo
ones = jnp.ones(64)
batch = _ppo.Batch(features, raw, log_prob, value, ones, value + 1, ones)
"""
GIVEN = {
    # (page, index of the block) -> code run just before that block
    ("docs/api-tour.md", 2): "import numpy as np\n"
    "observation = np.zeros((64, 64, 3), np.uint8)",
    ("docs/api-tour.md", 3): """
from janus_jax.records import Windows
z_t, a_t = jnp.zeros((16, 32)), jnp.zeros((16, 3))
latents_TBZ, actions_TBA = jnp.zeros((5, 16, 32)), jnp.zeros((5, 16, 3))
latents, actions = jnp.zeros((16, 6, 32)), jnp.zeros((16, 5, 3))
rewards = dones = mask = jnp.zeros((16, 5))
""",
    ("docs/api-tour.md", 4): _TOUR_C,
    ("docs/api-tour.md", 5): """
v_params = vae.init(jax.random.key(0), VAEConfig(latent_dim=32))
m_params = params_m = mdn_rnn.init(jax.random.key(1), config)
c_params = params
z0 = jnp.zeros((2, 32))
from janus_jax.imagination import controller_act
def my_policy(key, feats):
    return controller_act(c_params, key, feats)
real_actions = jnp.zeros((7, 2, 3))
""",
    ("docs/api-tour.md", 7): """
trained_vae_params = vae.init(jax.random.key(4), VAEConfig(latent_dim=32))
trained_mdn_rnn_params = mdn_rnn.init(
    jax.random.key(5), MDNRNNConfig(latent_dim=32, action_dim=3)
)
obs = frames[0]
""",
    ("docs/guides/datasets.md", 0): """
import jax.numpy as jnp
def my_policy(key, obs):
    return jnp.zeros(obs.shape[:1], jnp.int32)
""",
    ("docs/guides/your-env.md", 2): """
# the names block 1 (run by test_custom_env.py) makes
from janus_jax import WorldModelAgent, WorldModelPPOTrainer, WorldModelTrainer
from janus_jax import WorldModelTrainingConfig
from janus_jax.envs import make
config = WorldModelTrainingConfig(num_episodes=4)
agent = WorldModelAgent((4,), 2)
""",
    ("docs/guides/your-env.md", 3): "import numpy as np\n"
    "actions = np.zeros((4, 3), np.float32)",
}
SHRINK = {
    "docs/api-tour.md": [("frames[:1000]", "frames[:4]"), ("horizon=100", "horizon=8")],
    "docs/guides/datasets.md": [
        ('"data/cartpole", 1000)', '"data/cartpole", 16)'),
        ('"data/carracing", 200, resume=True', '"data/carracing", 5, resume=True'),
    ],
    "docs/guides/your-env.md": [
        ("num_envs=1024", "num_envs=8"),
        ("RandomPolicy(env.spec.action), 256)", "RandomPolicy(env.spec.action), 16)"),
    ],
}
# Blocks another test runs (shrunk there): (page, a line of the block) -> test.
ELSEWHERE = {
    ("docs/guides/your-env.md", "WorldModelTrainer(env, config"): "test_custom_env.py",
}
GIVEN_AFTER = {("docs/api-tour.md", 4): _TOUR_C_BATCH}  # names a block's own lines use


def _blocks(page: Path) -> list[str]:
    """Returns the page's Python blocks, de-indented."""
    found = []
    for indent, body in FENCE.findall(page.read_text()):
        found.append("\n".join(line[len(indent) :] for line in body.splitlines()))
    return found


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


PAGES_WITH_CODE = [p for p in PAGES if _blocks(p)]
TRAINING = ROOT / "docs" / "guides" / "training.md"


def _python_example() -> range:
    """Returns the indices of training.md's "Training from Python" blocks (play,
    train and save, load)."""
    first = next(i for i, code in enumerate(_blocks(TRAINING)) if "def play(" in code)
    return range(first, first + 3)


def _shrunk(name: str, code: str, used: set) -> str:
    for i, (old, new) in enumerate(SHRINK.get(name, [])):
        if old in code:
            code = code.replace(old, new)
            used.add(i)
    return code


def _run(code: str, namespace: dict, where: str) -> None:
    """Executes ``code`` one top-level statement at a time; a statement followed
    by ``# XError: message`` must raise XError saying ``message``."""
    lines = code.splitlines()
    for statement in ast.parse(code).body:
        after = lines[statement.end_lineno] if statement.end_lineno < len(lines) else ""
        expected = EXPECTED_ERROR.match(after)
        compiled = compile(ast.Module([statement], []), where, "exec")
        if expected is None:
            exec(compiled, namespace)
            continue
        error, message = expected.groups()
        with pytest.raises(Exception) as caught:
            exec(compiled, namespace)
        assert type(caught.value).__name__ == error, where
        assert message.strip() in str(caught.value), where


@pytest.fixture
def small_car_racing(monkeypatch):
    """CarRacing's episodes stop after 30 steps (sync envs: this process)."""
    monkeypatch.setattr(gymnasium.registry["CarRacing-v3"], "max_episode_steps", 30)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=_name)
def test_the_page_code_runs(page, tmp_path, monkeypatch, small_car_racing):
    monkeypatch.chdir(tmp_path)
    name, used, namespace = _name(page), set(), {"__name__": "__docs__"}
    for index, code in enumerate(_blocks(page)):
        if SKIP in code or any(
            page_name == name and line in code for page_name, line in ELSEWHERE
        ):
            continue
        where = f"{name}, python block {index}"
        start = time.perf_counter()
        if (name, index) in GIVEN:
            exec(GIVEN[name, index], namespace)
        code = _shrunk(name, code, used)
        if (name, index) in GIVEN_AFTER:  # split the block where its names start
            head, tail = _split_at_first_use(code)
            _run(head, namespace, where)
            exec(GIVEN_AFTER[name, index], namespace)
            _run(tail, namespace, where)
        else:
            _run(code, namespace, where)
        print(f"{where}: {time.perf_counter() - start:.1f} s")
    if page == TRAINING:
        _check_in_a_fresh_process(namespace, tmp_path)
    assert used == set(range(len(SHRINK.get(name, [])))), (
        f"{name}: a SHRINK swap no longer finds its text on the page"
    )


def _split_at_first_use(code: str) -> tuple[str, str]:
    """Returns the block cut before its first line that uses ``batch``."""
    lines = code.splitlines()
    cut = next(
        i for i, line in enumerate(lines) if "batch)" in line or "batch," in line
    )
    return "\n".join(lines[:cut]), "\n".join(lines[cut:])


def _check_in_a_fresh_process(namespace: dict, cwd: Path) -> None:
    """Asserts training.md's agents, saved by its "Training from Python"
    blocks, act after loading (here and in a fresh process) as before."""
    play, train, load = (_blocks(TRAINING)[i] for i in _python_example())
    assert "agent.save(" in train and "load_agent(" in load
    before = namespace["before"]
    assert namespace["after"] == before
    assert len(set(before[0])) == 2  # both actions taken: the check can fail
    script = f"{play}\n{load}\nimport json\nprint(json.dumps(after))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    )
    after = json.loads(done.stdout.strip().splitlines()[-1])
    assert after == [list(actions) for actions in before]


def test_every_page_with_code_is_covered_and_opt_outs_stay_few():
    names = {_name(p) for p in PAGES_WITH_CODE}
    assert "docs/guides/training.md" in names and "docs/api-tour.md" in names
    assert {page for page, _ in GIVEN} <= names
    skips = sum(SKIP in code for page in PAGES for code in _blocks(page))
    assert skips <= MAX_SKIPS, f"{skips} docs blocks opt out of running"
