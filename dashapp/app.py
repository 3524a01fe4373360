"""The Dash application: shell, pages and server (``experimentos serve``).

Each page module exposes ``layout`` and ``register_callbacks(app)``. Callbacks are
registered on the app object rather than with the global ``dash.callback`` because
Dash moves global callbacks into the *first* app created, and the tests create one app
per browser session.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Dash, dcc, html

from dashapp import ids
from dashapp.jobs import ThreadJobManager
from dashapp.pages import experiment, history, home, memo, new, results
from dashapp.services import DEFAULT_LARGE_UPLOAD_LIMIT_BYTES, DEFAULT_UPLOAD_LIMIT_BYTES, load_samples
from dashapp.uploads import prune_staging, register_large_upload
from storage.database import ExperimentDatabase, default_db_path

__all__ = ["create_app", "run_server"]

ROOT = Path(__file__).resolve().parent.parent
PAGES = (
    (home, "/", "Home", None),
    (new, "/new", "New Experiment", None),
    (results, "/results", "Results", None),
    (memo, "/memo", "Decision Memo", None),
    (history, "/history", "History", None),
    (experiment, None, "Experiment", "/experiments/<experiment_id>"),
)


def _shell() -> html.Div:
    links = [dbc.NavItem(dbc.NavLink(title, href=path, active="exact")) for _, path, title, _ in PAGES if path]
    navbar = dbc.Navbar(dbc.Container([
        dbc.NavbarBrand([html.Span("Experiment", className="fw-light"), html.Span("OS", className="fw-bold")],
                        href="/"),
        dbc.Nav(links, navbar=True, className="ms-auto"),
    ], fluid=True), color="dark", dark=True, className="mb-3", id=ids.NAVBAR)
    return html.Div([
        dcc.Store(id=ids.SESSION_STORE, storage_type="session"),
        navbar,
        dbc.Container(dash.page_container, fluid=True, className="pb-5 app-main"),
        html.Footer(dbc.Container(html.Small(
            "ExperimentOS · decisions for A/B tests · data stays on this machine", className="text-muted"),
            fluid=True), className="py-3 border-top mt-4"),
    ])


def create_app(*, db: str | os.PathLike[str] | None = None, load_sample_experiments: bool = True,
               upload_limit_bytes: int | None = None, large_upload_limit_bytes: int | None = None) -> Dash:
    """Build the app on the database at ``db`` (default: SPEC §6), loading the samples into a new one."""
    database = ExperimentDatabase(db)
    if load_sample_experiments:
        load_samples(database)
    else:
        database.schema_version()  # creates / migrates, and fails early on a bad file
    limit = upload_limit_bytes or int(float(os.environ.get("EXPERIMENTOS_UPLOAD_LIMIT_MB", "0")) * 1024 * 1024) \
        or DEFAULT_UPLOAD_LIMIT_BYTES
    large_limit = large_upload_limit_bytes \
        or int(float(os.environ.get("EXPERIMENTOS_LARGE_UPLOAD_LIMIT_MB", "0")) * 1024 * 1024) \
        or DEFAULT_LARGE_UPLOAD_LIMIT_BYTES
    jobs = ThreadJobManager()
    app = Dash(
        __name__,
        background_callback_manager=jobs,
        use_pages=True,
        pages_folder="",
        assets_folder=str(ROOT / "assets"),
        title="ExperimentOS",
        suppress_callback_exceptions=True,
        update_title=None,
    )
    for module, path, title, template in PAGES:
        options: dict[str, Any] = {"path_template": template} if template else {"path": path}
        dash.register_page(module.__name__, name=title, title=f"{title} · ExperimentOS", layout=module.layout,
                           **options)
        module.register_callbacks(app)
    app.layout = _shell()
    server = app.server
    jobs.attach(server)
    server.config["EXPERIMENTOS_DB"] = str(database.path)
    server.config["EXPERIMENTOS_UPLOAD_LIMIT"] = limit
    staging = database.path.parent / ".experimentos-uploads"
    server.config["EXPERIMENTOS_STAGING"] = str(staging)
    prune_staging(staging, days=float(os.environ.get("EXPERIMENTOS_STAGING_DAYS", "7")))
    # Reject absurd request bodies before they reach a callback (base64 adds a third); the
    # large-file route raises its own request's limit.
    server.config["MAX_CONTENT_LENGTH"] = int(limit * 1.4) + 1024 * 1024
    server.config["EXPERIMENTOS_LARGE_UPLOAD_LIMIT"] = large_limit
    register_large_upload(server)
    return app


def run_server(*, db: str | None = None, host: str = "127.0.0.1", port: int = 8050, load_samples: bool = True) -> None:
    app = create_app(db=db or default_db_path(), load_sample_experiments=load_samples)
    print(f"ExperimentOS on http://{host}:{port}  (database {app.server.config['EXPERIMENTOS_DB']})", flush=True)
    app.run(host=host, port=port, debug=False)
