"""The first questions analysts ask, as views over the live-row views of `views.py`.

Per source, as data (`ANALYTICS`): who the people are, what work they were given (assignments;
Pluvo: a training a person has events in) and which events they enrolled in. From that:

- `<work>_current` (`assignments_current`): every live row with the person's, their manager's
  and the item's *current* names, joined on the ids (PlusPlus REST embeds copies of names that
  go stale: they are left out), and `is_overdue` as of today (outstanding, due date passed);
- `completion_by_<item>` and `completion_by_manager`: rows, completed, overdue and their rates,
  per item and per the person's manager (dropped and exempted assignments do not count);
- `enrollments_current` and `event_attendance`: enrollments with current names, and per event
  the enrollments, waitlisted, cancelled, registered (the rest), checked in, attended and
  no-shows, with the checked-in and attended shares of those registered.

A view is made only where the tables it reads were loaded; a name whose table was not loaded is
left out (PlusPlus GraphQL's assignments have no content items to name).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lxp_sync.pipelines.views import LOADED_AT, Sql, View

log = logging.getLogger("lxp_sync")


@dataclass(frozen=True)
class People:
    """The people table: its key, name, email, and the column with each one's manager's key."""

    key: str
    manager: str
    table: str = "users"
    name: str = "name"
    email: str = "email"


@dataclass(frozen=True)
class Work:
    """What people were given to complete: one row per person and item."""

    table: str
    user: str  # the column with the person's key
    item: str  # the column with the item's key
    label: str  # an item in column and view names: `content_item`, `training`
    unit: str  # a row in counts: `assignments`, `learners`
    items: str | None = None  # the items' table (for their names)
    item_key: str = "id"
    item_name: str = "name"
    item_type: str | None = None
    state: str = "state"
    due_date: str | None = None
    # columns left out of `<work>_current`: embedded copies of what it joins (and the API's
    # `is_overdue` of the row's last load, computed there as of today instead)
    copies: tuple[str, ...] = ()
    completed: tuple[str, ...] = ("completed",)
    outstanding: tuple[str, ...] = ("not_started", "in_progress")
    excluded: tuple[str, ...] = ("dropped", "exempted")  # not counted in any rate


@dataclass(frozen=True)
class Attendance:
    """Enrollments in events, and what their statuses mean (lower case)."""

    user: str
    event: str
    checked_in: str  # a column: true when checked in (a flag), or its time
    checked_in_flag: bool
    waitlisted: tuple[str, ...]
    cancelled: tuple[str, ...]
    attended: tuple[str, ...]
    no_show: tuple[str, ...]
    table: str = "enrollments"
    status: str = "status"
    events: str | None = None  # the events' table (for their names)
    event_key: str = "id"
    event_name: str = "name"
    event_copy: str | None = None  # the enrollment's copy of the name, where no events table is
    copies: tuple[str, ...] = ()


# a view made from the live views before the others (Pluvo's progress per person and training)
Derived = Callable[[Mapping[str, View], Sql], View | None]


@dataclass(frozen=True)
class Analytics:
    people: People
    work: Work | None = None
    attendance: Attendance | None = None
    derived: tuple[Derived, ...] = ()


def training_progress(views: Mapping[str, View], sql: Sql) -> View | None:
    """Pluvo: one row per person and training they have events in; completed once one of the
    events is COMPLETED."""
    if "events" not in views:
        return None
    c = sql.column
    completed = f"LOWER(e.{c('type')}) = 'completed'"
    select = [
        f"MAX(e.{c(LOADED_AT)}) AS {c(LOADED_AT)}",
        f"e.{c('user__id')}",
        f"e.{c('training__id')}",
        f"CASE WHEN SUM(CASE WHEN {completed} THEN 1 ELSE 0 END) > 0 THEN 'completed' "
        f"ELSE 'in_progress' END AS {c('state')}",
        f"MIN(e.{c('occurred_at')}) AS {c('first_event_at')}",
        f"MAX(CASE WHEN {completed} THEN e.{c('occurred_at')} END) AS {c('completed_at')}",
        f"COUNT(*) AS {c('events')}",
    ]
    text = (
        f"SELECT {', '.join(select)} FROM {sql.view('events')} AS e "
        f"WHERE e.{c('user__id')} IS NOT NULL AND e.{c('training__id')} IS NOT NULL "
        f"GROUP BY e.{c('user__id')}, e.{c('training__id')}"
    )
    columns = (LOADED_AT, "user__id", "training__id", "state", "first_event_at")
    return View("training_progress", text, (*columns, "completed_at", "events"))


_REST_PEOPLE = People(key="public_id", manager="manager__public_id")
_GRAPHQL_PEOPLE = People(key="pk", manager="manager__pk")

ANALYTICS: dict[str, Analytics] = {
    "plusplus_rest": Analytics(
        people=_REST_PEOPLE,
        work=Work(
            table="assignments",
            user="user__public_id",
            item="content_item__public_id",
            label="content_item",
            unit="assignments",
            items="content_items",
            item_key="public_id",
            item_type="content_type",
            due_date="due_date",
            copies=(
                "user__name",
                "user__email",
                "content_item__name",
                "content_item__content_type",
                "is_overdue",
            ),
        ),
        attendance=Attendance(
            user="user__public_id",
            event="event__public_id",
            checked_in="checkin_datetime",
            checked_in_flag=False,
            waitlisted=("waitlisted",),
            cancelled=("cancelled",),
            attended=("attended",),
            no_show=("no_show",),
            event_copy="event__name",  # the REST API lists no events: the copy is all there is
            copies=("user__name", "user__email", "event__name"),
        ),
    ),
    "plusplus_graphql": Analytics(
        people=_GRAPHQL_PEOPLE,
        work=Work(
            table="assignments",
            user="user__pk",
            item="content_item__pk",
            label="content_item",
            unit="assignments",
            items="content_items",
            item_key="pk",
            item_type="content_type",
            due_date="due_date",
        ),
        attendance=Attendance(
            user="user__pk",
            event="event__pk",
            checked_in="checked_in",
            checked_in_flag=True,
            waitlisted=("waitlist",),
            cancelled=("not_going",),
            attended=("attended",),
            no_show=("no_show",),
            events="events",
            event_key="pk",
        ),
    ),
    "pluvo": Analytics(
        people=People(key="id", manager="manager__id"),
        work=Work(
            table="training_progress",
            user="user__id",
            item="training__id",
            label="training",
            unit="learners",
            items="trainings",
            item_name="title",
            outstanding=("in_progress",),
            excluded=(),
        ),
        derived=(training_progress,),
    ),
}


def analytics_views(source: str, tables: Mapping[str, View], sql: Sql) -> list[View]:
    """The source's analytics views that its loaded tables allow, inputs first."""
    spec = ANALYTICS.get(source)
    if spec is None:
        return []
    views = dict(tables)
    made: list[View] = []

    def add(view: View | None) -> None:
        if view is None:
            return
        if view.name in tables:  # a table of that name: its view wins
            log.warning("%s: no view %s: a table has that name", source, view.name)
            return
        views[view.name] = view
        made.append(view)

    for derive in spec.derived:
        add(derive(views, sql))
    if spec.people.table in views:
        if spec.work and spec.work.table in views:
            current = _work_current(spec.work, spec.people, views, sql)
            add(current)
            add(_completion(spec.work, current, sql, per="item"))
            add(_completion(spec.work, current, sql, per="manager", people=spec.people))
        if spec.attendance and spec.attendance.table in views:
            current = _attendance_current(spec.attendance, spec.people, views, sql)
            add(current)
            add(_event_attendance(spec.attendance, current, sql))
    return made


def _person_columns(
    people: People, views: Mapping[str, View], sql: Sql, user: str
) -> tuple[list[str], list[str], list[str]]:
    """(selected, names, joins) of the person and their manager, for a row whose `user` column
    holds the person's key (alias `x`)."""
    c = sql.column
    have = set(views[people.table].columns)
    selected, names = [], []
    for column, alias in ((people.name, "user_name"), (people.email, "user_email")):
        if column in have:
            selected.append(f"u.{c(column)} AS {c(alias)}")
            names.append(alias)
    manager_key = f"manager__{people.key}"
    selected.append(f"u.{c(people.manager)} AS {c(manager_key)}")
    names.append(manager_key)
    if people.name in have:
        selected.append(f"m.{c(people.name)} AS {c('manager_name')}")
        names.append("manager_name")
    table = sql.view(people.table)
    joins = [
        f"LEFT JOIN {table} AS u ON u.{c(people.key)} = x.{c(user)}",
        f"LEFT JOIN {table} AS m ON m.{c(people.key)} = u.{c(people.manager)}",
    ]
    return selected, names, joins


def _current(
    name: str,
    base: View,
    selected: list[str],
    names: list[str],
    joins: list[str],
    left_out: tuple[str, ...],
    sql: Sql,
) -> View:
    """`base`'s live rows (alias `x`) with the joined current values after `_lxp_loaded_at` and
    before its own columns (which the API may add to: at the end, for PostgreSQL)."""
    c = sql.column
    own = [col for col in base.columns if col != LOADED_AT and col not in left_out]
    columns = [f"x.{c(LOADED_AT)}", *selected, *(f"x.{c(col)}" for col in own)]
    text = f"SELECT {', '.join(columns)} FROM {sql.view(base.name)} AS x {' '.join(joins)}"
    return View(name, text, (LOADED_AT, *names, *own))


def _in(values: tuple[str, ...], sql: Sql) -> str:
    return ", ".join(sql.literal(value) for value in values)


def _work_current(work: Work, people: People, views: Mapping[str, View], sql: Sql) -> View:
    c = sql.column
    selected, names, joins = _person_columns(people, views, sql, work.user)
    if work.items and work.items in views:
        have = set(views[work.items].columns)
        for column, alias in ((work.item_name, "name"), (work.item_type, "type")):
            if column and column in have:
                selected.append(f"i.{c(column)} AS {c(f'{work.label}_{alias}')}")
                names.append(f"{work.label}_{alias}")
        joins.append(
            f"LEFT JOIN {sql.view(work.items)} AS i ON i.{c(work.item_key)} = x.{c(work.item)}"
        )
    if work.due_date and work.due_date in views[work.table].columns:
        state = f"LOWER(x.{c(work.state)})"
        selected.append(
            f"CASE WHEN {state} IN ({_in(work.outstanding, sql)}) "
            f"AND x.{c(work.due_date)} < CURRENT_DATE THEN TRUE ELSE FALSE END AS {c('is_overdue')}"
        )
        names.append("is_overdue")
    name = "assignments_current" if work.table == "assignments" else f"{work.table}_current"
    return _current(name, views[work.table], selected, names, joins, work.copies, sql)


def _completion(
    work: Work, current: View, sql: Sql, *, per: str, people: People | None = None
) -> View:
    """Completion (and overdue) counts and rates per item, or per the person's manager."""
    c = sql.column
    state = f"LOWER(x.{c(work.state)})"
    if per == "item":
        name, key = f"completion_by_{work.label}", work.item
        labels = [f"{work.label}_name", f"{work.label}_type"]
        measures = {work.unit: "COUNT(*)"}
    else:
        assert people is not None
        name, key = "completion_by_manager", f"manager__{people.key}"
        labels = ["manager_name"]
        measures = {"people": f"COUNT(DISTINCT x.{c(work.user)})", work.unit: "COUNT(*)"}
    labels = [label for label in labels if label in current.columns]
    completed = f"SUM(CASE WHEN {state} IN ({_in(work.completed, sql)}) THEN 1 ELSE 0 END)"
    measures["completed"] = completed
    measures["completion_rate"] = sql.rate(completed, "COUNT(*)")
    if "is_overdue" in current.columns:
        overdue = f"SUM(CASE WHEN x.{c('is_overdue')} THEN 1 ELSE 0 END)"
        measures["overdue"] = overdue
        measures["overdue_rate"] = sql.rate(overdue, "COUNT(*)")
    selected = [
        f"x.{c(key)}",
        *(f"MAX(x.{c(label)}) AS {c(label)}" for label in labels),
        *(f"{expression} AS {c(measure)}" for measure, expression in measures.items()),
    ]
    text = f"SELECT {', '.join(selected)} FROM {sql.view(current.name)} AS x"
    if work.excluded:
        text += f" WHERE {state} NOT IN ({_in(work.excluded, sql)})"
    text += f" GROUP BY x.{c(key)}"
    return View(name, text, (key, *labels, *measures))


def _attendance_current(
    spec: Attendance, people: People, views: Mapping[str, View], sql: Sql
) -> View:
    c = sql.column
    selected, names, joins = _person_columns(people, views, sql, spec.user)
    if spec.events and spec.events in views:
        selected.append(f"v.{c(spec.event_name)} AS {c('event_name')}")
        joins.append(
            f"LEFT JOIN {sql.view(spec.events)} AS v ON v.{c(spec.event_key)} = x.{c(spec.event)}"
        )
        names.append("event_name")
    elif spec.event_copy and spec.event_copy in views[spec.table].columns:
        selected.append(f"x.{c(spec.event_copy)} AS {c('event_name')}")
        names.append("event_name")
    return _current(
        "enrollments_current", views[spec.table], selected, names, joins, spec.copies, sql
    )


def _event_attendance(spec: Attendance, current: View, sql: Sql) -> View:
    c = sql.column
    status = f"LOWER(x.{c(spec.status)})"

    def count(condition: str) -> str:
        return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"

    checked = (
        f"COALESCE(x.{c(spec.checked_in)}, FALSE)"
        if spec.checked_in_flag
        else f"x.{c(spec.checked_in)} IS NOT NULL"
    )
    registered = count(f"{status} NOT IN ({_in(spec.waitlisted + spec.cancelled, sql)})")
    checked_in, attended = count(checked), count(f"{status} IN ({_in(spec.attended, sql)})")
    measures = {
        "enrollments": "COUNT(*)",
        "waitlisted": count(f"{status} IN ({_in(spec.waitlisted, sql)})"),
        "cancelled": count(f"{status} IN ({_in(spec.cancelled, sql)})"),
        "registered": registered,
        "checked_in": checked_in,
        "attended": attended,
        "no_show": count(f"{status} IN ({_in(spec.no_show, sql)})"),
        "checked_in_share": sql.rate(checked_in, registered),
        "attended_share": sql.rate(attended, registered),
    }
    selected = [f"x.{c(spec.event)}"]
    if "event_name" in current.columns:
        selected.append(f"MAX(x.{c('event_name')}) AS {c('event_name')}")
    selected += [f"{expression} AS {c(name)}" for name, expression in measures.items()]
    text = (
        f"SELECT {', '.join(selected)} FROM {sql.view(current.name)} AS x "
        f"GROUP BY x.{c(spec.event)}"
    )
    names = [spec.event, *(["event_name"] if "event_name" in current.columns else []), *measures]
    return View("event_attendance", text, tuple(names))
