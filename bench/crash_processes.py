"""bench/crash.py's child processes: the fake vendors and `dangol serve`, each in a process
group of its own (so Ctrl-C reaches only the harness, which stops them), wrapped in
`setpriv --pdeathsig KILL` where it exists (so they die with the harness even if it is
killed), logging to files in the run's directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SETPRIV = shutil.which("setpriv")
STOP_WAIT = 45.0  # SIGTERM: dangol finishes its tick (up to 30 s) before exiting
# Seconds a vendor takes to answer a send (after recording it): SOLAPI's send-many of a
# batch, Twilio's one message. The window in which a kill leaves a send unrecorded.
VENDOR_LATENCY = {"solapi": 0.25, "twilio": 0.15}


class Child:
    """A process of ours: started with its own process group, stopped by pid, logged to a file."""

    live: ClassVar[dict[int, Child]] = {}  # every child still running, for the last-resort cleanup

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.argv, self.log, self.env = name, argv, log, env
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, *, stdin: int | None = None) -> None:
        argv = [SETPRIV, "--pdeathsig", "KILL", "--", *self.argv] if SETPRIV else self.argv
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if stdin is not None else out,
                stderr=out,
                env=self.env,
                cwd=ROOT,
                start_new_session=True,  # Ctrl-C reaches the harness only; it stops us
            )
        Child.live[self.proc.pid] = self

    async def stop(self, sig: int = signal.SIGTERM, wait: float = STOP_WAIT) -> None:
        """Send `sig` and wait for the exit; SIGKILL whatever is left after `wait`."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), wait)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        Child.live.pop(proc.pid, None)

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text("utf-8", "replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    @classmethod
    def kill_all_now(cls) -> None:
        for pid in list(cls.live):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            cls.live.pop(pid, None)


class Vendor:
    """A fake vendor process, and the harness's handle on its log and lookup switch."""

    def __init__(self, kind: str, tmp: Path, env: dict[str, str]) -> None:
        latency = str(VENDOR_LATENCY[kind])
        argv = [PY, str(ROOT / "bench" / "fake_vendors.py"), kind, "--latency", latency]
        self.kind = kind
        self.child = Child(f"fake {kind}", argv, tmp / f"fake-{kind}.log", env)
        self.port = 0

    async def start(self) -> None:
        await self.child.start(stdin=asyncio.subprocess.PIPE)  # closed stdin ends it
        assert self.child.proc is not None
        assert self.child.proc.stdout is not None
        line = await asyncio.wait_for(self.child.proc.stdout.readline(), 30)
        if not line.startswith(b"listening "):
            raise SystemExit(f"fake {self.kind} did not start:\n{self.child.tail()}")
        self.port = int(line.split()[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def fail_lookups(self, http: aiohttp.ClientSession, fail: bool) -> None:
        async with http.post(self.url("/_harness/lookups"), json={"fail": fail}) as resp:
            resp.raise_for_status()

    async def received(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get(self.url("/_harness/received")) as resp:
            resp.raise_for_status()
            data: dict[str, Any] = await resp.json()
            return data


class Server:
    """One `dangol serve` process with its own config file (port)."""

    def __init__(self, index: int, config: Path, port: int, tmp: Path, env: dict[str, str]):
        argv = [PY, "-m", "bot", "serve", "--config", str(config)]
        self.name = f"dangol#{index + 1}"
        self.port = port
        self.child = Child(self.name, argv, tmp / f"dangol-{index + 1}.log", env)

    async def start(self, http: aiohttp.ClientSession, deadline: float) -> None:
        await self.child.start()
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            assert self.child.proc is not None
            if self.child.proc.returncode is not None:
                raise SystemExit(f"{self.name} exited at start:\n{self.child.tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise SystemExit(f"{self.name} did not answer /healthz in time:\n{self.child.tail()}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
