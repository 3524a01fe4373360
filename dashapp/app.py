"""The Dash application: shell, pages and server (``experimentos serve``).

Each page module exposes ``layout`` and ``register_callbacks(app)``. Callbacks are
registered on the app object rather than with the global ``dash.callback`` because
Dash moves global callbacks into the *first* app created, and the tests create one app
per browser session.

``serve`` runs the app under waitress, not Flask's development server: waitress reads
each request (body included) in its event loop before a worker thread sees it, so slow or
stalled clients cost a socket, not a thread, and are dropped after ``channel_timeout``.
Every response carries a strict Content-Security-Policy and the usual hardening headers,
and a request whose ``Host`` is not on the allow-list gets 400 (DNS rebinding).
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dash
import dash_bootstrap_components as dbc
import flask
from dash import Dash, dcc, html

from dashapp import auth, faults, ids, spark_panel
from dashapp.isolation import default_pool
from dashapp.jobs import ThreadJobManager
from dashapp.pages import admin, experiment, history, home, memo, new, results
from dashapp.services import load_samples
from dashapp.spark_source import SparkService
from dashapp.staging import install_staging
from dashapp.uploads import register_large_upload
from dashapp.workspace import DEFAULT_LARGE_UPLOAD_LIMIT_BYTES, DEFAULT_UPLOAD_LIMIT_BYTES
from storage.database import ExperimentDatabase, default_db_path
from storage.users import UserDirectory

__all__ = [
    "CHANNEL_TIMEOUT_SECONDS",
    "CONNECTION_LIMIT",
    "LOOPBACK_HOSTS",
    "PAGES",
    "ROOT",
    "WORKER_THREADS",
    "HostAllowList",
    "allowed_hosts_for",
    "create_app",
    "make_server",
    "run_server",
    "waitress_options",
]

ROOT = Path(__file__).resolve().parent.parent
PAGES = (
    (home, "/", "Home", None),
    (new, "/new", "New Experiment", None),
    (results, "/results", "Results", None),
    (memo, "/memo", "Decision Memo", None),
    (history, "/history", "History", None),
    (experiment, None, "Experiment", "/experiments/<experiment_id>"),
    (admin, "/admin", "Admin", None),
)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# Seconds a connection may sit idle (no bytes either way) before waitress closes it: long
# enough for a slow network, short enough that stalled uploads do not pile up.
CHANNEL_TIMEOUT_SECONDS = 60
CONNECTION_LIMIT = 100
WORKER_THREADS = 8


def _shell() -> html.Div:
    """The app shell, built for each page load: the navbar offers only the pages the signed-in
    user's role may use, and names the user with a Sign out link."""
    links = [dbc.NavItem(dbc.NavLink(title, href=path, active="exact")) for _, path, title, _ in PAGES
             if path and auth.may(auth.PAGE_ROLES.get(path, "viewer"))]
    navbar = dbc.Navbar(dbc.Container([
        dbc.NavbarBrand([html.Span("Experiment", className="fw-light"), html.Span("OS", className="fw-bold")],
                        href="/"),
        dbc.Nav(links, navbar=True, className="ms-auto"),
        auth.navbar_user(),
    ], fluid=True), color="dark", dark=True, className="mb-3", id=ids.NAVBAR)
    return html.Div([
        dcc.Store(id=ids.SESSION_STORE, storage_type="session"),
        navbar,
        # A callback's database fault or stale (busy) data is announced here (dashapp/faults.py).
        dbc.Container([html.Div(id=ids.FAULT_BANNER), dash.page_container], fluid=True, className="pb-5 app-main"),
        html.Footer(dbc.Container(html.Small(f"ExperimentOS · decisions for A/B tests · {_where_data_goes()}",
                                             className="text-muted", id=ids.FOOTER_NOTE),
                                  fluid=True), className="py-3 border-top mt-4"),
    ])


def _where_data_goes() -> str:
    """The footer's promise, true of this server: with a Spark remote, tables are scanned there."""
    spark = flask.current_app.config.get(spark_panel.SPARK_SERVICE_KEY) if flask.has_app_context() else None
    if spark is None:
        return "data stays on this machine"
    return "uploads stay on this server; Spark tables and queries are scanned by the Spark server"


def _content_security_policy(app: Dash) -> str:
    """The CSP of every response: nothing from other origins, no ``eval``, no inline script but
    Dash's own (by hash: the renderer bootstrap and the clientside callbacks)."""
    directives = {
        "default-src": "'self'",
        "script-src": " ".join(["'self'", *app.csp_hashes()]),
        # Inline *styles* stay allowed: plotly.js and dcc inject <style> elements, and the memo
        # preview (an iframe srcdoc, which inherits this policy) carries its CSS inline. Styles
        # cannot run code, so this is the usual trade-off.
        "style-src": "'self' 'unsafe-inline'",
        # data: for the memo's embedded chart, blob: / data: for Plotly's "download as PNG".
        "img-src": "'self' data: blob:",
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def _host_name(host_header: str) -> str:
    """``Host`` without its port, lower-cased; IPv6 literals keep their brackets (``[::1]``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class HostAllowList:
    """WSGI middleware: 400 for a request whose ``Host`` (port ignored) is not allowed.

    A page on another site can point its own DNS name at 127.0.0.1 (DNS rebinding) and then
    read this server as same-origin; the browser still sends that foreign name as ``Host``."""

    def __init__(self, app: Any, allowed_hosts: Sequence[str], headers: dict[str, str]) -> None:
        if not allowed_hosts:
            raise ValueError("allowed_hosts must name at least one host")
        self.app = app
        self.allowed = frozenset(name.lower() for name in allowed_hosts)
        self.headers = list(headers.items())

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if _host_name(environ.get("HTTP_HOST", "")) in self.allowed:
            return self.app(environ, start_response)
        body = b"Unknown Host header: add this name to 'experimentos serve --allowed-host'.\n"
        start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                           ("Content-Length", str(len(body))), *self.headers])
        return [body]


def _harden(app: Dash, allowed_hosts: Sequence[str]) -> None:
    """Refuse unknown ``Host`` headers (400) and add the security headers to every response."""
    server = app.server
    headers = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }
    refusal = {**headers, "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}
    server.wsgi_app = HostAllowList(server.wsgi_app, allowed_hosts, refusal)  # type: ignore[method-assign]

    # Dash adds its page-title script while it sets itself up on the first request, so the
    # policy (which hashes every inline script) is computed then, once.
    @functools.cache
    def policy() -> str:
        return _content_security_policy(app)

    @server.after_request
    def add_security_headers(response: flask.Response) -> flask.Response:
        for name, value in {**headers, "Content-Security-Policy": policy()}.items():
            response.headers.setdefault(name, value)
        response.headers.pop("Server", None)
        return response


def _bracketed(name: str) -> str:
    """An IPv6 literal as it appears in a ``Host`` header (``[::1]``); other names unchanged."""
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def allowed_hosts_for(host: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The ``Host`` names a server bound to ``host`` answers: ``extra`` (``--allowed-host``), the
    bound address itself, and the loopback names when it is a loopback address. Bound to every
    interface (``0.0.0.0`` / ``::``) without ``extra``, the machine's own names are used."""
    names: list[str] = [_bracketed(name.strip().lower()) for name in extra if name.strip()]
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None:
        names.append(host.lower())
    elif address.is_unspecified:
        if not extra:
            names += [socket.gethostname().lower(), socket.getfqdn().lower()]
    else:
        names.append(f"[{address.compressed}]" if address.version == 6 else address.compressed)
    if host.lower() == "localhost" or (address is not None and address.is_loopback):
        names += LOOPBACK_HOSTS
    return tuple(dict.fromkeys(names))


def create_app(*, db: str | os.PathLike[str] | None = None, load_sample_experiments: bool = True,
               upload_limit_bytes: int | None = None, large_upload_limit_bytes: int | None = None,
               allowed_hosts: Sequence[str] = LOOPBACK_HOSTS, auth_mode: auth.AuthMode = "password",
               trusted_proxies: Sequence[str] = (), auth_header: str = "X-Forwarded-User",
               loopback_bind: bool = True, spark_remote: str | None = None) -> Dash:
    """Build the app on the database at ``db`` (default: SPEC §6), loading the samples into a new one.

    Requests whose ``Host`` (without port) is not in ``allowed_hosts`` get 400. ``auth_mode``,
    ``trusted_proxies``, ``auth_header`` and ``loopback_bind`` (the server listens on loopback
    only): see :mod:`dashapp.auth`; with no users in the database the app is single-user.
    ``spark_remote`` (``sc://host:15002`` or ``local[N]``) adds New Experiment's "Spark table or
    SQL" source; the session opens on first use (:mod:`dashapp.spark_panel`)."""
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
        on_error=faults.on_callback_error,  # a DatabaseError in any callback: one banner, never a 500
    )
    for module, path, title, template in PAGES:
        options: dict[str, Any] = {"path_template": template} if template else {"path": path}
        layout = auth.guard_layout(module.layout, auth.PAGE_ROLES[path]) if path in auth.PAGE_ROLES \
            else module.layout
        dash.register_page(module.__name__, name=title, title=f"{title} · ExperimentOS",
                           layout=faults.guard_layout(layout), **options)
        module.register_callbacks(app)
    app.layout = _shell
    server = app.server
    jobs.attach(server)
    server.config["EXPERIMENTOS_DB"] = str(database.path)
    server.config["EXPERIMENTOS_UPLOAD_LIMIT"] = limit
    server.config[spark_panel.SPARK_SERVICE_KEY] = SparkService(spark_remote) if spark_remote else None
    staging = database.path.parent / ".experimentos-uploads"
    server.config["EXPERIMENTOS_STAGING"] = str(staging)
    # Quotas and pruning (now, and every EXPERIMENTOS_PRUNE_MINUTES while serving): dashapp/staging.py.
    install_staging(server, staging, partial_folders=(database.inputs_dir,))
    faults.install_faults(server)
    # Reject absurd request bodies before they reach a callback (base64 adds a third); the
    # large-file route raises its own request's limit.
    server.config["MAX_CONTENT_LENGTH"] = int(limit * 1.4) + 1024 * 1024
    server.config["EXPERIMENTOS_LARGE_UPLOAD_LIMIT"] = large_limit
    register_large_upload(server)
    auth.install_auth(app, mode=auth_mode, trusted_proxies=trusted_proxies, header=auth_header,
                      loopback_bind=loopback_bind)
    _harden(app, allowed_hosts)
    return app


def waitress_options(app: Dash) -> dict[str, Any]:
    """waitress settings for ``app``: timeouts and limits against slow or greedy clients, no banner."""
    large_limit = int(app.server.config["EXPERIMENTOS_LARGE_UPLOAD_LIMIT"])
    return {
        "threads": WORKER_THREADS,
        "channel_timeout": CHANNEL_TIMEOUT_SECONDS,
        "cleanup_interval": 10,
        "connection_limit": CONNECTION_LIMIT,
        # The largest body is a /upload/large file; the route checks the exact limit and answers
        # with a clear message, waitress only cuts off what is beyond any route's limit.
        "max_request_body_size": large_limit + (1 << 20),
        "max_request_header_size": 64 * 1024,
        "ident": "",  # no Server header
        "expose_tracebacks": False,
    }


def make_server(app: Dash, *, host: str, port: int) -> Any:
    """A waitress server for ``app`` bound to ``host:port`` (0: any free port); ``.run()`` serves,
    ``.close()`` stops it."""
    from waitress.server import create_server

    return create_server(app.server, host=host, port=port, **waitress_options(app))


def run_server(*, db: str | None = None, host: str = "127.0.0.1", port: int = 8050, load_samples: bool = True,
               allowed_hosts: Sequence[str] = (), auth_mode: auth.AuthMode = "password",
               trusted_proxies: Sequence[str] = (), auth_header: str = "X-Forwarded-User",
               spark_remote: str | None = None) -> None:
    """Serve until interrupted. Raises ``ValueError`` (before binding) for a non-loopback ``host``
    while the database has no users and ``auth_mode`` is ``password`` (see :func:`dashapp.auth.check_bind`)."""
    database = ExperimentDatabase(db or default_db_path())
    auth.check_bind(host, UserDirectory(database).count(), auth_mode)
    hosts = allowed_hosts_for(host, allowed_hosts)
    app = create_app(db=database.path, load_sample_experiments=load_samples, allowed_hosts=hosts, auth_mode=auth_mode,
                     trusted_proxies=trusted_proxies, auth_header=auth_header, loopback_bind=auth.is_loopback(host),
                     spark_remote=spark_remote)
    server = make_server(app, host=host, port=port)
    # Uploads are read, analysed and rendered in worker processes: start the warm ones now, so the
    # first analysis does not wait for an interpreter to import DuckDB and the analytics.
    workers = default_pool().start()
    print(f"ExperimentOS on http://{host}:{port}  (database {app.server.config['EXPERIMENTOS_DB']}; "
          f"answering Host {', '.join(hosts)}; {auth.describe_mode(app)})", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        workers.close()
        spark = app.server.config.get(spark_panel.SPARK_SERVICE_KEY)
        if spark is not None:
            spark.close()
