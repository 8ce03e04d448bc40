"""Experiments built on radeval and its trainers (not part of the installed library)."""
