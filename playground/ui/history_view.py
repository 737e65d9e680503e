"""The page's History section: the comparisons this browser (or login) kept, across restarts.

Who owns what is ``history.owners``: a login, the machine's owner on a trusted loopback page, or
else the digest of a random token the browser keeps (``gr.BrowserState``). The view renders what
the store returns; saving is the run handler's last step (``save``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.engine.records import RunRecord
from playground.history.filters import HistoryError
from playground.history.owners import BROWSER_PREFIX, LOCAL, browser_state_secret, page_owner, valid_token
from playground.history.store import HistoryStore, default_store, save_to_history

log = logging.getLogger(__name__)
STORAGE_KEY = "playground-owner"
HEADERS = ["when", "model", "backends", "result rows", "errors", "from"]
SHOWN = 50  # newest comparisons listed; the store holds more (its retention decides)


@dataclass
class HistorySection:
    token: gr.BrowserState
    table: gr.Dataframe
    note: gr.Markdown
    refresh: gr.Button
    delete_all: gr.Button


def build_section() -> HistorySection:
    """Components only (inside ``gr.Blocks``); ``HistoryView.wire`` attaches the handlers."""
    token = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=browser_state_secret())
    with gr.Accordion("History (kept across restarts)", open=False, elem_id="history"):
        note = gr.Markdown("", elem_id="history-note")
        table = gr.Dataframe(headers=HEADERS, value=None, interactive=False, wrap=True,
                             elem_id="history-table", column_count=len(HEADERS))
        with gr.Row():
            refresh = gr.Button("Refresh", elem_id="history-refresh")
            delete_all = gr.Button("Delete my history", variant="stop", elem_id="history-delete")
    return HistorySection(token=token, table=table, note=note, refresh=refresh, delete_all=delete_all)


class HistoryView:
    """Handlers of the History section, scoped to the request's owner."""

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

    def listing(self, request: gr.Request, token: object) -> tuple[Any, Any, str]:
        """(token to keep, table rows, note): on page load and on Refresh."""
        owner, token = self.owner(request, token)
        try:
            summaries = self.store.comparisons(owner, limit=SHOWN)
        except HistoryError as exc:  # a damaged or locked database: say so where the list would be
            return token, None, f"The history cannot be read: {exc}"
        rows = [[s.started_text, s.model, ", ".join(lane.label for lane in s.lanes), s.records, s.errors,
                 s.source] for s in summaries]
        whose = _whose(owner)
        note = (f"{len(rows)} comparison(s) kept for {whose}." if rows
                else f"No comparisons kept yet for {whose}.")
        return token, rows or None, note

    def delete(self, request: gr.Request, token: object) -> tuple[Any, Any, str]:
        owner, token = self.owner(request, token)
        try:
            removed = self.store.delete_all(owner)
        except HistoryError as exc:
            return token, gr.skip(), f"The history cannot be changed: {exc}"
        return token, None, f"Deleted {removed} comparison(s)."

    def wire(self, section: HistorySection, blocks: gr.Blocks) -> None:
        outputs = [section.token, section.table, section.note]
        common = dict(inputs=[section.token], outputs=outputs, queue=False, api_visibility="private")
        blocks.load(self.listing, **common)
        section.refresh.click(self.listing, **common)
        section.delete_all.click(self.delete, **common)


def _username(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None


def _whose(owner: str) -> str:
    if owner == LOCAL:
        return "this machine's owner (CLI runs included)"
    return "this browser" if owner.startswith(BROWSER_PREFIX) else "your login"
