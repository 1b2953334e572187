"""``python -m janus_jax.cli ARGS``: the same as ``janus-jax ARGS``."""

import sys

from janus_jax.cli import main

sys.exit(main())
