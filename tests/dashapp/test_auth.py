"""Sign-in, roles and their enforcement (dashapp/auth.py), through Flask's test client."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
from dash import Dash
from itsdangerous import URLSafeTimedSerializer

from dashapp import auth, ids
from dashapp.app import create_app
from dashapp.cli import main
from storage.database import ExperimentDatabase, NewAnalysis, NewExperiment
from storage.users import AuditQuery, UserDirectory

HOST = {"Host": "127.0.0.1"}
PASSWORDS = {"vera": "viewer-password", "anna": "analyst-password", "adam": "admin-password"}
ROLES_OF = {"vera": "viewer", "anna": "analyst", "adam": "admin"}

# One callback of each class, with a body Dash answers without side effects (no click yet:
# PreventUpdate, 204) or with a harmless render.
VIEWER_CALLBACK = "results-body.children"
ANALYST_CALLBACK = "save-message.children"  # Save to history
ADMIN_CALLBACK = "experiment-archive-message.children"  # Archive


@pytest.fixture
def database(tmp_path: Path) -> ExperimentDatabase:
    return ExperimentDatabase(tmp_path / "auth.duckdb")


@pytest.fixture
def team_app(database: ExperimentDatabase) -> Dash:
    """An app whose database has one user of each role (added before the app's first request)."""
    directory = UserDirectory(database)
    for name, password in PASSWORDS.items():
        directory.add(name, ROLES_OF[name], password)
    app = create_app(db=database.path, load_sample_experiments=False)

    @app.server.get("/_test/whoami")
    def whoami() -> dict[str, Any]:  # what another engineer's route sees of the signed-in user
        user = auth.current_user()
        return {"remote_user": flask.request.environ.get("REMOTE_USER"),
                "current_user": [user.name, user.role] if user else None}

    return app


def _csrf(client: Any, path: str = "/login") -> str:
    page = client.get(path, headers=HOST).get_data(as_text=True)
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def sign_in(client: Any, name: str, password: str | None = None, *, environ: dict[str, str] | None = None,
            next_path: str = "/") -> Any:
    token = _csrf(client)
    return client.post("/login", headers=HOST, environ_base=environ or {},
                       data={"csrf": token, "name": name, "password": PASSWORDS.get(name, "") if password is None
                             else password, "next": next_path})


@pytest.fixture
def signed_in(team_app: Dash) -> Callable[[str], Any]:
    def make(name: str) -> Any:
        client = team_app.server.test_client()
        response = sign_in(client, name)
        assert response.status_code == 303, response.get_data(as_text=True)
        return client
    return make


def callback_key(app: Dash, output: str) -> str:
    """The registered callback id (``app.callback_map`` key) whose outputs include ``output``."""
    return next(key for key in app.callback_map if output in auth.callback_outputs(key))


def call(client: Any, app: Dash, output: str, **environ: str) -> Any:
    """POST a Dash callback request whose inputs are all unset (as a page does before any click)."""
    key = callback_key(app, output)
    spec = app.callback_map[key]
    outputs = [{"id": o.component_id, "property": o.component_property.split("@")[0]}
               for o in (spec["output"] if isinstance(spec["output"], list) else [spec["output"]])]
    body = {"output": key, "outputs": outputs if key.startswith("..") else outputs[0],
            "inputs": [{**i, "value": None} for i in spec["inputs"]],
            "state": [{**s, "value": None} for s in spec["state"]], "changedPropIds": []}
    return client.post("/_dash-update-component", headers=HOST, json=body, environ_base=environ)


# -- anonymous requests ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/history", "/new", "/experiments/1", "/admin", "/memo?x=1"])
def test_anonymous_page_requests_are_redirected_to_sign_in(team_app: Dash, path: str) -> None:
    response = team_app.server.test_client().get(path, headers=HOST)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/login?next=")
    assert auth._safe_next(re.sub(r"^/login\?next=", "", location).replace("%2F", "/").replace("%3F", "?")
                           .replace("%3D", "=")) == path


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/_dash-layout"), ("GET", "/_dash-dependencies"), ("POST", "/_dash-update-component"),
    ("POST", "/upload/large"), ("GET", "/_reload-hash"),
    ("GET", "/_dash-component-suites/dash/dcc/dash_core_components.v3_0_0m1.js"),
])
def test_anonymous_requests_to_dash_and_custom_routes_get_401(team_app: Dash, method: str, path: str) -> None:
    client = team_app.server.test_client()
    response = client.open(path, method=method, headers={**HOST, "X-ExperimentOS-Upload": "1"},
                           data=b"a,b\n1,2\n" if method == "POST" else None)
    assert response.status_code == 401
    assert response.get_json() == {"error": "Sign in first."}


def test_an_anonymous_large_upload_stores_nothing(team_app: Dash) -> None:
    client = team_app.server.test_client()
    response = client.post("/upload/large?name=x.csv", headers={**HOST, "X-ExperimentOS-Upload": "1"},
                           data=b"variant,users\nA,1\n")
    assert response.status_code == 401
    staging = Path(team_app.server.config["EXPERIMENTOS_STAGING"])
    assert not staging.exists() or not any(staging.iterdir())


def test_the_sign_in_page_and_its_styles_are_open_to_all(team_app: Dash) -> None:
    client = team_app.server.test_client()
    page = client.get("/login", headers=HOST)
    assert page.status_code == 200 and f'id="{ids.LOGIN_FORM}"' in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert client.get("/assets/vendor/bootstrap-5.3.9.min.css", headers=HOST).status_code == 200


# -- signing in and out ----------------------------------------------------------------------------


def test_signing_in_sets_a_hardened_session_cookie_and_returns_to_next(team_app: Dash) -> None:
    client = team_app.server.test_client()
    response = sign_in(client, "anna", next_path="/history?decision=launch")
    assert response.status_code == 303 and response.headers["Location"] == "/history?decision=launch"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{auth.SESSION_COOKIE_NAME}=")
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "expires"} <= flags and "samesite=lax" in cookie.lower()
    assert "secure" not in flags  # plain http on loopback: a Secure cookie would never be sent back
    assert client.get("/history", headers=HOST).status_code == 200
    assert client.get("/_test/whoami", headers=HOST).get_json() == {"remote_user": "anna",
                                                                    "current_user": ["anna", "analyst"]}


def test_the_cookie_is_secure_over_https_and_behind_a_trusted_proxy_only(database: ExperimentDatabase) -> None:
    UserDirectory(database).add("anna", "analyst", PASSWORDS["anna"])
    app = create_app(db=database.path, load_sample_experiments=False, trusted_proxies=["10.0.0.5"])
    client = app.server.test_client()
    token = _csrf(client)
    form = {"csrf": token, "name": "anna", "password": PASSWORDS["anna"]}
    direct = client.post("/login", headers=HOST, data=form, base_url="https://127.0.0.1")
    assert direct.status_code == 303 and "; Secure" in direct.headers["Set-Cookie"]

    def via(peer: str) -> str:
        proxied = app.server.test_client()
        token = _csrf(proxied)
        response = proxied.post("/login", data={**form, "csrf": token}, environ_base={"REMOTE_ADDR": peer},
                                headers={**HOST, "X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.7"})
        assert response.status_code == 303
        return response.headers["Set-Cookie"]

    assert "; Secure" in via("10.0.0.5")
    assert "; Secure" not in via("127.0.0.1")  # the header from an untrusted peer is ignored
    failures = UserDirectory(database).audit_log(AuditQuery(event="signed_in")).rows
    assert "from 192.0.2.7" in [r.detail for r in failures]  # the trusted proxy's client address is the one logged


def test_wrong_password_and_unknown_user_get_the_same_answer_and_are_audited(team_app: Dash,
                                                                           database: ExperimentDatabase) -> None:
    client = team_app.server.test_client()
    wrong = sign_in(client, "anna", "not-her-password")
    unknown = sign_in(client, "nobody", "not-her-password")
    assert wrong.status_code == unknown.status_code == 401
    for response in (wrong, unknown):
        assert "Wrong user name or password." in response.get_data(as_text=True)
        assert auth.SESSION_COOKIE_NAME not in response.headers.get("Set-Cookie", "") or \
            "user" not in _session_of(team_app, response)
    failed = UserDirectory(database).audit_log(AuditQuery(event="sign_in_failed")).rows
    assert {r.actor for r in failed} == {"anna", "nobody"}
    sign_in(client, "anna")
    assert [r.actor for r in UserDirectory(database).audit_log(AuditQuery(event="signed_in")).rows] == ["anna"]


def _session_of(app: Dash, response: Any) -> dict[str, Any]:
    value = response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    serializer = app.server.session_interface.get_signing_serializer(app.server)
    return dict(serializer.loads(value))


def test_login_refuses_a_form_without_its_token_or_from_another_site(team_app: Dash) -> None:
    client = team_app.server.test_client()
    token = _csrf(client)
    form = {"name": "anna", "password": PASSWORDS["anna"]}
    assert client.post("/login", headers=HOST, data=form).status_code == 400
    assert client.post("/login", headers=HOST, data={**form, "csrf": "forged"}).status_code == 400
    cross_site = client.post("/login", headers={**HOST, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
                             data={**form, "csrf": token})
    assert cross_site.status_code == 400
    assert client.get("/_dash-layout", headers=HOST).status_code == 401  # still not signed in


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_next_never_leaves_the_site(team_app: Dash, target: str) -> None:
    response = sign_in(team_app.server.test_client(), "anna", next_path=target)
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_a_cookie_signed_with_another_key_is_anonymous(team_app: Dash) -> None:
    forged = URLSafeTimedSerializer(b"guessed", salt="cookie-session", signer_kwargs={
        "key_derivation": "hmac", "digest_method": __import__("hashlib").sha1}).dumps({"user": "adam", "at": 9e9})
    client = team_app.server.test_client()
    client.set_cookie(auth.SESSION_COOKIE_NAME, forged, domain="127.0.0.1")
    assert client.get("/_dash-layout", headers=HOST).status_code == 401


def test_sign_out_from_the_navbar_link_and_refused_from_another_site(signed_in: Callable[[str], Any]) -> None:
    client = signed_in("vera")
    cross_site = client.get("/logout", headers={**HOST, "Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 200 and f'id="{ids.LOGOUT_SUBMIT}"' in cross_site.get_data(as_text=True)
    assert client.get("/_dash-layout", headers=HOST).status_code == 200  # a foreign link did not sign out
    response = client.get("/logout", headers={**HOST, "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert client.get("/_dash-layout", headers=HOST).status_code == 401


def test_a_removed_user_loses_access_on_the_next_request(team_app: Dash, signed_in: Callable[[str], Any],
                                                        database: ExperimentDatabase) -> None:
    client = signed_in("vera")
    assert client.get("/_dash-layout", headers=HOST).status_code == 200
    UserDirectory(database).remove("vera")
    with team_app.server.app_context():
        auth.forget_cached_users()
    assert client.get("/_dash-layout", headers=HOST).status_code == 401


# -- rate limit ----------------------------------------------------------------------------------


def test_five_failures_for_a_name_then_429_even_with_the_right_password(team_app: Dash) -> None:
    client = team_app.server.test_client()
    for _ in range(auth.MAX_FAILURES):
        assert sign_in(client, "anna", "guess-guess").status_code == 401
    blocked = sign_in(client, "anna")
    assert blocked.status_code == 429
    assert "Too many failed sign-ins" in blocked.get_data(as_text=True)
    # another name from another address is not affected
    assert sign_in(team_app.server.test_client(), "vera", environ={"REMOTE_ADDR": "127.0.0.2"}).status_code == 303


def test_five_failures_from_an_address_block_every_name_from_it(team_app: Dash) -> None:
    client = team_app.server.test_client()
    for name in ("a1", "a2", "a3", "a4", "a5"):
        assert sign_in(client, name, "guess-guess").status_code == 401
    assert sign_in(client, "vera").status_code == 429
    assert sign_in(team_app.server.test_client(), "vera", environ={"REMOTE_ADDR": "127.0.0.3"}).status_code == 303


def test_the_window_slides() -> None:
    now = [1000.0]
    limiter = auth.LoginRateLimiter(max_failures=5, window=300, clock=lambda: now[0])
    for _ in range(5):
        limiter.failed(["name:x"])
        now[0] += 10
    assert limiter.blocked_for(["name:x", "address:y"]) == pytest.approx(300 - 50)
    now[0] += 251
    assert limiter.blocked_for(["name:x"]) == 0
    limiter.failed(["name:x"])  # the first left the window, this one makes five again
    assert limiter.blocked_for(["name:x"]) == pytest.approx(1010 + 300 - 1301)
    now[0] += 9
    assert limiter.blocked_for(["name:x"]) == 0
    limiter.succeeded("name:x")
    limiter.failed(["name:x"])
    assert limiter.blocked_for(["name:x"]) == 0  # a success forgets the name's failures


# -- roles, per callback class ---------------------------------------------------------------------


@pytest.mark.parametrize(("user", "output", "allowed"), [
    ("vera", VIEWER_CALLBACK, True), ("vera", ANALYST_CALLBACK, False), ("vera", ADMIN_CALLBACK, False),
    ("anna", VIEWER_CALLBACK, True), ("anna", ANALYST_CALLBACK, True), ("anna", ADMIN_CALLBACK, False),
    ("adam", VIEWER_CALLBACK, True), ("adam", ANALYST_CALLBACK, True), ("adam", ADMIN_CALLBACK, True),
    ("vera", "experiment-add-look.contents", False), ("anna", "experiment-add-look.contents", True),
    ("vera", "notes-message.children", False), ("vera", "upload-message.children", False),
    ("vera", "download-pdf-file.data", True), ("vera", "history-table.rowData", True),
    ("anna", "admin-users-table.children", False), ("adam", "admin-users-table.children", True),
])
def test_each_role_may_run_its_callbacks_and_no_others(team_app: Dash, signed_in: Callable[[str], Any], user: str,
                                                       output: str, allowed: bool) -> None:
    client = signed_in(user)
    response = call(client, team_app, output)
    if allowed:
        assert response.status_code in (200, 204), response.get_data(as_text=True)
    else:
        assert response.status_code == 403
        assert f"{ROLES_OF[user].capitalize()}s cannot" in response.get_json()["error"]


def test_an_unknown_callback_needs_admin(team_app: Dash, signed_in: Callable[[str], Any]) -> None:
    body = {"output": "..session-store.data...evil.children..", "outputs": [], "inputs": [], "changedPropIds": []}
    response = signed_in("anna").post("/_dash-update-component", headers=HOST, json=body)
    assert response.status_code == 403
    assert auth.callback_role("..session-store.data@0123abcd...never-registered.children..") == "admin"
    garbage = signed_in("anna").post("/_dash-update-component", headers=HOST, data=b"not json",
                                     content_type="application/json")
    assert garbage.status_code == 403


def test_every_registered_callback_is_classified(team_app: Dash, signed_in: Callable[[str], Any]) -> None:
    """Default-deny must not be how a new callback gets its role: classify it in CALLBACK_ROLES."""
    signed_in("adam").get("/", headers=HOST)  # Dash Pages registers its router on the first request
    unclassified = sorted(" + ".join(sorted(auth.callback_outputs(key))) for key in team_app.callback_map
                          if auth.callback_outputs(key) not in auth.CALLBACK_ROLES)
    assert unclassified == [], f"add these callbacks to dashapp.auth.CALLBACK_ROLES: {unclassified}"
    assert any("_pages_content.children" in auth.callback_outputs(k) for k in team_app.callback_map)


def test_viewers_may_not_upload_large_files(signed_in: Callable[[str], Any]) -> None:
    response = signed_in("vera").post("/upload/large?name=x.csv", headers={**HOST, "X-ExperimentOS-Upload": "1"},
                                      data=b"variant,users\nA,1\n")
    assert response.status_code == 403
    analyst = signed_in("anna").post("/upload/large?name=x.csv", headers={**HOST, "X-ExperimentOS-Upload": "1"},
                                     data=b"variant,users\nA,1\n")
    assert analyst.status_code == 200 and len(analyst.get_json()["sha256"]) == 64


def test_the_navbar_shows_the_user_and_only_the_pages_of_the_role(signed_in: Callable[[str], Any]) -> None:
    layouts = {name: signed_in(name).get("/_dash-layout", headers=HOST).get_data(as_text=True).replace("\\u002f", "/")
               for name in ROLES_OF}
    for name, layout in layouts.items():
        assert f'"children":"{name}"' in layout and '"href":"/logout"' in layout
    assert '"href":"/new"' not in layouts["vera"] and '"href":"/new"' in layouts["anna"]
    assert '"href":"/admin"' not in layouts["anna"] and '"href":"/admin"' in layouts["adam"]


def _page_content(client: Any, app: Dash, path: str) -> str:
    key = callback_key(app, "_pages_content.children")
    body = {"output": key, "outputs": [{"id": "_pages_content", "property": "children"},
                                       {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": path},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "changedPropIds": ["_pages_location.pathname"]}
    response = client.post("/_dash-update-component", headers=HOST, json=body)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_pages_above_the_role_show_a_refusal_instead(team_app: Dash, signed_in: Callable[[str], Any]) -> None:
    viewer = signed_in("vera")
    viewer.get("/", headers=HOST)
    assert "Viewers cannot upload, analyse, save or add notes" in _page_content(viewer, team_app, "/new")
    assert "Viewers cannot manage users" in _page_content(viewer, team_app, "/admin")
    analyst = signed_in("anna")
    assert "upload-data" in _page_content(analyst, team_app, "/new")
    assert "Analysts cannot manage users" in _page_content(analyst, team_app, "/admin")
    assert "admin-audit-table" in _page_content(signed_in("adam"), team_app, "/admin")


def test_archive_is_for_admins_and_is_audited(team_app: Dash, signed_in: Callable[[str], Any],
                                              database: ExperimentDatabase) -> None:
    report = {"input": {"sha256": "e" * 64}, "decision": {"outcome": "hold", "winner": None},
              "health": {"status": "ok"}, "comparisons": []}
    experiment_id, _ = database.save_analysis(NewExperiment(name="to archive"), NewAnalysis(
        report=report, request={}, policy={}, filename="x.csv", content=b"x"))
    key = callback_key(team_app, ADMIN_CALLBACK)
    body = {"output": key, "outputs": {"id": "experiment-archive-message", "property": "children"},
            "inputs": [{"id": "experiment-archive", "property": "n_clicks", "value": 1}],
            "state": [{"id": "experiment-archive-state", "property": "children", "value": experiment_id}],
            "changedPropIds": ["experiment-archive.n_clicks"]}
    assert signed_in("anna").post("/_dash-update-component", headers=HOST, json=body).status_code == 403
    assert UserDirectory(database).archived_at(experiment_id) is None
    response = signed_in("adam").post("/_dash-update-component", headers=HOST, json=body)
    assert response.status_code == 200 and "Unarchive" in response.get_data(as_text=True)
    assert UserDirectory(database).archived_at(experiment_id) is not None
    events = UserDirectory(database).audit_log(AuditQuery(event="archived")).rows
    assert [(r.actor, r.experiment_id) for r in events] == [("adam", experiment_id)]


def test_notes_and_saves_are_authored_by_the_signed_in_user(team_app: Dash) -> None:
    with team_app.server.test_request_context("/"):
        flask.g.experimentos_user = auth.CurrentUser("anna", "analyst")
        assert auth.acting_user_name() == "anna" and auth.may("analyst") and not auth.may("admin")
    with team_app.server.test_request_context("/"):
        assert auth.acting_user_name() is None and not auth.may("viewer")
    assert auth.acting_user_name() is None and auth.may("admin")  # outside a request: tests and the CLI


# -- single-user mode, --no-auth and proxy SSO ------------------------------------------------------


def test_with_no_users_every_loopback_request_acts_as_the_local_admin(database: ExperimentDatabase) -> None:
    app = create_app(db=database.path, load_sample_experiments=False)
    client = app.server.test_client()
    assert client.get("/", headers=HOST).status_code == 200
    assert call(client, app, ADMIN_CALLBACK).status_code == 204
    assert "local admin" in client.get("/_dash-layout", headers=HOST).get_data(as_text=True)
    remote = client.get("/", headers=HOST, environ_base={"REMOTE_ADDR": "192.0.2.10"})
    assert remote.status_code == 403 and "no users yet" in remote.get_data(as_text=True)


def test_with_no_users_a_non_loopback_bound_app_answers_no_one(database: ExperimentDatabase) -> None:
    app = create_app(db=database.path, load_sample_experiments=False, loopback_bind=False)
    assert app.server.test_client().get("/_dash-layout", headers=HOST).status_code == 403


def test_no_auth_acts_as_admin_for_everyone_on_purpose(database: ExperimentDatabase) -> None:
    UserDirectory(database).add("vera", "viewer", PASSWORDS["vera"])
    app = create_app(db=database.path, load_sample_experiments=False, auth_mode="none", loopback_bind=False)
    client = app.server.test_client()
    assert client.get("/_dash-layout", headers=HOST, environ_base={"REMOTE_ADDR": "192.0.2.10"}).status_code == 200
    assert call(client, app, ADMIN_CALLBACK).status_code == 204


@pytest.fixture
def proxy_app(database: ExperimentDatabase) -> Dash:
    UserDirectory(database).add("paula", "analyst", "paula-password")
    return create_app(db=database.path, load_sample_experiments=False, auth_mode="proxy",
                      trusted_proxies=["10.0.0.5"], loopback_bind=False)


def test_the_proxy_header_is_believed_only_from_the_trusted_peer(proxy_app: Dash,
                                                                database: ExperimentDatabase) -> None:
    client = proxy_app.server.test_client()
    trusted = {"REMOTE_ADDR": "10.0.0.5"}
    named = {**HOST, "X-Forwarded-User": "paula"}
    assert client.get("/_dash-layout", headers=named, environ_base=trusted).status_code == 200
    assert call(client, proxy_app, ANALYST_CALLBACK, REMOTE_ADDR="10.0.0.5").status_code == 401  # no header
    ok = client.post("/_dash-update-component", headers=named, environ_base=trusted,
                     json={"output": callback_key(proxy_app, VIEWER_CALLBACK), "outputs": {
                         "id": "results-body", "property": "children"},
                         "inputs": [{"id": "session-store", "property": "data", "value": None}], "changedPropIds": []})
    assert ok.status_code == 200
    spoofed = client.get("/", headers=named, environ_base={"REMOTE_ADDR": "10.0.0.6"})
    assert spoofed.status_code == 403 and "only through its sign-in proxy" in spoofed.get_data(as_text=True)
    assert client.get("/", headers=named, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 403
    stranger = client.get("/_dash-layout", headers={**HOST, "X-Forwarded-User": "mallory"}, environ_base=trusted)
    assert stranger.status_code == 403 and "mallory is not an ExperimentOS user" in stranger.get_json()["error"]
    assert [r.actor for r in UserDirectory(database).audit_log(AuditQuery(event="signed_in")).rows] == ["paula"]


def test_proxy_mode_needs_a_trusted_proxy(database: ExperimentDatabase) -> None:
    with pytest.raises(ValueError, match="--trusted-proxy"):
        create_app(db=database.path, load_sample_experiments=False, auth_mode="proxy")
    with pytest.raises(ValueError, match="IP address"):
        create_app(db=database.path, load_sample_experiments=False, trusted_proxies=["proxy.example"])


# -- serve's bind check and the users CLI -----------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::"])
def test_serve_refuses_a_non_loopback_bind_without_users(tmp_path: Path, host: str) -> None:
    err = io.StringIO()
    code = main(["serve", "--db", str(tmp_path / "empty.duckdb"), "--host", host, "--port", "18150"], stderr=err)
    assert code == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"experimentos: error: refusing to serve on {host}")
    assert "experimentos users add" in lines[0] and "--no-auth" in lines[0]


def test_the_bind_check_allows_loopback_users_and_no_auth() -> None:
    auth.check_bind("127.0.0.1", 0, "password")
    auth.check_bind("localhost", 0, "password")
    auth.check_bind("::1", 0, "password")
    auth.check_bind("0.0.0.0", 1, "password")
    auth.check_bind("0.0.0.0", 0, "none")
    with pytest.raises(ValueError, match="no users"):
        auth.check_bind("10.1.2.3", 0, "password")


@pytest.fixture
def stdin_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def feed(text: str) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(text))
    yield feed


def test_users_cli_add_list_set_role_remove(tmp_path: Path, stdin_lines: Callable[[str], None]) -> None:
    db = str(tmp_path / "cli.duckdb")
    stdin_lines("s3cret-password\n")
    assert main(["users", "add", "carol", "--role", "analyst", "--db", db]) == 0
    out = io.StringIO()
    assert main(["users", "list", "--db", db, "--format", "json"], stdout=out) == 0
    assert [(u["name"], u["role"]) for u in json.loads(out.getvalue())] == [("carol", "analyst")]
    assert UserDirectory(ExperimentDatabase(db)).authenticate("carol", "s3cret-password") is not None
    assert main(["users", "set-role", "carol", "--role", "admin", "--db", db]) == 0
    assert UserDirectory(ExperimentDatabase(db)).user("carol").role == "admin"
    assert main(["users", "remove", "carol", "--db", db]) == 0
    assert UserDirectory(ExperimentDatabase(db)).count() == 0
    actors = {r.actor for r in UserDirectory(ExperimentDatabase(db)).audit_log().rows}
    assert len(actors) == 1 and next(iter(actors)).startswith("cli")


@pytest.mark.parametrize(("argv", "stdin", "message"), [
    (["users", "add", "dave", "--role", "owner"], "password-1\n", "invalid choice"),
    (["users", "add", "dave"], "password-1\n", "--role"),
    (["users", "add", "bad name", "--role", "viewer"], "password-1\n", "user name must be"),
    (["users", "add", "dave", "--role", "viewer"], "", "no password on standard input"),
    (["users", "add", "dave", "--role", "viewer"], "short\n", "at least 8"),
    (["users", "remove", "nobody"], "", "there is no user 'nobody'"),
    (["users", "set-role", "nobody", "--role", "admin"], "", "there is no user 'nobody'"),
])
def test_users_cli_errors_are_one_line_and_exit_2(tmp_path: Path, stdin_lines: Callable[[str], None],
                                                  argv: list[str], stdin: str, message: str) -> None:
    stdin_lines(stdin)
    err = io.StringIO()
    assert main([*argv, "--db", str(tmp_path / "cli.duckdb")], stderr=err) == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("experimentos: error:") and message in lines[0]


def test_users_cli_refuses_a_duplicate(tmp_path: Path, stdin_lines: Callable[[str], None]) -> None:
    db = str(tmp_path / "cli.duckdb")
    stdin_lines("password-1\n")
    assert main(["users", "add", "erin", "--role", "viewer", "--db", db]) == 0
    stdin_lines("password-2\n")
    err = io.StringIO()
    assert main(["users", "add", "erin", "--role", "admin", "--db", db], stderr=err) == 2
    assert "already exists" in err.getvalue()
    assert UserDirectory(ExperimentDatabase(db)).user("erin").role == "viewer"


@pytest.mark.parametrize(("argv", "message"), [
    (["--auth", "proxy"], "--auth proxy needs --trusted-proxy IP"),
    (["--auth", "proxy", "--trusted-proxy", "proxy.example"], "--trusted-proxy must be an IP address"),
    (["--auth", "proxy", "--trusted-proxy", "10.0.0.5", "--auth-header", "X User"], "--auth-header must be"),
    (["--auth", "proxy", "--trusted-proxy", "10.0.0.5", "--no-auth"], "contradict"),
])
def test_serve_refuses_bad_auth_options_in_one_line(tmp_path: Path, argv: list[str], message: str) -> None:
    err = io.StringIO()
    assert main(["serve", "--db", str(tmp_path / "s.duckdb"), "--port", "18151", *argv], stderr=err) == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_admins_manage_users_from_the_admin_page_and_it_is_audited(team_app: Dash, signed_in: Callable[[str], Any],
                                                                   database: ExperimentDatabase) -> None:
    key = callback_key(team_app, "admin-users-table.children")

    def body(button: str, name: str, role: str, password: str = "") -> dict[str, Any]:
        return {"output": key, "outputs": [{"id": "admin-users-table", "property": "children"},
                                           {"id": "admin-user-message", "property": "children"}],
                "inputs": [{"id": b, "property": "n_clicks", "value": 1 if b == button else None}
                           for b in ("admin-user-add", "admin-user-set-role", "admin-user-remove")],
                "state": [{"id": "admin-user-name", "property": "value", "value": name},
                          {"id": "admin-user-role", "property": "value", "value": role},
                          {"id": "admin-user-password", "property": "value", "value": password}],
                "changedPropIds": [f"{button}.n_clicks"]}

    analyst = signed_in("anna").post("/_dash-update-component", headers=HOST,
                                     json=body("admin-user-add", "eve", "admin", "eve-password"))
    assert analyst.status_code == 403 and UserDirectory(database).find("eve") is None
    admin = signed_in("adam")
    added = admin.post("/_dash-update-component", headers=HOST, json=body("admin-user-add", "eve", "viewer",
                                                                           "eve-password"))
    assert added.status_code == 200 and "Added eve as viewer." in added.get_data(as_text=True)
    promoted = admin.post("/_dash-update-component", headers=HOST, json=body("admin-user-set-role", "eve", "analyst"))
    assert "eve is now analyst." in promoted.get_data(as_text=True)
    itself = admin.post("/_dash-update-component", headers=HOST, json=body("admin-user-remove", "adam", "viewer"))
    assert "you cannot remove yourself" in itself.get_data(as_text=True)
    removed = admin.post("/_dash-update-component", headers=HOST, json=body("admin-user-remove", "eve", "viewer"))
    assert "Removed eve." in removed.get_data(as_text=True) and UserDirectory(database).find("eve") is None
    events = [(r.event, r.actor, r.target_user) for r in UserDirectory(database).audit_log(
        AuditQuery(actor="adam")).rows if r.event != "signed_in"]
    assert events == [("user_removed", "adam", "eve"), ("role_changed", "adam", "eve"), ("user_added", "adam", "eve")]
