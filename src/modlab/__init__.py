"""modlab: train, sweep and compare multi-label content-moderation classifiers, and serve them (`modlab.load`)."""

__version__ = "0.1.0"


def load(path, precision=None, device=None, threads=None, batch_size=32):
    """A Classifier from a bundle (`modlab export`), a training run dir or a .ckpt; see modlab.predict.classifier."""
    from modlab.predict.classifier import load as _load

    return _load(path, precision=precision, device=device, threads=threads, batch_size=batch_size)


__all__ = ["__version__", "load"]
