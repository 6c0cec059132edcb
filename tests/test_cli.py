"""The `dangol` command as an installer meets it: one-line errors, init, demo."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from bot import config as config_mod
from bot.cli import EXAMPLE, demo_settings, main
from bot.db import Database
from bot.models import Shop, User
from providers.console import ConsoleProvider

DANGOL = [sys.executable, "-m", "bot"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_config_accepts_the_example(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DANGOL_DEMO_SKILL_SECRET", "x")
    code, out, _ = run(capsys, "check-config", "--config", str(EXAMPLE))
    assert code == 0
    assert "OK — 1 shop(s): demo" in out


def test_check_config_warns_while_no_real_channel_notifies_the_owner(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DANGOL_DEMO_SKILL_SECRET", "x")
    monkeypatch.setenv("DANGOL_TWILIO_AUTH_TOKEN", "t")
    code, out, _ = run(capsys, "check-config", "--config", str(EXAMPLE))
    assert code == 0
    assert "warning: shop demo: owner notices go only to the log" in out

    real = tmp_path / "config.toml"
    text = EXAMPLE.read_text("utf-8").replace('notify_via = ["console"]', 'notify_via = ["twilio"]')
    text += (
        '\n[providers.twilio]\naccount_sid = "AC1"\nauth_token_env = "DANGOL_TWILIO_AUTH_TOKEN"\n'
        'from_number = "+14155550199"\n'
    )
    real.write_text(text, "utf-8")
    code, out, _ = run(capsys, "check-config", "--config", str(real))
    assert code == 0
    assert "warning" not in out


def test_only_the_demo_prints_message_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANGOL_DEMO_SKILL_SECRET", "x")
    settings = config_mod.load(EXAMPLE)
    assert ConsoleProvider(settings.providers["console"]).options["show_text"] is False
    demo = demo_settings(settings, 9000)
    assert ConsoleProvider(demo.providers["console"]).options["show_text"] is True
    assert demo.server.port == 9000


def test_bad_config_is_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text(
        EXAMPLE.read_text("utf-8").replace('mon = "09:00-18:00"', 'mon = "9 to 6"'), "utf-8"
    )
    os.environ.setdefault("DANGOL_DEMO_SKILL_SECRET", "x")
    code, _, err = run(capsys, "check-config", "--config", str(bad))
    assert code == 2
    assert err.count("\n") == 1
    assert "shops[0].hours.mon" in err
    assert "Traceback" not in err


def test_missing_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "serve", "--config", str(tmp_path / "nope.toml"))
    assert code == 2
    assert err.strip() == f"dangol: config error: {tmp_path / 'nope.toml'}: file not found"


def test_init_writes_config_migrates_and_creates_the_owner_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DANGOL_DEMO_SKILL_SECRET", raising=False)  # restored after the test
    target = tmp_path / "config.toml"
    code, out, _ = run(capsys, "init", "--config", str(target))
    assert code == 0
    assert "export DANGOL_DEMO_SKILL_SECRET=" in out
    assert "owner account for 한빛설비: username demo  password " in out
    written = target.read_text("utf-8")
    assert "simulator = false" in written
    # The owner's notices go nowhere yet: init says so, in its output and in the file.
    assert "warning: shop demo: owner notices go only to the log" in out
    assert '# NOT A NOTIFICATION YET: "console" only writes a line in dangol\'s log' in written

    code, out, _ = run(capsys, "init", "--config", str(target))
    assert code == 0
    assert "exists; leaving it" in out
    assert "password" not in out  # the account exists; no second password

    async def users() -> list[str]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'dangol.db'}")
        async with db.read() as conn:
            names = list((await conn.execute(sa.select(User.username))).scalars())
        await db.close()
        return names

    assert asyncio.run(users()) == ["demo"]


def test_owner_status_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DANGOL_DEMO_SKILL_SECRET", raising=False)
    target = tmp_path / "config.toml"
    run(capsys, "init", "--config", str(target))
    code, out, _ = run(
        capsys,
        "owner-status",
        "--config",
        str(target),
        "--shop",
        "demo",
        "on-site",
        "--until",
        "15:30",
    )
    assert code == 0, out
    code, _, err = run(capsys, "owner-status", "--config", str(target), "--shop", "demo", "on-site")
    assert (code, err.strip()) == (1, "dangol: on-site needs --until HH:MM")

    async def status() -> str:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'dangol.db'}")
        async with db.read() as conn:
            value = (await conn.execute(sa.select(Shop.owner_status))).scalar_one()
        await db.close()
        return str(value)

    assert asyncio.run(status()) == "on_site"


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    shutil.copy(EXAMPLE, cfg)
    env = dict(os.environ, DANGOL_DEMO_SKILL_SECRET="x")
    done = subprocess.run(
        [*DANGOL, "serve", "--config", str(cfg)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "run `dangol db upgrade" in done.stderr
    assert "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_demo_serves_the_simulator_conversation(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    shutil.copy(EXAMPLE, cfg)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DANGOL_DEMO_SKILL_SECRET"}
    proc = await asyncio.create_subprocess_exec(
        *DANGOL,
        "demo",
        "--config",
        str(cfg),
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "demo did not start"
                assert proc.returncode is None, "demo exited early"
                await asyncio.sleep(0.2)
            async with http.get(f"http://127.0.0.1:{port}/simulator") as r:
                assert r.status == 200
                assert "한빛설비" in await r.text()
            body = {
                "shop": "demo",
                "user": "demo-user-0001",
                "text": "에어컨에서 물이 새요",
                "extra": None,
            }
            started = time.monotonic()
            async with http.post(f"http://127.0.0.1:{port}/simulator/api/say", json=body) as r:
                answer = await r.json()
            assert time.monotonic() - started < 1.0
        assert answer["status"] == 200
        text = answer["response"]["template"]["outputs"][0]["simpleText"]["text"]
        assert "답변" in text
    finally:
        proc.terminate()
        raw, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    out = raw.decode()
    assert "owner account for 한빛설비: username demo  password" in out
    assert f"http://127.0.0.1:{port}/simulator" in out


def test_send_test_goes_through_the_outbox_to_the_vendor(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dangol send-test` — the installer's check of a provider's settings — against a fake
    Twilio on loopback (served from a thread: the command runs its own event loop)."""
    from aiohttp.test_utils import TestServer
    from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

    fake = FakeTwilio(hang_seconds=0.5)
    ready: list[str] = []
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()

    async def serve() -> None:
        server = TestServer(fake.app, host="127.0.0.1")
        await server.start_server()
        ready.append(str(server.make_url("")).rstrip("/"))
        await stop.wait()
        await server.close()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()))
    thread.start()
    try:
        while not ready:
            time.sleep(0.01)
        monkeypatch.delenv("DANGOL_DEMO_SKILL_SECRET", raising=False)
        monkeypatch.setenv("DANGOL_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        target = tmp_path / "config.toml"
        run(capsys, "init", "--config", str(target))
        with target.open("a", encoding="utf-8") as f:
            f.write(
                "\n[providers.twilio]\n"
                f'account_sid = "{ACCOUNT_SID}"\n'
                'auth_token_env = "DANGOL_TWILIO_AUTH_TOKEN"\n'
                'from_number = "+14155550199"\n'
                f'base_url = "{ready[0]}"\n'
            )
        args = ["send-test", "--config", str(target), "--shop", "demo", "--provider", "twilio"]
        code, out, err = run(capsys, *args, "--to", "+14155550123")
        assert code == 0, err
        assert out.startswith("sent: twilio → +141****0123 (vendor id SM")
        (sent,) = fake.sent_to("+14155550123")
        assert sent["body"] == "[dangol] 발송 시험 문자입니다."

        fake.opted_out.add("+14155550124")
        code, _, err = run(capsys, *args, "--to", "+14155550124")
        assert code == 1
        assert err.startswith("dangol: dead: twilio → +141****0124: ")
        assert "21610" in err
        code, _, err = run(capsys, *args[:-2], "--provider", "solapi")
        assert (code, err.strip()) == (
            1,
            "dangol: no provider 'solapi' configured (providers: console, twilio)",
        )
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()
