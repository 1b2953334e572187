"""What a trained agent is worth: its return in the real env (``evaluate``) and
how far M's dreams drift from the env it learned (``gap``)."""
