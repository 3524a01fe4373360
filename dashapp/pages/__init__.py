"""Dashboard pages: each module has ``layout`` and ``register_callbacks(app)``."""
