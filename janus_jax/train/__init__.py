"""Trainers: jitted chunks of updates inside a plain Python loop that does the I/O."""
