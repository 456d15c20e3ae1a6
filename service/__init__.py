"""The Pathways HTTP service: JSON API under /v1, advisor and student pages, health and metrics.

``service.app.create_app(settings)`` builds the app; nothing connects at import. Layers:
``routes/`` (thin FastAPI routes) → ``handlers`` (use cases over a unit of work), ``live`` (scoring
with the held model), ``auth`` (tokens and visibility) → ``records`` / ``recommender`` / ``training``.

Behaviour others rely on:

- The promoted model (``records.db.promoted_version``) is loaded at start-up, trial-scored, and
  swapped for a newly promoted one by a background check every 2 s; a version that fails to load is
  logged and the previous one keeps serving.
- Live lists are cached per model version for 5 minutes and the target term's context for 1 minute
  (refreshed in the background); a student's exclusions (advisor reject/replace, their own dismiss)
  are read on every request, so they apply at once, live and stored.
- Every review and feedback writes a ``review``/``feedback`` row and an ``audit_log`` entry (actor
  ``role:name``, before and after).
- Errors: 401 missing/unknown token, 403 role, 404 not found or not visible, 409 conflict (already
  reviewed, nothing to roll back), 413 body too large, 422 invalid input with field paths, 503 model or
  database unavailable; 500 only for bugs, with a request id.
"""
