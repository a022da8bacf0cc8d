"""Input/output: axes, normalisation, files."""
