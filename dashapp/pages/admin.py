"""Admin: the audit log (newest first, filtered by user and event) and the users, whom an admin
can add, change the role of and remove; also the Archive control of the experiment page.

Every callback here needs the ``admin`` role (:data:`dashapp.auth.CALLBACK_ROLES`, checked on the
server before the callback runs); the functions check it again, so a call that bypassed the map
still changes nothing.
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, ctx, html
from dash.exceptions import PreventUpdate

from analytics.wording import format_date
from dashapp import auth, ids
from dashapp.pages import context
from storage.errors import StorageError
from storage.users import AUDIT_EVENTS, ROLES, AuditQuery, UserDirectory

__all__ = [
    "AUDIT_ROWS",
    "archive_control",
    "audit_table",
    "change_users",
    "layout",
    "register_callbacks",
    "toggle_archive",
    "users_table",
]

AUDIT_ROWS = 200


def _directory() -> UserDirectory:
    return UserDirectory(context.database())


def audit_table(user: str | None, event: str | None) -> tuple[Any, str]:
    """The newest :data:`AUDIT_ROWS` audit events for the filters, and a count line."""
    if not auth.may("admin"):
        return dbc.Alert(auth.refusal_text("admin"), color="secondary"), ""
    try:
        query = AuditQuery(actor=(user or "").strip() or None, event=event if event in AUDIT_EVENTS else None,
                           limit=AUDIT_ROWS)
        page = _directory().audit_log(query)
    except (ValueError, StorageError) as error:
        return dbc.Alert(str(error), color="danger"), ""
    if not page.rows:
        return html.P("No events match.", className="text-muted"), "0 events"

    def target(row: Any) -> Any:
        parts: list[Any] = []
        if row.experiment_id is not None:
            parts.append(html.A(f"experiment {row.experiment_id}", href=f"/experiments/{row.experiment_id}"))
        if row.analysis_id is not None:
            parts.append(f" analysis {row.analysis_id}")
        if row.target_user:
            parts.append(f" user {row.target_user}")
        return parts

    table = dbc.Table([
        html.Thead(html.Tr([html.Th("When"), html.Th("Who"), html.Th("Event"), html.Th("Target"), html.Th("Detail")])),
        html.Tbody([html.Tr([html.Td(format_date(r.occurred_at)), html.Td(r.actor or "—"), html.Td(r.event),
                             html.Td(target(r)), html.Td(r.detail or "", className="text-break")])
                    for r in page.rows]),
    ], size="sm", striped=True, className="bg-white")
    shown = f"{len(page.rows)} of {page.total} event(s)" if page.total > len(page.rows) else f"{page.total} event(s)"
    return table, shown


def users_table() -> Any:
    users = _directory().users()
    if not users:
        return html.P("No users: the dashboard is single-user on this machine.", className="text-muted")
    return dbc.Table([
        html.Thead(html.Tr([html.Th("User"), html.Th("Role"), html.Th("Added")])),
        html.Tbody([html.Tr([html.Td(u.name), html.Td(u.role),
                             html.Td(format_date(u.created_at) if u.created_at else "—")]) for u in users]),
    ], size="sm", className="bg-white")


def change_users(action: str | None, name: str | None, role: str | None, password: str | None) -> tuple[Any, Any]:
    """Add a user, change a role or remove a user (``action``: the button's id), then list the users.
    Returns (users table, message)."""
    if not auth.may("admin"):
        return dbc.Alert(auth.refusal_text("admin"), color="secondary"), ""
    directory = _directory()
    actor = auth.acting_user_name()
    name = (name or "").strip()
    message: Any = ""
    try:
        if action == ids.ADMIN_USER_ADD:
            directory.add(name, role or "viewer", password or "", actor=actor)
            message = dbc.Alert(f"Added {name} as {role or 'viewer'}.", color="success", className="py-1")
        elif action == ids.ADMIN_USER_SET_ROLE:
            directory.set_role(name, role or "viewer", actor=actor)
            message = dbc.Alert(f"{name} is now {role or 'viewer'}.", color="success", className="py-1")
        elif action == ids.ADMIN_USER_REMOVE:
            if name == actor:
                raise ValueError("you cannot remove yourself; ask another admin")
            directory.remove(name, actor=actor)
            message = dbc.Alert(f"Removed {name}.", color="success", className="py-1")
        if action:
            auth.forget_cached_users()
        return users_table(), message
    except (ValueError, StorageError) as error:
        try:
            listing = users_table()
        except StorageError:
            listing = None
        return listing, dbc.Alert(f"Not changed: {error}", color="danger", className="py-1")


def layout(**_: Any) -> html.Div:
    events = [{"label": "All events", "value": "all"}] + [{"label": e.replace("_", " "), "value": e}
                                                           for e in AUDIT_EVENTS]
    return html.Div([
        html.H2("Admin"),
        dbc.Row([
            dbc.Col(dbc.Card([
                dbc.CardHeader("Users"),
                dbc.CardBody([
                    html.Div(id=ids.ADMIN_USERS_TABLE),
                    dbc.Input(id=ids.ADMIN_USER_NAME, placeholder="user name", maxLength=64, className="mb-2"),
                    dbc.Select(id=ids.ADMIN_USER_ROLE, value="viewer", className="mb-2",
                               options=[{"label": r, "value": r} for r in ROLES]),
                    dbc.Input(id=ids.ADMIN_USER_PASSWORD, type="password", placeholder="password (to add a user)",
                              maxLength=1024, autoComplete="new-password", className="mb-2"),
                    html.Div([
                        dbc.Button("Add user", id=ids.ADMIN_USER_ADD, color="primary", size="sm", className="me-2"),
                        dbc.Button("Set role", id=ids.ADMIN_USER_SET_ROLE, color="secondary", size="sm",
                                   className="me-2"),
                        dbc.Button("Remove", id=ids.ADMIN_USER_REMOVE, color="danger", outline=True, size="sm"),
                    ]),
                    html.Div(id=ids.ADMIN_USER_MESSAGE, className="mt-2"),
                ]),
            ]), lg=4),
            dbc.Col(dbc.Card([
                dbc.CardHeader("Audit log (newest first)"),
                dbc.CardBody([
                    dbc.Row([
                        dbc.Col(dbc.Input(id=ids.ADMIN_AUDIT_USER, placeholder="user", debounce=True), md=5),
                        dbc.Col(dbc.Select(id=ids.ADMIN_AUDIT_EVENT, value="all", options=events), md=5),
                    ], className="g-2 mb-2"),
                    html.Div(id=ids.ADMIN_AUDIT_COUNT, className="text-muted small mb-1"),
                    html.Div(id=ids.ADMIN_AUDIT_TABLE, style={"maxHeight": "70vh", "overflowY": "auto"}),
                ]),
            ]), lg=8),
        ], className="g-3"),
    ])


# -- archive (shown on the experiment page) ----------------------------------------------------------


def _archive_children(experiment_id: int, archived: bool) -> list[Any]:
    label = "Unarchive" if archived else "Archive"
    note = "Archived: hidden from History unless Show archived is on." if archived else ""
    return [dbc.Button(label, id=ids.EXPERIMENT_ARCHIVE, color="secondary", outline=True, size="sm",
                       className="me-2"), html.Span(note, className="small text-muted")]


def archive_control(experiment_id: int) -> Any:
    """The Archive / Unarchive button of an experiment page (nothing for others than a signed-in admin,
    nor outside a request)."""
    user = auth.current_user()
    if user is None or user.role != "admin":
        return None
    try:
        archived = _directory().archived_at(experiment_id) is not None
    except StorageError:
        return None
    return html.Div([html.Div(experiment_id, id=ids.EXPERIMENT_ARCHIVE_STATE, hidden=True),
                     html.Div(_archive_children(experiment_id, archived), id=ids.EXPERIMENT_ARCHIVE_MESSAGE)],
                    className="mb-3")


def toggle_archive(experiment_id: Any) -> list[Any]:
    """Archive the experiment when it is not archived, else unarchive it (the server's state decides,
    not the page's label); returns the control's new contents."""
    if not auth.may("admin"):
        return [dbc.Alert(auth.refusal_text("admin"), color="secondary")]
    try:
        number = int(experiment_id)
        directory = _directory()
        archived = directory.archived_at(number) is not None
        directory.set_archived(number, not archived, actor=auth.acting_user_name())
    except (TypeError, ValueError, StorageError) as error:
        return [dbc.Alert(f"Not changed: {error}", color="danger", className="py-1")]
    return _archive_children(number, not archived)


def register_callbacks(app: Dash) -> None:
    @app.callback(Output(ids.ADMIN_AUDIT_TABLE, "children"), Output(ids.ADMIN_AUDIT_COUNT, "children"),
                  Input(ids.ADMIN_AUDIT_USER, "value"), Input(ids.ADMIN_AUDIT_EVENT, "value"),
                  Input(ids.ADMIN_USER_MESSAGE, "children"))
    def audit(user: str | None, event: str | None, _: Any) -> tuple[Any, str]:
        return audit_table(user, event)

    @app.callback(Output(ids.ADMIN_USERS_TABLE, "children"), Output(ids.ADMIN_USER_MESSAGE, "children"),
                  Input(ids.ADMIN_USER_ADD, "n_clicks"), Input(ids.ADMIN_USER_SET_ROLE, "n_clicks"),
                  Input(ids.ADMIN_USER_REMOVE, "n_clicks"), State(ids.ADMIN_USER_NAME, "value"),
                  State(ids.ADMIN_USER_ROLE, "value"), State(ids.ADMIN_USER_PASSWORD, "value"))
    def users(add: int | None, set_role: int | None, remove: int | None, name: str | None, role: str | None,
              password: str | None) -> tuple[Any, Any]:
        action = ctx.triggered_id if isinstance(ctx.triggered_id, str) and (add or set_role or remove) else None
        return change_users(action, name, role, password)

    @app.callback(Output(ids.EXPERIMENT_ARCHIVE_MESSAGE, "children"), Input(ids.EXPERIMENT_ARCHIVE, "n_clicks"),
                  State(ids.EXPERIMENT_ARCHIVE_STATE, "children"), prevent_initial_call=True)
    def archive(clicks: int | None, experiment_id: Any) -> list[Any]:
        if not clicks:
            raise PreventUpdate
        return toggle_archive(experiment_id)
