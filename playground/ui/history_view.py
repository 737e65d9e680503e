"""The page's History section: the comparisons this browser (or login) kept, across restarts.

Who owns what is ``history.owners``: a login, the machine's owner on a trusted loopback page, or
else the digest of a random token the browser keeps (``gr.BrowserState``). The view renders what
the store returns; saving is the run handler's last step (``save``).

The section filters the listing (model, backend, date range: ``history.filters`` validates what the
page sends, a bad value gets a message in the note), deletes one listed comparison or all of them,
and exports the records of every comparison the filters match (``history.exports``). Every handler
asks the store for the request's owner only, so a forged comparison id reaches nothing of another's.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.engine.records import RunRecord
from playground.history.exports import write_exports
from playground.history.filters import MAX_FILTER_CHARS, MAX_TIME_CHARS, HistoryError, HistoryFilter
from playground.history.owners import BROWSER_PREFIX, LOCAL, browser_state_secret, page_owner, valid_token
from playground.history.store import ComparisonSummary, HistoryStore, default_store, save_to_history
from playground.ui.quiet_events import progress_on

log = logging.getLogger(__name__)
STORAGE_KEY = "playground-owner"
HEADERS = ["id", "when", "model", "backends", "result rows", "errors", "from"]
SHOWN = 50  # newest comparisons listed; the store holds more (its retention decides)
SHORT_ID = 8  # hex characters of a comparison's id shown in the list (the full id is its value)
ANY_BACKEND = "any backend"  # the backend filter's "no filter" choice (no backend has a space)
FACETS_SHOWN = 8  # kept models / backends named when the filters match nothing
EXPORT_KINDS = ("csv", "json")


@dataclass
class HistorySection:
    token: gr.BrowserState
    table: gr.Dataframe
    note: gr.Markdown
    refresh: gr.Button
    delete_all: gr.Button
    model: gr.Textbox
    backend: gr.Dropdown
    since: gr.Textbox
    until: gr.Textbox
    selected: gr.Dropdown
    delete_selected: gr.Button
    export_csv: gr.Button
    export_json: gr.Button
    export_file: gr.File

    def filters(self) -> list:
        """The filter inputs, in the order the handlers take them."""
        return [self.model, self.backend, self.since, self.until]

    def listed(self) -> list:
        """What a listing changes (``HistoryView.listing``'s outputs after the token)."""
        return [self.table, self.note, self.backend, self.selected, self.export_file]


def build_section() -> HistorySection:
    """Components only (inside ``gr.Blocks``); ``HistoryView.wire`` attaches the handlers."""
    token = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=browser_state_secret())
    with gr.Accordion("History (kept across restarts)", open=False, elem_id="history"):
        note = gr.Markdown("", elem_id="history-note")
        with gr.Row(equal_height=True):
            model = gr.Textbox(label="Model", placeholder="exact name (empty: any)",
                               max_length=MAX_FILTER_CHARS, elem_id="history-model")
            backend = gr.Dropdown([ANY_BACKEND], value=ANY_BACKEND, label="Backend", allow_custom_value=True,
                                  elem_id="history-backend")
            since = gr.Textbox(label="From (YYYY-MM-DD)", placeholder="YYYY-MM-DD",
                               max_length=MAX_TIME_CHARS, elem_id="history-since")
            until = gr.Textbox(label="To (YYYY-MM-DD, included)", placeholder="YYYY-MM-DD",
                               max_length=MAX_TIME_CHARS, elem_id="history-until")
        with gr.Row():
            refresh = gr.Button("Refresh", elem_id="history-refresh")
            export_csv = gr.Button("Export CSV", elem_id="history-export-csv")
            export_json = gr.Button("Export JSON", elem_id="history-export-json")
        export_file = gr.File(label="Export of the matched comparisons' records", interactive=False,
                              visible=False, elem_id="history-export-file")
        table = gr.Dataframe(headers=HEADERS, value=None, interactive=False, wrap=True,
                             elem_id="history-table", column_count=len(HEADERS))
        with gr.Row():
            # allow_custom_value: a pasted id works, and a choice the server no longer knows (the
            # app restarted under an open page) is still sent; the store decides what it may delete
            selected = gr.Dropdown([], value=None, label="Comparison (listed above)", allow_custom_value=True,
                                   elem_id="history-selected", scale=3)
            delete_selected = gr.Button("Delete selected", variant="stop", elem_id="history-delete-selected")
            delete_all = gr.Button("Delete my history", variant="stop", elem_id="history-delete")
    return HistorySection(token=token, table=table, note=note, refresh=refresh, delete_all=delete_all,
                          model=model, backend=backend, since=since, until=until, selected=selected,
                          delete_selected=delete_selected, export_csv=export_csv, export_json=export_json,
                          export_file=export_file)


class HistoryView:
    """Handlers of the History section, scoped to the request's owner.

    The listing handlers (``listing``, ``delete``, ``delete_selected``) return the token to keep,
    then ``HistorySection.listed()``: the table rows, the note, the backend filter's choices, the
    selectable comparisons and the export file (hidden: a listing never shows a stale export)."""

    def __init__(self, trusted: bool, store: HistoryStore | None = None) -> None:
        self.trusted = trusted  # a loopback page that is not shared: the machine's owner
        self._store = store

    @property
    def store(self) -> HistoryStore:
        return self._store or default_store()

    def owner(self, request: gr.Request | None, token: object) -> tuple[str, str]:
        return page_owner(_username(request), token, trusted=self.trusted)

    def save(self, request: gr.Request | None, token: object, records: list[RunRecord],
             started_at: float, run_request: object) -> str | None:
        """Keep a finished comparison (``save_to_history`` logs a failing store and returns None);
        a page without a valid token (nor login, nor trust) would own history no one can read
        again, so it keeps nothing."""
        if not records or not (_username(request) or self.trusted or valid_token(token)):
            return None
        try:
            owner, _ = self.owner(request, token)
        except ValueError:  # a login name the store cannot key by: the results on screen still matter
            log.exception("the comparison could not be kept in the history")
            return None
        return save_to_history(records, owner=owner, started_at=started_at, source="app",
                               request=run_request, store=self._store)

    def listing(self, request: gr.Request | None, token: object, model: object = "", backend: object = None,
                since: object = "", until: object = "") -> tuple:
        """On page load, on Refresh and on Enter in a filter: the newest ``SHOWN`` comparisons the
        filters match."""
        owner, token = self.owner(request, token)
        return (token, *self._list(owner, (model, backend, since, until)))

    def delete(self, request: gr.Request | None, token: object, model: object = "", backend: object = None,
               since: object = "", until: object = "") -> tuple:
        """"Delete my history": every comparison of the owner, whatever the filters."""
        owner, token = self.owner(request, token)
        try:
            removed = self.store.delete_all(owner)
        except HistoryError as exc:
            return (token, gr.skip(), f"The history cannot be changed: {exc}", *_skips(3))
        done = f"Deleted {removed} comparison(s)."
        return (token, *self._list(owner, (model, backend, since, until), done))

    def delete_selected(self, request: gr.Request | None, token: object, model: object = "",
                        backend: object = None, since: object = "", until: object = "",
                        selected: object = None) -> tuple:
        """"Delete selected": the one comparison picked, when the owner has it (the store's delete
        is scoped to the owner: another's id, forged or guessed, deletes nothing)."""
        owner, token = self.owner(request, token)
        if selected is None or (isinstance(selected, str) and not selected.strip()):
            return (token, gr.skip(), "Pick a comparison in the list first, then delete it.", *_skips(3))
        try:
            removed = self.store.delete_comparison(owner, selected.strip() if isinstance(selected, str)
                                                   else selected)
        except HistoryError as exc:  # not text, or a database that cannot be written
            return (token, gr.skip(), f"Nothing was deleted: {exc}", *_skips(3))
        name = _short(selected)
        done = (f"Deleted comparison {name}." if removed
                else f"Nothing was deleted: no comparison {name} is kept for {_whose(owner)}.")
        return (token, *self._list(owner, (model, backend, since, until), done))

    def export_csv(self, request: gr.Request | None, token: object, model: object = "",
                   backend: object = None, since: object = "", until: object = "") -> tuple:
        return self.export(request, token, model, backend, since, until, kind="csv")

    def export_json(self, request: gr.Request | None, token: object, model: object = "",
                    backend: object = None, since: object = "", until: object = "") -> tuple:
        return self.export(request, token, model, backend, since, until, kind="json")

    def export(self, request: gr.Request | None, token: object, model: object, backend: object,
               since: object, until: object, kind: str) -> tuple[Any, str, dict]:
        """(token, note, file): the records of every comparison the filters match (not only the
        listed ones), written by ``history.exports`` into a new export folder the janitor prunes."""
        assert kind in EXPORT_KINDS, kind
        owner, token = self.owner(request, token)
        try:
            filters = _filters(model, backend, since, until)
            rows = self.store.rows(owner, filters)
            if not rows:
                raise HistoryError("No records match the filters: nothing to export.")
            csv_path, json_path = write_exports(rows, stem="history")
        except HistoryError as exc:
            return token, str(exc), _no_file()
        except OSError as exc:  # the data folder is full or not writable
            log.exception("the history export could not be written")
            return token, f"The export could not be written: {exc}", _no_file()
        comparisons = len({row.get("comparison") for row in rows})
        path = csv_path if kind == "csv" else json_path
        note = (f"Exported {len(rows)} record(s) of {comparisons} comparison(s) matching the filters as "
                f"{kind.upper()}: download it below.")
        # an update rather than gr.File(value=...): a component built here copies the file into
        # gradio's cache at once, on top of the copy gradio makes when it sends the update
        return token, note, gr.update(value=str(path), visible=True)

    def _list(self, owner: str, inputs: tuple, done: str = "") -> tuple:
        """``HistorySection.listed()`` for ``owner`` and the filter inputs; ``done`` leads the note."""
        lead = f"{done} " if done else ""
        try:
            filters = _filters(*inputs)
        except HistoryError as exc:  # a malformed filter: the list stays as it was
            return (gr.skip(), f"{lead}{exc} The list is unchanged.", *_skips(3))
        try:
            summaries = self.store.comparisons(owner, filters, limit=SHOWN + 1)
            facets = self.store.facets(owner)
        except HistoryError as exc:  # a damaged or locked database: say so where the list would be
            return (None, f"{lead}The history cannot be read: {exc}", *_skips(3))
        more = len(summaries) > SHOWN
        summaries = summaries[:SHOWN]
        rows = [[s.id[:SHORT_ID], s.started_text, s.model, ", ".join(lane.label for lane in s.lanes),
                 s.records, s.errors, s.source] for s in summaries]
        whose = _whose(owner)
        filtered = filters != HistoryFilter()
        matching = ", matching the filters" if filtered else ""
        if more:
            note = (f"The newest {SHOWN} comparison(s) kept for {whose}{matching} are listed; more are "
                    "kept (narrow the filters to list older ones; an export has them all).")
        elif rows:
            note = f"{len(rows)} comparison(s) kept for {whose}{matching}."
        elif filtered and facets.models:
            note = (f"No comparisons kept for {whose} match the filters. Models kept: "
                    f"{_some(facets.models)}; backends: {_some(facets.backends)}.")
        else:
            note = f"No comparisons kept yet for {whose}."
        backends = gr.Dropdown(choices=[ANY_BACKEND, *facets.backends])
        selectable = gr.Dropdown(choices=[(_choice_label(s), s.id) for s in summaries], value=None)
        return rows or None, lead + note, backends, selectable, _no_file()

    def wire(self, section: HistorySection, blocks: gr.Blocks) -> None:
        outputs = [section.token, *section.listed()]
        inputs = [section.token, *section.filters()]
        common = dict(outputs=outputs, queue=False, api_visibility="private", **progress_on(section.note))
        blocks.load(self.listing, inputs=inputs, **common)
        section.refresh.click(self.listing, inputs=inputs, **common)
        for box in (section.model, section.since, section.until):
            box.submit(self.listing, inputs=inputs, **common)
        section.backend.select(self.listing, inputs=inputs, **common)
        section.delete_all.click(self.delete, inputs=inputs, **common)
        section.delete_selected.click(self.delete_selected, inputs=[*inputs, section.selected], **common)
        exported = dict(inputs=inputs, outputs=[section.token, section.note, section.export_file],
                        queue=False, api_visibility="private", **progress_on(section.note))
        section.export_csv.click(self.export_csv, **exported)
        section.export_json.click(self.export_json, **exported)


def _filters(model: object, backend: object, since: object, until: object) -> HistoryFilter:
    """The page's filter inputs as a validated ``HistoryFilter`` (raises ``HistoryError``)."""
    if backend == ANY_BACKEND:
        backend = ""
    return HistoryFilter(model=model, backend=backend, since=since, until=until)  # type: ignore[arg-type]


def _no_file() -> dict:
    """The export file emptied and hidden (a fresh dict each time: gradio consumes updates)."""
    return gr.update(value=None, visible=False)


def _skips(count: int) -> tuple:
    return tuple(gr.skip() for _ in range(count))


def _cut(text: str, most: int = 60) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"


def _choice_label(summary: ComparisonSummary) -> str:
    return f"{summary.id[:SHORT_ID]} · {summary.started_text} · {_cut(summary.model)}"


def _short(value: object) -> str:
    """A comparison id as the note may repeat it: its short form when it looks like one (the page
    sends what it likes; nothing else of it is echoed)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{1,64}", value.strip()):
        return value.strip()[:SHORT_ID]
    return "with that id"


def _some(names: list[str]) -> str:
    if not names:
        return "none"
    shown = [f"`{_cut(name.replace('`', ''))}`" for name in names[:FACETS_SHOWN]]
    return ", ".join(shown) + (f" and {len(names) - FACETS_SHOWN} more" if len(names) > FACETS_SHOWN else "")


def _username(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None


def _whose(owner: str) -> str:
    if owner == LOCAL:
        return "this machine's owner (CLI runs included)"
    return "this browser" if owner.startswith(BROWSER_PREFIX) else "your login"
