"""`modlab serve`: the loaded models behind a moderation HTTP API and a page comparing them side by side.

  models.py     `name=PATH` arguments -> loaded Classifiers (all or none), thread caps, their /v1/models entry
  batching.py   one micro-batcher per model: requests arriving together run as one batch, off the event loop
  schemas.py    request/response shapes of /v1/moderations and /v1/compare, and the request limits
  telemetry.py  Prometheus counters and histograms (/metrics)
  app.py        the FastAPI app: routes, JSON errors, body limit, API key, the page at /
  server.py     uvicorn on 127.0.0.1, graceful shutdown on SIGTERM
  page/         the comparison page (HTML, CSS, JS; no external resources)
"""
