"""The ExperimentOS application: CLI, services, memo renderers and the Dash UI.

Importing this package, the CLI or the renderers does not import Dash; only
``experimentos serve`` (``dashapp.app``) does.
"""

__all__: list[str] = []  # the package itself exports nothing: import its modules
