"""Every `dangol …` command README.md shows works as shown on a fresh clone.

The commands are taken from the README itself — its fenced blocks and its inline code, in
the order they appear — and run in a temporary directory holding a copy of the example
config (on a free loopback port), in a shell with none of its secrets set, as a newcomer's
would be. `serve` and `demo` are started, asked for /healthz and stopped; `serve` gets the
secrets `init` printed, as the README says to keep them in the service's environment.
Placeholders are filled in the obvious way (`--config …` → config.toml, `<slug>` → demo),
and optional parts (`[--to 010-…]`) left out. A bare name (`dangol backup` in a sentence) is
a mention: it must be shown in full somewhere.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import kst

from bot import cli
from bot.cli import install
from core import config as config_mod
from core.clock import FrozenClock

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
# A fenced block's body, or one inline code span (which may wrap across lines).
CODE = re.compile(r"^```[^\n]*\n(.*?)^```|`([^`\n]+(?:\n[^`\n]+)*)`", re.S | re.M)
# `dangol` (or `.venv/bin/dangol`) starting a command, up to a shell operator or comment.
COMMAND = re.compile(r"(?:^|(?<=\s))(?:\.venv/bin/)?dangol\s+([^&;|#]*)")

# `make demo` runs `dangol demo` (after installing it): checked against the Makefile below.
MAKE_DEMO = re.compile(r"(?:^|(?<=\s))make demo\b")


def shown_commands(markdown: str) -> Iterator[str]:
    """The dangol commands in `markdown`'s code, placeholders filled, in order."""
    for match in CODE.finditer(markdown):
        fenced, inline = match.groups()
        pieces = fenced.splitlines() if fenced is not None else [inline]
        for piece in pieces:
            if fenced is not None:
                piece = re.sub(r"\s#\s.*", "", piece)  # a shell comment
            piece = MAKE_DEMO.sub("dangol demo", piece)
            for found in COMMAND.finditer(" ".join(piece.split())):
                words = re.sub(r"\s*\[[^\]]*\]", "", found[1])  # optional parts
                words = words.replace("--config …", "--config config.toml")
                yield " ".join(words.replace("<slug>", "demo").split())


def test_the_extraction_finds_commands_in_blocks_spans_and_wrapped_spans() -> None:
    markdown = (
        "```sh\nmake demo   # runs dangol on http://127.0.0.1:8080\n"
        ".venv/bin/dangol init --config config.toml    # writes it\n$EDITOR x\n```\n"
        "Then `dangol user add --config … --shop demo --username\nkim --role staff`, or "
        "`0 3 * * * cd /home/dangol/dangol && .venv/bin/dangol backup --config c.toml`, and "
        "`dangol send-test --config c.toml --shop <slug> [--to 010-…]`; `dangol serve`."
    )
    assert list(shown_commands(markdown)) == [
        "demo",
        "init --config config.toml",
        "user add --config config.toml --shop demo --username kim --role staff",
        "backup --config c.toml",
        "send-test --config c.toml --shop demo",
        "serve",
    ]


def test_make_demo_runs_dangol_demo() -> None:
    assert "\ndemo: $(STAMP)\n\t$(BIN)/dangol demo\n" in (REPO / "Makefile").read_text("utf-8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _parses(words: list[str]) -> bool:
    try:
        cli._parser().parse_args(words)
    except SystemExit:
        return False
    return True


def _start_and_stop(words: list[str], env: dict[str, str], port: int) -> str:
    """Run a server command until it answers /healthz on `port`, then stop it."""
    argv = [sys.executable, "-m", "bot", *words]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    started: list[str] = []
    try:
        # Start-up's last line is printed once the server listens: "dangol: serving on …",
        # or for the demo the bottom of its framed block (the second "+--" line).
        for line in proc.stdout:
            started.append(line)
            frame = sum(s.startswith("+--") for s in started)
            if line.startswith("dangol: serving on") or frame == 2:
                break
        else:
            raise AssertionError(f"{' '.join(words)} exited: {''.join(started)}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    return "".join(started) + out


def test_every_command_the_readme_shows_runs_as_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    example = tmp_path / "config.example.toml"
    text = REPO.joinpath("config.example.toml").read_text("utf-8")
    example.write_text(re.sub(r"(?m)^port = 8080$", f"port = {port}", text), "utf-8")
    monkeypatch.setattr(install, "EXAMPLE", example)  # what `init` copies
    monkeypatch.chdir(tmp_path)
    secret_names = list(dict.fromkeys(config_mod.iter_secret_env_names(example)))
    for name in secret_names:  # a fresh shell: none set (and whatever is set, undone after)
        monkeypatch.setenv(name, "-")
        monkeypatch.delenv(name)
    shell = {k: v for k, v in os.environ.items() if k not in secret_names}
    shell["PYTHONPATH"] = str(REPO)
    exported: dict[str, str] = {}
    clock = FrozenClock(kst(2026, 11, 23, 10, 0))  # a Monday morning

    commands = list(dict.fromkeys(shown_commands(README.read_text("utf-8"))))
    mentioned = [c for c in commands if not _parses(c.split()) and "--" not in c]
    ran: list[str] = []
    for command in commands:
        if command in mentioned:
            continue
        words = shlex.split(command)
        assert _parses(words), f"README shows `dangol {command}`, which does not parse"
        if words[0] == "demo":
            if "--config" not in words:  # its default is the repository's own file
                words += ["--config", "config.example.toml"]
            out = _start_and_stop(words, shell, port)
            assert "username   demo" in out
        elif words[0] == "serve":
            out = _start_and_stop(words, {**shell, **exported}, port)
            assert f"dangol: serving on http://127.0.0.1:{port}" in out
        else:
            code = cli.main(words, clock=clock)
            out, err = capsys.readouterr()
            assert code == 0, f"`dangol {command}` failed: {err}"
            if words[0] == "init":
                exported |= dict(re.findall(r"export (\w+)=(\S+)", out))
                for name in secret_names:  # init set them for itself, not for this shell
                    os.environ.pop(name, None)
        ran.append(words[0])
    for command in mentioned:
        assert command.split()[0] in ran, f"`dangol {command}` is mentioned, never shown in full"
    assert {"init", "check-config", "serve", "demo", "owner-status", "user", "backup"} <= set(ran)
    assert {"db", "send-test"} <= set(ran)
