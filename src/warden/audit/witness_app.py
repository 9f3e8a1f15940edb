"""The witness over HTTP (``warden audit witness``): ``GET /checkpoint`` gives the latest
checkpoint it accepted; ``POST /checkpoint`` with ``{"note", "proof"}`` offers a new one, 409
when it is not consistent with the latest (a fork or a rollback)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from warden.audit.witness import WitnessDirectory, WitnessRefused

MAX_BODY = 64 * 1024


def witness_app(witness: WitnessDirectory) -> Any:
    async def latest(_: Request) -> Response:
        checkpoint = witness.latest()
        if checkpoint is None:
            return JSONResponse({"error": "no_checkpoint"}, 404)
        return PlainTextResponse(checkpoint.note)

    async def offer(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "too_large"}, 413)
        try:
            document = await request.json()
            note = str(document["note"])
            proof = [base64.b64decode(p, validate=True) for p in document.get("proof", [])]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return JSONResponse({"error": "malformed"}, 400)
        try:
            accepted = witness.submit(note, proof)
        except WitnessRefused as exc:
            return JSONResponse({"error": exc.message}, 409)
        return JSONResponse({"accepted": accepted.size})

    return Starlette(
        routes=[Route("/checkpoint", latest), Route("/checkpoint", offer, methods=["POST"])]
    )
