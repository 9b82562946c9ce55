"""modlab: train, sweep and compare multi-label content-moderation classifiers."""

__version__ = "0.1.0"
