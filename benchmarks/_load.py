"""Child process of benchmarks/gateway.py: keep-alive mTLS load at a given concurrency.
Prints one JSON object: requests per second and latencies (ms).

    _load.py URL CREDS CONCURRENCY SECONDS [REQUEST.json]

REQUEST.json, when given: {"method": "POST", "headers": {...}, "body": "..."} (else GET).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp


async def worker(
    session: aiohttp.ClientSession,
    url: str,
    deadline: float,
    samples: list[float],
    errors: list[int],
    spec: dict[str, Any],
) -> None:
    method = spec.get("method", "GET")
    headers = spec.get("headers")
    body = spec.get("body", "").encode() or None
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        async with session.request(method, url, headers=headers, data=body) as response:
            await response.read()
            if response.status != 200:
                errors.append(response.status)
        samples.append((time.perf_counter() - start) * 1000)


async def run(
    url: str, creds: Path, concurrency: int, seconds: float, spec: dict[str, Any]
) -> dict[str, float]:
    context = ssl.create_default_context(cafile=str(creds / "bundle.pem"))
    context.check_hostname = False
    context.load_cert_chain(str(creds / "svid.pem"), str(creds / "key.pem"))
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    samples: list[float] = []
    errors: list[int] = []
    async with aiohttp.ClientSession(connector=connector) as session:
        warm = time.perf_counter() + min(1.0, seconds / 4)
        warm_samples: list[float] = []
        await asyncio.gather(
            *(worker(session, url, warm, warm_samples, [], spec) for _ in range(concurrency))
        )
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(
            *(worker(session, url, deadline, samples, errors, spec) for _ in range(concurrency))
        )
        elapsed = time.perf_counter() - start
    samples.sort()
    return {
        "rps": len(samples) / elapsed,
        "p50_ms": samples[len(samples) // 2],
        "p99_ms": samples[int(len(samples) * 0.99)],
        "requests": len(samples),
        "all_requests": len(samples) + len(warm_samples),
        "errors": len(errors),
    }


def main() -> None:
    url, creds, concurrency, seconds = (
        sys.argv[1],
        Path(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    spec = json.loads(Path(sys.argv[5]).read_text()) if len(sys.argv) > 5 else {}
    print(json.dumps(asyncio.run(run(url, creds, concurrency, seconds, spec))))


if __name__ == "__main__":
    main()
