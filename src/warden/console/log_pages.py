"""The decision log's pages: live decisions (a Server-Sent Events stream of the log's tail),
one decision with its reasons and inclusion proof, and the flows graph."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from jinja2 import Template

from warden.audit.checkpoint import VerifierKey
from warden.audit.checkpoint import verify as verify_checkpoint
from warden.console.access import Console, ConsoleUser, Refused
from warden.console.flows import flows_svg
from warden.console.pages import SECURITY_HEADERS, Pages
from warden.console.views import DecisionFilter, decision_row
from warden.errors import WardenError

STREAM_POLL_S = 0.2
STREAM_CHECK_EVERY = 25  # polls between checks that the session is still open (5 s)


def log_routes(console: Console, pages: Pages) -> APIRouter:
    router = APIRouter()

    # -- decisions -----------------------------------------------------------------------------

    @router.get("/decisions", response_class=HTMLResponse)
    def decisions(
        request: Request,
        agent: str = "",
        decision: str = "",
        resource: str = "",
        data_class: str = "",
    ) -> HTMLResponse:
        user = console.user(request)
        console.require(user, "audit.read")
        wanted = _filter(agent, decision, resource, data_class)
        after = console.views.newest_seq()
        entries = [e for e in console.views.recent(limit=500) if wanted.matches(e)][:100]
        stream = "/console/decisions/stream?" + urlencode({**wanted.query(), "after": after})
        return pages.page(
            request,
            "decisions.html",
            user,
            rows=[decision_row(e) for e in entries],
            wanted=wanted,
            stream=stream,
        )

    @router.get("/decisions/stream")
    async def stream(
        request: Request,
        after: int = -1,
        agent: str = "",
        decision: str = "",
        resource: str = "",
        data_class: str = "",
    ) -> Response:
        user = await asyncio.to_thread(console.user, request)
        await asyncio.to_thread(console.require, user, "audit.read")
        wanted = _filter(agent, decision, resource, data_class)
        headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
        rows = pages.templates.get_template("_decision_row.html")
        return StreamingResponse(
            _live(console, request, user, wanted, after, rows),
            media_type="text/event-stream",
            headers=headers,
        )

    @router.get("/decisions/{decision_id}", response_class=HTMLResponse)
    def one_decision(request: Request, decision_id: str) -> HTMLResponse:
        user = console.user(request)
        console.require(user, "audit.read")
        entry = console.views.reader.decision(decision_id[:64])
        if entry is None:
            raise Refused(404, "No such decision", decision_id[:64])
        proof, problem = None, ""
        note = console.views.reader.latest_checkpoint_note()
        if note is None:
            problem = "no checkpoint yet"
        else:
            try:
                checkpoint = verify_checkpoint(note, VerifierKey.parse(console.views.verifier_key))
                proof = console.views.reader.prove_decision(decision_id, checkpoint)
            except WardenError as exc:
                problem = exc.message
        return pages.page(
            request,
            "decision.html",
            user,
            entry=entry,
            row=decision_row(entry),
            proof=proof,
            proof_ok=proof.verifies() if proof else False,
            problem=problem,
            verifier_key=console.views.verifier_key,
        )

    # -- flows ---------------------------------------------------------------------------------

    @router.get("/flows", response_class=HTMLResponse)
    def flows(request: Request, window: int = 900) -> HTMLResponse:
        user = console.user(request)
        console.require(user, "audit.read")
        window = min(max(window, 60), 86_400)
        found = console.views.flows(window)
        return pages.page(
            request, "flows.html", user, flows=found, svg=flows_svg(found), window=window
        )

    return router


async def _live(
    console: Console,
    request: Request,
    user: ConsoleUser,
    wanted: DecisionFilter,
    after: int,
    row: Template,
) -> AsyncIterator[str]:
    """The log's tail as Server-Sent Events: each new decision that matches, as a table row;
    the stream ends when the session does or the browser goes."""
    last, polls = after, 0
    yield ": live\n\n"
    while not await request.is_disconnected():
        last, found = await asyncio.to_thread(console.views.new_decisions, last)
        for entry in found:
            if wanted.matches(entry):
                html = row.render(r=decision_row(entry))
                data = "".join(f"data: {line}\n" for line in html.splitlines() if line)
                yield f"event: decision\n{data}\n"
        polls += 1
        if polls % STREAM_CHECK_EVERY == 0:
            if not await asyncio.to_thread(console.sessions.still_open, user.session):
                yield "event: ended\ndata: Signed out: the live view has stopped.\n\n"
                return
            yield ": still here\n\n"
        await asyncio.sleep(STREAM_POLL_S)


def _filter(agent: str, decision: str, resource: str, data_class: str) -> DecisionFilter:
    if decision not in ("", "allow", "deny"):
        raise Refused(400, "Unknown decision filter", "Use allow or deny.")
    return DecisionFilter(agent[:256], decision, resource[:256], data_class[:32])
