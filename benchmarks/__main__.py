"""``python -m benchmarks imagination [--quick] [--json FILE]``."""

import sys

from benchmarks import imagination

BENCHMARKS = {"imagination": imagination.main}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        names = ",".join(BENCHMARKS)
        sys.exit(f"usage: python -m benchmarks {{{names}}} [--quick] [--json FILE]")
    BENCHMARKS[sys.argv[1]](sys.argv[2:])
