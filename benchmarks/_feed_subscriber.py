"""Child process of benchmarks/identity.py: follows the principal feed over HTTP and prints,
for every entry it applies, its sequence number and the CLOCK_MONOTONIC time it saw it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from warden.identity.feed import FeedEntry
from warden.identity.feed_client import HttpFeedFollower
from warden.transport.uvicorn_mtls import client_ssl_context


def main() -> None:
    url, creds, seconds = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    context = client_ssl_context(
        ca_file=creds / "bundle.pem", certfile=creds / "svid.pem", keyfile=creds / "key.pem"
    )
    follower = HttpFeedFollower(url, context, poll_wait_s=1.0)

    def seen(entries: list[FeedEntry]) -> None:
        now = time.perf_counter()
        for entry in entries:
            print(json.dumps({"seq": entry.seq, "t": now}), flush=True)

    follower.add_listener(seen)
    follower.start()
    print(json.dumps({"ready": follower.sequence}), flush=True)
    time.sleep(seconds)
    follower.stop()


if __name__ == "__main__":
    main()
