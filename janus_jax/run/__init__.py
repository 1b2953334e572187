"""A run directory's files: atomic writes (``files``), checkpoints per phase
(``checkpoint``), the metrics log with its TensorBoard mirror (``metrics_log``),
the one-writer lock (``lock``), and loading a run back (``run_dir``).

Nothing is imported here: ``files`` serves the dataset writer below the models,
while ``run_dir`` builds agents, so each module is imported by its own path."""
