"""`python -m benchmarks {imagination,ppo,world-model,all} [--quick] [--json F]`."""

import sys

from benchmarks.harness import main

if __name__ == "__main__":
    sys.exit(main())
