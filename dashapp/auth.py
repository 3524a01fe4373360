"""Sign-in, roles and their enforcement on every request of the dashboard.

Who a request acts as (:func:`current_user`) depends on the server's auth mode:

``password`` (the default)
    Users in the experiment database sign in at ``/login``; the session is a cookie signed with
    a key derived from the server secret (``EXPERIMENTOS_SECRET_KEY``), ``HttpOnly``,
    ``SameSite=Lax`` and ``Secure`` when the request came over https. While the database has
    **no users** the dashboard is single-user: every request from a loopback peer acts as the
    local admin, and ``serve`` refuses to bind any other address (:func:`check_bind`).
``proxy``
    An authenticating proxy (SSO) names the user in a header (``X-Forwarded-User``); the header
    is believed only from the ``--trusted-proxy`` peer addresses, and the user must exist in the
    users table, which gives the role.
``none``
    ``--no-auth``, on purpose: every request acts as the local admin, whatever its address.

Enforcement is one ``before_request`` for every route (default-deny): anonymous page requests
are redirected to ``/login?next=…``; anonymous requests to Dash's endpoints, ``/upload/large``
and any other route get 401. A signed-in request to ``/_dash-update-component`` is checked
against :data:`CALLBACK_ROLES` by the callback's outputs (read from the JSON body): a callback
missing from the map needs ``admin``. ``environ["REMOTE_USER"]`` is set to the user's name for
the rest of the request (per-user quotas key on it).

Failed sign-ins are rate limited per user name and per client address (5 in 5 minutes, then 429
until the window has passed). Sign-ins, failed sign-ins and user changes go to the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import flask
from dash import Dash
from flask.sessions import SecureCookieSessionInterface
from werkzeug.wrappers import Response

from dashapp import ids
from dashapp.pages import context
from storage.errors import DatabaseBusyError, StorageError
from storage.users import Role, UserDirectory, role_allows

__all__ = [
    "AUTH_MODES",
    "CALLBACK_ROLES",
    "CONCURRENT_VERIFICATIONS",
    "FAILURE_WINDOW_SECONDS",
    "LOCAL_ADMIN",
    "LOGIN_ROUTE",
    "LOGOUT_ROUTE",
    "MAX_FAILURES",
    "PAGE_ROLES",
    "SESSION_COOKIE_NAME",
    "SESSION_HOURS",
    "USER_CACHE_SECONDS",
    "AuthMode",
    "CurrentUser",
    "LoginRateLimiter",
    "TrustedProxy",
    "acting_user_name",
    "callback_outputs",
    "callback_role",
    "check_bind",
    "checked_proxy_settings",
    "current_user",
    "describe_mode",
    "forget_cached_users",
    "guard_layout",
    "install_auth",
    "is_loopback",
    "may",
    "navbar_user",
    "refusal_text",
]

AuthMode = Literal["password", "proxy", "none"]
AUTH_MODES: tuple[AuthMode, ...] = ("password", "proxy", "none")
LOGIN_ROUTE = "/login"
LOGOUT_ROUTE = "/logout"
SESSION_COOKIE_NAME = "experimentos_session"
SESSION_HOURS = 12
MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 300.0
# argon2 takes 64 MiB and ~0.1 s of a core per verification: at most this many run at once.
CONCURRENT_VERIFICATIONS = 2
# A user's role (or removal) is read from the database at most this long after it changed.
USER_CACHE_SECONDS = 5.0
_ROUTES_OPEN_TO_ALL = frozenset({LOGIN_ROUTE, LOGOUT_ROUTE, "/_favicon.ico"})
_PREFIXES_OPEN_TO_ALL = ("/assets/",)


@dataclass(frozen=True)
class CurrentUser:
    """Who a request acts as: a user's ``name`` and ``role`` (``local`` / ``admin`` when single-user)."""

    name: str
    role: Role


LOCAL_ADMIN = CurrentUser("local", "admin")

#: The least role each Dash callback needs, by the set of its outputs (``id.property``; pattern-
#: matching ids by their ``type``). Anything that analyses, uploads, saves, annotates or adds a
#: look needs ``analyst``; users and archive ``admin``; browsing and downloads ``viewer``.
#: A callback that is not listed needs ``admin`` (default-deny; a test lists the unlisted).
_CLASSIFIED: tuple[tuple[tuple[str, ...], Role], ...] = (
    # Dash Pages: the router and the page title
    (("_pages_content.children", "_pages_store.data"), "viewer"),
    (("_pages_dummy.children",), "viewer"),
    # Shell and Home
    (("current-experiment.children",), "viewer"),
    # New Experiment: checking, uploading and analysing files, and editing the analysis's setup
    (("upload-checked.data", "upload-data.contents", "upload-limit-message.children"), "analyst"),
    (("plan-result.children", "plan-result.color", "plan-store.data", "plan-confirm.children",
      "plan-baseline-box.style", "plan-mean-box.style", "plan-std-box.style", "plan-looks-box.style"), "analyst"),
    (("session-store.data",), "analyst"),
    (("session-store.data", "experiment-name.value", "hypothesis.value", "primary-metric.value",
      "control-name.value", "expected-split.value", "owner.value", "tags.value", "planned-mde.value",
      "segments.value", "plan-metric-type.value", "plan-baseline.value", "plan-mean.value", "plan-std.value",
      "plan-mde.value", "plan-relative.value", "plan-daily-users.value", "plan-alpha.value", "plan-power.value",
      "plan-use.value", "plan-sequential.value", "plan-looks.value", "upload-message.children"), "analyst"),
    (("session-store.data", "upload-message.children"), "analyst"),
    (("session-store.data", "spark-message.children"), "analyst"),  # a Spark table or SQL query, analysed
    (("metrics-table.children", "metrics-decision.children"), "analyst"),
    (("metric-better-hint.children", "metric-margin-hint.children", "metric-severe-margin-hint.children",
      "metric-margin.invalid", "metric-severe-margin.invalid"), "analyst"),
    (("metrics-edit.data", "metrics-message.children"), "analyst"),
    (("cumulative.value", "sequential.value"), "analyst"),
    (("health-panel.children", "next-step.children", "last-saved.children", "new-experiment.style"), "analyst"),
    (("experiment-name.value", "hypothesis.value", "primary-metric.value", "control-name.value",
      "expected-split.value", "owner.value", "tags.value", "planned-mde.value", "segments.value"), "analyst"),
    # Results: viewing and rescaling; saving
    (("results-body.children",), "viewer"),
    (("effect-chart.figure", "effect-title.children"), "viewer"),
    (("session-store.data", "save-message.children"), "analyst"),
    # Decision memo: viewing and downloads; notes (a memo version)
    (("memo-body.children",), "viewer"),
    (("memo-preview.srcDoc",), "viewer"),
    (("session-store.data", "notes-message.children"), "analyst"),
    (("download-md-file.data",), "viewer"),
    (("download-html-file.data",), "viewer"),
    (("download-pdf-file.data",), "viewer"),
    # History
    (("history-table.rowData", "history-count.children", "history-summary.children",
      "history-timeline.figure"), "viewer"),
    (("compare-chart.figure", "compare-message.children"), "viewer"),
    # Experiment page: adding a look; opening it in the workspace and downloads; archiving
    (("experiment-look-message.children", "experiment-body.children", "experiment-add-look.contents"), "analyst"),
    (("session-store.data", "experiment-redirect.href"), "viewer"),
    (("experiment-download-file.data",), "viewer"),
    (("experiment-archive-message.children",), "admin"),
    # Admin page
    (("admin-audit-table.children", "admin-audit-count.children"), "admin"),
    (("admin-users-table.children", "admin-user-message.children"), "admin"),
)
CALLBACK_ROLES: dict[frozenset[str], Role] = {frozenset(outputs): role for outputs, role in _CLASSIFIED}

#: Pages whose content needs more than ``viewer`` (their Dash layout shows a refusal instead).
PAGE_ROLES: dict[str, Role] = {"/new": "analyst", "/admin": "admin"}

_ROLE_CAN = {"analyst": "upload, analyse, save or add notes", "admin": "manage users or archive experiments"}


def _normalize_output(part: str) -> str:
    """``id.property`` of one output of a callback id: ``@hash`` of ``allow_duplicate`` dropped,
    a pattern-matching id named by its ``type``."""
    part = re.sub(r"@[0-9a-f]+$", "", part)
    if part.startswith("{"):
        identifier, _, prop = part.rpartition(".")
        try:
            parsed = json.loads(identifier)
        except ValueError:
            return part
        return f"{parsed.get('type', identifier)}.{prop}" if isinstance(parsed, dict) else part
    return part


def callback_outputs(callback_id: str) -> frozenset[str]:
    """The outputs (``id.property``) of a Dash callback id (the key of ``app.callback_map`` and the
    ``output`` of a ``/_dash-update-component`` body): ``..a.b...c.d..`` or ``a.b``."""
    multiple = callback_id.startswith("..") and callback_id.endswith("..")
    parts = callback_id[2:-2].split("...") if multiple else [callback_id]
    return frozenset(_normalize_output(p) for p in parts if p)


def callback_role(callback_id: str) -> Role:
    """The least role that may run the callback with this id (``admin`` when it is not classified)."""
    return CALLBACK_ROLES.get(callback_outputs(callback_id), "admin")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, users: int, mode: AuthMode) -> None:
    """``ValueError`` (one line for the CLI) when ``serve`` must not bind ``host``: a non-loopback
    address while password sign-in has no user to sign in with."""
    if mode == "password" and users == 0 and not is_loopback(host):
        raise ValueError(f"refusing to serve on {host}: the database has no users, so anyone who reaches the port "
                         "would act as admin; add one with 'experimentos users add NAME --role admin', or pass "
                         "--no-auth on purpose")


# -- request state -------------------------------------------------------------------------------


def current_user() -> CurrentUser | None:
    """The user the current request acts as (``None`` outside a request or when anonymous)."""
    if not flask.has_request_context():
        return None
    user = flask.g.get("experimentos_user")
    return user if isinstance(user, CurrentUser) else None


def acting_user_name() -> str | None:
    """The current user's name, for authorship and the audit log (``None`` outside a request)."""
    user = current_user()
    return user.name if user is not None else None


def may(role: Role) -> bool:
    """Whether the current request's user has at least ``role`` (outside a request: yes, the
    callers are tests and the CLI, which the server never reaches)."""
    if not flask.has_request_context():
        return True
    user = current_user()
    return user is not None and role_allows(user.role, role)


def refusal_text(role: Role) -> str:
    """The sentence shown where a control is hidden: ``Viewers cannot upload, analyse, save or add notes.``"""
    user = current_user()
    who = f"{user.role.capitalize()}s" if user is not None else "Anonymous visitors"
    return f"{who} cannot {_ROLE_CAN.get(role, 'do this')}; ask an admin for the {role} role."


def guard_layout(layout: Callable[..., Any], role: Role) -> Callable[..., Any]:
    """A page layout that shows a refusal instead of the page to users below ``role``."""
    def guarded(**kwargs: Any) -> Any:
        if may(role):
            return layout(**kwargs)
        import dash_bootstrap_components as dbc

        return dbc.Alert(refusal_text(role), color="secondary", className="mt-3 role-refusal")
    guarded.__name__ = getattr(layout, "__name__", "layout")
    return guarded


def navbar_user() -> Any:
    """The navbar's right end: the signed-in user and role with a Sign out link (a plain link: the
    sign-out is a full page load), or the single-user note."""
    from dash import html

    user = current_user()
    if user is None:
        return html.Span(id=ids.NAVBAR_USER)
    mode = flask.current_app.extensions["experimentos_auth"].mode
    if user is LOCAL_ADMIN:
        note = "no sign-in (--no-auth)" if mode == "none" else "single-user (no users yet)"
        return html.Span(f"local admin · {note}", id=ids.NAVBAR_USER, className="navbar-text small ms-3 text-light")
    children: list[Any] = [html.Span(user.name, className="fw-semibold"), f" · {user.role}"]
    if mode == "password":
        children += [" · ", html.A("Sign out", href=LOGOUT_ROUTE, id=ids.SIGN_OUT, className="link-light")]
    return html.Span(children, id=ids.NAVBAR_USER, className="navbar-text small ms-3 text-light")


def describe_mode(app: Dash) -> str:
    """One phrase for the start-up line: how requests are signed in."""
    state = app.server.extensions["experimentos_auth"]
    if state.mode == "none":
        return "NO SIGN-IN (--no-auth): every request acts as admin"
    if state.mode == "proxy":
        return f"users named by {state.header} from {', '.join(sorted(state.trusted_proxies))}"
    return "sign-in at /login (single-user on loopback while the database has no users)"


# -- rate limiting -------------------------------------------------------------------------------


@dataclass
class LoginRateLimiter:
    """Failed sign-ins per key (a user name, a client address) in a sliding window.

    ``blocked_for(keys)`` is the seconds until every key has fewer than ``max_failures`` failures
    in the last ``window`` seconds (0: allowed)."""

    max_failures: int = MAX_FAILURES
    window: float = FAILURE_WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def blocked_for(self, keys: Iterable[str]) -> float:
        with self._lock:
            now = self.clock()
            waits = [self.window - (now - times[-self.max_failures]) for key in keys
                     if len(times := self._recent(key, now)) >= self.max_failures]
        return max(waits, default=0.0)

    def failed(self, keys: Iterable[str]) -> None:
        with self._lock:
            now = self.clock()
            for key in keys:
                self._recent(key, now)
                self._failures.setdefault(key, deque()).append(now)
                if len(self._failures[key]) > self.max_failures * 4:  # bounded memory per key
                    self._failures[key].popleft()

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


@dataclass
class _AuthState:
    """Per-app state of sign-in (kept in ``server.extensions``, never a module global)."""

    mode: AuthMode
    trusted_proxies: frozenset[str]
    header: str
    loopback_bind: bool
    limiter: LoginRateLimiter = field(default_factory=LoginRateLimiter)
    verifications: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(CONCURRENT_VERIFICATIONS))
    cache: dict[str, tuple[float, Any]] = field(default_factory=dict)
    cache_lock: threading.Lock = field(default_factory=threading.Lock)

    def cached(self, key: str, load: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self.cache_lock:
            hit = self.cache.get(key)
            if hit is not None and now - hit[0] < USER_CACHE_SECONDS:
                return hit[1]
        try:
            value = load()
        except DatabaseBusyError:  # a writer holds the database: the last answer beats waiting (faults)
            if hit is not None:
                return hit[1]
            raise
        with self.cache_lock:
            if len(self.cache) > 10_000:
                self.cache.clear()
            self.cache[key] = (now, value)
        return value

    def forget(self) -> None:
        with self.cache_lock:
            self.cache.clear()


def _state() -> _AuthState:
    state = flask.current_app.extensions["experimentos_auth"]
    assert isinstance(state, _AuthState)
    return state


def _directory() -> UserDirectory:
    return UserDirectory(context.database())


def _user_count(state: _AuthState) -> int:
    return int(state.cached("\0count", lambda: _directory().count()))


def _stored_user(state: _AuthState, name: str) -> CurrentUser | None:
    def load() -> CurrentUser | None:
        found = _directory().find(name)
        return CurrentUser(found.name, found.role) if found is not None else None
    user = state.cached(name, load)
    return user if isinstance(user, CurrentUser) else None


# -- the WSGI layer: a trusted proxy's forwarded scheme and client address --------------------------


class TrustedProxy:
    """WSGI middleware: from a ``--trusted-proxy`` peer only, take ``X-Forwarded-Proto`` (https
    makes the session cookie ``Secure``) and the last ``X-Forwarded-For`` address (the client, for
    rate limits). From any other peer these headers are ignored, and removed."""

    def __init__(self, app: Any, trusted: Iterable[str]) -> None:
        self.app = app
        self.trusted = frozenset(trusted)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        peer = environ.get("REMOTE_ADDR", "")
        environ["experimentos.peer"] = peer
        if peer in self.trusted:
            proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
            forwarded = [a.strip() for a in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
            if forwarded:
                environ["REMOTE_ADDR"] = forwarded[-1]
        else:
            environ.pop("HTTP_X_FORWARDED_PROTO", None)
            environ.pop("HTTP_X_FORWARDED_FOR", None)
        return self.app(environ, start_response)


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, ``Secure`` exactly when the request came over https."""

    def get_cookie_secure(self, app: flask.Flask) -> bool:
        return flask.has_request_context() and flask.request.is_secure


def _cookie_key(secret: bytes) -> bytes:
    # The session cookie and the saved-analysis tokens are signed with different keys derived
    # from the one secret, so a value of one kind can never be replayed as the other.
    return hmac.new(secret, b"experimentos session cookie", hashlib.sha256).digest()


# -- resolving the user of a request -------------------------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    status: int
    message: str


def _resolve(state: _AuthState) -> CurrentUser | _Refusal | None:
    request = flask.request
    if state.mode == "none":
        return LOCAL_ADMIN
    if state.mode == "proxy":
        peer = request.environ.get("experimentos.peer", request.remote_addr or "")
        if peer not in state.trusted_proxies:
            return _Refusal(403, "This server accepts requests only through its sign-in proxy.")
        name = (request.headers.get(state.header) or "").strip()
        if not name:
            return None
        user = _stored_user(state, name)
        if user is None:
            return _Refusal(403, f"{name} is not an ExperimentOS user; ask an admin to run "
                                 f"'experimentos users add {name} --role viewer'.")
        if flask.session.get("proxy_user") != name:  # once per browser session, not per request
            flask.session["proxy_user"] = name
            _audit("signed_in", name, detail=f"via proxy from {request.remote_addr}")
        return user
    if _user_count(state) == 0:
        # Single-user: only while bound to loopback, and only for loopback peers.
        if state.loopback_bind and is_loopback(request.remote_addr or ""):
            return LOCAL_ADMIN
        return _Refusal(403, "This dashboard has no users yet; add one with 'experimentos users add NAME --role "
                             "admin' to sign in from other machines.")
    signed_in = flask.session.get("user")
    if not isinstance(signed_in, str):
        return None
    signed_at = flask.session.get("at")
    if not isinstance(signed_at, (int, float)) or time.time() - signed_at > SESSION_HOURS * 3600:
        flask.session.clear()
        return None
    user = _stored_user(state, signed_in)
    if user is None:  # removed since signing in
        flask.session.clear()
    return user


def _audit(event: Any, actor: str | None, **target: Any) -> None:
    try:
        _directory().record(event, actor, **target)
    except StorageError:
        flask.current_app.logger.exception("could not record the audit event %s", event)


def _is_page_request() -> bool:
    request = flask.request
    return request.method in ("GET", "HEAD") and not request.path.startswith("/_") \
        and request.path not in _api_routes()


def _api_routes() -> frozenset[str]:
    from dashapp.uploads import LARGE_UPLOAD_ROUTE

    return frozenset({LARGE_UPLOAD_ROUTE})


def _safe_next(target: str | None) -> str:
    """A local path to return to after signing in (never another site: ``//host`` or ``/\\host``)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target:
        return "/"
    parsed = urllib.parse.urlsplit(target)
    if parsed.scheme or parsed.netloc:
        return "/"
    return target


def _deny(status: int, message: str) -> flask.Response:
    if _is_page_request():
        return flask.Response(_page("Not allowed", f'<div class="alert alert-danger">{html.escape(message)}</div>'),
                              status=status, mimetype="text/html")
    return flask.Response(json.dumps({"error": message}), status=status, mimetype="application/json")


def _enforce(app: Dash) -> Response | None:
    state = _state()
    request = flask.request
    try:
        resolved = _resolve(state)
    except StorageError as error:
        return _deny(503, f"Sign-in is unavailable: {error}")
    path = request.path
    if isinstance(resolved, CurrentUser):
        flask.g.experimentos_user = resolved
        request.environ["REMOTE_USER"] = resolved.name
    open_to_all = path in _ROUTES_OPEN_TO_ALL or path.startswith(_PREFIXES_OPEN_TO_ALL)
    if open_to_all:
        return None
    if isinstance(resolved, _Refusal):
        return _deny(resolved.status, resolved.message)
    if resolved is None:
        if _is_page_request() and state.mode == "password":
            full = request.full_path.rstrip("?") if request.query_string else path
            return flask.redirect(f"{LOGIN_ROUTE}?{urllib.parse.urlencode({'next': full})}", code=302)
        return _deny(401, "Sign in first." if state.mode == "password"
                     else f"The sign-in proxy did not name a user ({state.header}).")
    needed: Role = "viewer"
    if path == "/_dash-update-component":
        body = request.get_json(silent=True, cache=True)
        output = body.get("output") if isinstance(body, dict) else None
        needed = callback_role(output) if isinstance(output, str) else "admin"
        path = f"{path} {output!r}"
    elif path in _api_routes():
        needed = "analyst"
    if not role_allows(resolved.role, needed):
        flask.current_app.logger.warning("refused %s (%s) to %s (%s)", path, needed,
                                         resolved.name, resolved.role)
        return _deny(403, refusal_text(needed))
    return None


# -- the login page ------------------------------------------------------------------------------


def _page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · ExperimentOS</title>
<link rel="stylesheet" href="/assets/vendor/bootstrap-5.3.9.min.css"><link rel="stylesheet" href="/assets/app.css">
</head><body>
<nav class="navbar navbar-dark bg-dark mb-4"><div class="container-fluid"><a class="navbar-brand" href="/">
<span class="fw-light">Experiment</span><span class="fw-bold">OS</span></a></div></nav>
<main class="container" style="max-width: 26rem">{body}</main></body></html>"""


def _csrf_token() -> str:
    token = flask.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        flask.session["csrf"] = token
    return token


def _same_origin() -> bool:
    """The browser says the request came from this site (``Origin`` / ``Sec-Fetch-Site``), or says nothing."""
    request = flask.request
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    # "null": this app's Referrer-Policy (no-referrer) makes browsers hide the origin of its own
    # form posts; the token in the session cookie (SameSite=Lax, so never sent cross-site) decides.
    if origin is None or origin == "null":
        return True
    return urllib.parse.urlsplit(origin).netloc.lower() == (request.host or "").lower()


def _valid_form_post() -> bool:
    sent = flask.request.form.get("csrf", "")
    expected = flask.session.get("csrf")
    return _same_origin() and isinstance(expected, str) and hmac.compare_digest(sent.encode(), expected.encode())


def _login_page(message: str = "", *, status: int = 200, name: str = "", target: str = "/") -> flask.Response:
    alert = f'<div class="alert alert-danger" id="{ids.LOGIN_ERROR}" role="alert">{html.escape(message)}</div>' \
        if message else ""
    body = f"""<div class="card"><div class="card-body">
<h1 class="h4 mb-3">Sign in</h1>{alert}
<form method="post" action="{LOGIN_ROUTE}" id="{ids.LOGIN_FORM}">
<input type="hidden" name="csrf" value="{html.escape(_csrf_token())}">
<input type="hidden" name="next" value="{html.escape(_safe_next(target))}">
<div class="mb-3"><label class="form-label" for="{ids.LOGIN_NAME}">User name</label>
<input class="form-control" id="{ids.LOGIN_NAME}" name="name" autocomplete="username" required maxlength="64"
 value="{html.escape(name)}" autofocus></div>
<div class="mb-3"><label class="form-label" for="{ids.LOGIN_PASSWORD}">Password</label>
<input class="form-control" id="{ids.LOGIN_PASSWORD}" name="password" type="password" autocomplete="current-password"
 required maxlength="1024"></div>
<button class="btn btn-primary w-100" type="submit" id="{ids.LOGIN_SUBMIT}">Sign in</button>
</form></div></div>
<p class="text-muted small mt-3">Accounts are created by an admin ('experimentos users add').</p>"""
    response = flask.Response(_page("Sign in", body), status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _login() -> Response:
    state = _state()
    request = flask.request
    if state.mode != "password":
        return flask.Response(_page("Sign in", '<div class="alert alert-info">Sign-in is handled by this server\'s '
                                               'proxy; there is nothing to do here.</div>'), mimetype="text/html")
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return _login_page(target=target)
    if not _valid_form_post():
        return _login_page("The sign-in form expired or came from another site; please sign in again.", status=400,
                           target=target)
    name = request.form.get("name", "").strip()[:64]
    password = request.form.get("password", "")
    address = request.remote_addr or "unknown"
    keys = (f"name:{name.lower()}", f"address:{address}")
    wait = state.limiter.blocked_for(keys)
    if wait > 0:
        minutes = max(1, int(wait // 60) + (1 if wait % 60 else 0))
        return _login_page(f"Too many failed sign-ins for this user name or from this address; try again in "
                           f"{minutes} minute{'s' if minutes > 1 else ''}.", status=429, name=name, target=target)
    with state.verifications:
        user = _directory().authenticate(name, password)
    if user is None:
        state.limiter.failed(keys)
        _audit("sign_in_failed", name or None, detail=f"from {address}")
        return _login_page("Wrong user name or password.", status=401, name=name, target=target)
    state.limiter.succeeded(keys[0])
    flask.session.clear()
    flask.session.permanent = True
    flask.session["user"] = user.name
    flask.session["at"] = time.time()
    flask.session["csrf"] = secrets.token_urlsafe(32)
    _audit("signed_in", user.name, detail=f"from {address}")
    return flask.redirect(target, code=303)


def _logout() -> Response:
    request = flask.request
    # A link in the navbar signs out directly; a request another site triggered gets a button instead.
    if request.method == "POST" and not _valid_form_post():
        return _deny(400, "The sign-out form expired or came from another site.")
    if request.method == "GET" and request.headers.get("Sec-Fetch-Site") not in ("same-origin",):
        body = f"""<div class="card"><div class="card-body"><h1 class="h4">Sign out</h1>
<form method="post" action="{LOGOUT_ROUTE}"><input type="hidden" name="csrf" value="{html.escape(_csrf_token())}">
<button class="btn btn-primary" type="submit" id="{ids.LOGOUT_SUBMIT}">Sign out</button></form></div></div>"""
        return flask.Response(_page("Sign out", body), mimetype="text/html")
    flask.session.clear()
    return flask.redirect(LOGIN_ROUTE if _state().mode == "password" else "/", code=303)


# -- installing ----------------------------------------------------------------------------------


def checked_proxy_settings(mode: str, trusted_proxies: Sequence[str], header: str) -> list[str]:
    """The trusted proxy addresses, normalised; ``ValueError`` (one line for the CLI) for an unknown
    mode, an address that is not an IP address, proxy mode without a proxy or a bad header name."""
    if mode not in AUTH_MODES:
        raise ValueError(f"mode must be one of {', '.join(AUTH_MODES)}, got {mode!r}")
    proxies = []
    for address in trusted_proxies:
        try:
            proxies.append(ipaddress.ip_address(address.strip()).compressed)
        except ValueError:
            raise ValueError(f"--trusted-proxy must be an IP address, got {address!r}") from None
    if mode == "proxy" and not proxies:
        raise ValueError("--auth proxy needs --trusted-proxy IP: the user header is believed only from that peer")
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", header):
        raise ValueError(f"--auth-header must be an HTTP header name, got {header!r}")
    return proxies


def install_auth(app: Dash, *, mode: AuthMode = "password", trusted_proxies: Sequence[str] = (),
                 header: str = "X-Forwarded-User", loopback_bind: bool = True) -> None:
    """Add sign-in to ``app``: the session cookie, ``/login`` and ``/logout``, and the check of
    every request. ``loopback_bind``: the server listens on loopback only (single-user mode is
    allowed only then). Raises ``ValueError`` for an unknown mode, a bad proxy address or proxy
    mode without one."""
    proxies = checked_proxy_settings(mode, trusted_proxies, header)
    server = app.server
    with server.app_context():
        server.secret_key = _cookie_key(context.session_secret())
    server.session_interface = _SessionInterface()
    server.config.update(SESSION_COOKIE_NAME=SESSION_COOKIE_NAME, SESSION_COOKIE_HTTPONLY=True,
                         SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=SESSION_HOURS * 3600)
    server.extensions["experimentos_auth"] = _AuthState(mode, frozenset(proxies), header, loopback_bind)
    server.wsgi_app = TrustedProxy(server.wsgi_app, proxies)
    server.add_url_rule(LOGIN_ROUTE, "experimentos_login", _login, methods=["GET", "POST"])
    server.add_url_rule(LOGOUT_ROUTE, "experimentos_logout", _logout, methods=["GET", "POST"])
    # After Dash's own before_request: on the first request it registers the Pages router and a
    # clientside callback whose inline script the Content-Security-Policy must hash (the policy is
    # computed on that first response), so it has to run even when the request is refused.
    server.before_request(lambda: _enforce(app))


def forget_cached_users() -> None:
    """Drop cached users and roles (after a change from the admin page, applied at once)."""
    _state().forget()
