"""`warden up` as a new user runs it, in its own process: it initialises a fresh state
directory, serves the control plane, the Workload API, a gateway and the console on
127.0.0.1, prints where they are and a login link that works once, stops cleanly on Ctrl-C
(SIGINT) with a log that verifies, and a restart keeps its state."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

WARDEN = str(Path(sys.executable).parent / "warden")


def start(state: Path, log: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    env = {**os.environ, "WARDEN_API_PORT": "0", "WARDEN_GATEWAY_PORT": "0", "COLUMNS": "200"}
    out = log.open("wb")
    process = subprocess.Popen(
        [WARDEN, "--state-dir", str(state), "up"], stdout=out, stderr=subprocess.STDOUT, env=env
    )
    deadline = time.monotonic() + 60
    while "Ctrl-C stops Warden." not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    text = log.read_text()
    found = {
        name: match.group(1)
        for name, match in (
            (n, re.search(rf"^{label}\s+(\S+)", text, re.M))
            for n, label in (
                ("control", "Control plane"),
                ("workload", "Workload API"),
                ("gateway", "Gateway"),
                ("console", "Console"),
                ("link", "Sign in"),
            )
        )
        if match is not None
    }
    return process, {**found, "text": text}


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=30)


def browser(state: Path) -> httpx.Client:
    bundle = state / "run" / "control-plane" / "bundle.pem"
    return httpx.Client(verify=ssl.create_default_context(cafile=str(bundle)), timeout=10)


def test_up_serves_everything_stops_cleanly_and_keeps_its_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process, seen = start(state, tmp_path / "first.log")
    try:
        assert "Initialised trust domain example.org" in seen["text"]
        assert seen["workload"] == f"unix://{(state / 'run' / 'workload.sock').resolve()}"
        assert Path(seen["workload"].removeprefix("unix://")).is_socket()
        assert seen["console"] == seen["control"] + "/console"
        register = subprocess.run(
            [WARDEN, "--state-dir", str(state), "agent", "register", "kept-bot", "--owner", "qa"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert register.returncode == 0, register.stdout + register.stderr
        with browser(state) as client:
            token = seen["link"].split("token=")[1]
            signed_in = client.post(
                seen["control"] + "/console/login", data={"token": token}, follow_redirects=True
            )
            assert signed_in.status_code == 200 and "Signed in as <strong>admin</strong>" in (
                signed_in.text
            )
            agents = client.get(seen["control"] + "/console/agents")
            assert 'data-agent="kept-bot"' in agents.text
            with browser(state) as again:  # the same link from another browser: used up
                used = again.post(seen["control"] + "/console/login", data={"token": token})
                assert used.status_code == 401
            # The gateway is up and refuses what it has no route for, as it should.
            unknown = client.get(seen["gateway"] + "/anything")
            assert unknown.status_code in (401, 403)
    finally:
        code = stop(process)
    assert code == 0
    assert "Warden stopped." in (tmp_path / "first.log").read_text()
    verify = subprocess.run(
        [WARDEN, "--state-dir", str(state), "audit", "verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # A restart: the same trust domain and agents, no new initialisation.
    process, seen = start(state, tmp_path / "second.log")
    try:
        assert "Initialised" not in seen["text"]
        with browser(state) as client:
            token = seen["link"].split("token=")[1]
            client.post(seen["control"] + "/console/login", data={"token": token})
            assert 'data-agent="kept-bot"' in client.get(seen["control"] + "/console/agents").text
    finally:
        assert stop(process) == 0
