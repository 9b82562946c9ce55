"""Serve a model outside the harness: `modlab.load` (Classifier API) and `modlab predict` (batch files)."""
