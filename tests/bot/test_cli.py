"""The `dangol` command as an installer meets it: one-line errors, init, demo."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from conftest import KST, kst

from bot.cli import EXAMPLE, load_settings, main
from bot.demo import demo_frame, demo_settings
from core import config as config_mod
from core.api_tokens import verify
from core.availability import OwnerState, assess
from core.clock import FrozenClock
from core.db import Database
from core.models import Shop, User
from providers.base import Outgoing, Recipient
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


async def test_the_demo_prints_owner_notices_short_under_the_shop_name(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """They read `[console] path=console purpose=owner_notification to=owner 010-****-3333:
    [단골] 새 문의 · …`; the owner's phone would show the shop's name."""
    monkeypatch.setenv("DANGOL_DEMO_SKILL_SECRET", "x")
    console = ConsoleProvider(demo_settings(config_mod.load(EXAMPLE)).providers["console"])
    caplog.set_level(logging.INFO, logger="dangol.console")
    owner = Recipient(phone="+821022223333", owner=True)
    customer = Recipient(phone="+821055556666")
    await console.send(
        [
            Outgoing("1", owner, '[단골] 새 문의 · 고객 #1: "에어컨에서\n물이 새요"', purpose="x"),
            Outgoing("2", owner, "[단골] 답변 목표(30분)가 곧 지나요 · 고객 #1 26분째 기다리는 중"),
            Outgoing("3", customer, "내일 10시에 방문할게요", purpose="reply"),
        ]
    )
    assert [r.getMessage() for r in caplog.records] == [
        '사장님께 ▸ [한빛설비] 새 문의 · 고객 #1: "에어컨에서 ⏎ 물이 새요"',
        "사장님께 ▸ [한빛설비] 답변 목표(30분)가 곧 지나요 · 고객 #1 26분째 기다리는 중",
        "010-****-6666에게 ▸ 내일 10시에 방문할게요",
    ]


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


def test_check_config_names_every_mistake_at_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text(
        EXAMPLE.read_text("utf-8")
        .replace("port = 8080", "port = 0")
        .replace('mon = "09:00-18:00"', 'mon = "9 to 6"')
        .replace('notify_via = ["console"]', 'notify_via = ["pigeon"]'),
        "utf-8",
    )
    monkeypatch.setenv("DANGOL_DEMO_SKILL_SECRET", "x")
    code, out, err = run(capsys, "check-config", "--config", str(bad))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"dangol: config error: {bad}: server.port: must be at least 1, got 0",
        f"dangol: config error: {bad}: shops[0].hours.mon: expected "
        '"HH:MM-HH:MM" or "closed", got \'9 to 6\'',
        f"dangol: config error: {bad}: shops[0].owner.notify_via: unknown provider 'pigeon'",
    ]


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
    assert proc.stdout is not None
    lines: list[str] = []

    async def read_until(wanted: Callable[[str], bool]) -> None:
        """Read lines until one is `wanted`."""
        async with asyncio.timeout(60):
            while True:
                raw = await proc.stdout.readline()  # type: ignore[union-attr]
                assert raw, "demo exited early:\n" + "\n".join(lines)
                lines.append(raw.decode().rstrip("\n"))
                if wanted(lines[-1]):
                    return

    try:
        # Start-up ends with the framed block, printed once the server listens.
        await read_until(lambda line: line.startswith("+--"))
        top = len(lines) - 1
        await read_until(lambda line: line.startswith("+--"))
        frame = lines[top:]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200
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
        await read_until(lambda line: "dangol.console: 사장님께" in line)  # the owner's notice
    finally:
        proc.terminate()
        rest, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    lines += rest.decode().splitlines()
    # After the frame: the demo's own bookings going out (their confirmations, on the
    # console provider), then the requests made here.
    after_frame = next(line for line in lines[top + len(frame) :] if "aiohttp.access:" in line)
    assert after_frame.endswith("aiohttp.access: GET /healthz 200 " + after_frame.split()[-1])
    sent = [line for line in lines if "dangol.console:" in line and "에게 ▸" in line]
    assert any("예약이 확정됐어요" in line for line in sent), lines
    shown = "\n".join(frame)
    assert f"simulator  http://127.0.0.1:{port}/simulator" in shown
    assert f"console    http://127.0.0.1:{port}/console/" in shown
    assert "username   demo" in shown
    assert re.search(r"password   [a-z0-9]{4}(-[a-z0-9]{4}){3}", shown), shown
    # One short line per request, and the owner's notice headed with the shop's name.
    access = [line for line in lines if "aiohttp.access:" in line]
    assert all(len(line) < 120 for line in access), access
    assert any(re.search(r"aiohttp.access: POST /simulator/api/say 200 \d+ms$", a) for a in access)
    notice = next(line for line in lines if "dangol.console: 사장님께" in line)
    # The demo's regulars (bot/demo_jobs.py) come first: the simulator's customer is the 4th.
    assert notice.split("dangol.console: ")[1] == (
        '사장님께 ▸ [한빛설비] 새 문의 · 고객 #4: "에어컨에서 물이 새요"'
    )


def test_a_restarted_demo_gives_the_command_that_sets_a_new_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password is shown once, at the first start; a restart cannot show it (only its
    hash is kept) and says instead how to set a new one — a command that works as shown."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLE, tmp_path / "config.example.toml")
    monkeypatch.setenv("DANGOL_DEMO_SKILL_SECRET", "x")
    settings = demo_settings(config_mod.load("config.example.toml"))
    frame = demo_frame(settings, {"demo": None}, "config.example.toml")
    lines = frame.strip().splitlines()
    assert lines[0] == lines[-1]
    assert set(lines[0]) == {"+", "-"}
    assert all(line.startswith("|  ") and line.endswith("  |") for line in lines[1:-1])
    assert all(len(line) == len(lines[0]) for line in lines)
    assert "password   set at the first start; for a new one:" in frame
    command = "dangol user reset-password --config config.example.toml --username demo"
    assert command in frame

    monkeypatch.delenv("DANGOL_DEMO_SKILL_SECRET")  # a fresh shell, as after `make demo`
    code, _, err = run(capsys, "init", "--config", "config.example.toml")
    monkeypatch.delenv("DANGOL_DEMO_SKILL_SECRET")  # init set it for itself
    code, out, err = run(capsys, *command.split()[1:])
    assert code == 0, err
    assert out.startswith("new password for demo: ")


def test_send_test_goes_through_the_outbox_to_the_vendor(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dangol send-test` — the installer's check of a provider's settings — against a fake
    Twilio on loopback (served from a thread: the command runs its own event loop)."""
    from aiohttp.test_utils import TestServer
    from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

    fake = FakeTwilio(hang_seconds=0.5)
    ready: list[str] = []
    listening, stop = threading.Event(), asyncio.Event()
    loop = asyncio.new_event_loop()

    async def serve() -> None:
        server = TestServer(fake.app, host="127.0.0.1")
        await server.start_server()
        ready.append(str(server.make_url("")).rstrip("/"))
        listening.set()
        await stop.wait()
        await server.close()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()))
    thread.start()
    try:
        listening.wait()
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


# --------------------------------------------------------------------------- secrets

SECRETS_OF_THE_EXAMPLE = ("DANGOL_DEMO_SKILL_SECRET",)


@pytest.fixture
def fresh_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh clone's shell: the example config in the current directory, and none of the
    secrets it names in the environment (any a command sets are removed afterwards)."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLE, tmp_path / "config.example.toml")
    for name in SECRETS_OF_THE_EXAMPLE:
        monkeypatch.setenv(name, "recorded-so-that-it-is-restored")
        monkeypatch.delenv(name)
    return tmp_path / "config.example.toml"


def first_start(capsys: pytest.CaptureFixture[str]) -> None:
    """What `dangol demo`'s first start leaves: the database and the owner account."""
    code, _, err = run(capsys, "init", "--config", "config.example.toml")
    assert code == 0, err
    for name in SECRETS_OF_THE_EXAMPLE:
        del os.environ[name]  # init set them for itself; this shell has none


@pytest.mark.parametrize(
    "command",
    [
        "check-config --config config.example.toml",
        "db upgrade --config config.example.toml",
        "owner-status --config config.example.toml --shop demo on-site --until 15:30",
        "user add --config config.example.toml --shop demo --username kim --role staff",
        "user reset-password --config config.example.toml --username demo",
        "backup --config config.example.toml --to backups",
        "send-test --config config.example.toml --shop demo",
    ],
)
def test_commands_that_use_no_secret_run_without_it(
    command: str, fresh_shell: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """They failed with "environment variable DANGOL_DEMO_SKILL_SECRET is not set" although
    `dangol demo` runs the same file; only `serve` uses the Kakao skill secret."""
    first_start(capsys)
    code, _, err = run(capsys, *command.split())
    assert code == 0, err
    assert err == ""
    assert "DANGOL_DEMO_SKILL_SECRET" not in os.environ  # nothing left behind


def test_check_config_says_which_secret_serve_will_need(
    fresh_shell: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "check-config", "--config", "config.example.toml")
    assert code == 0
    assert (
        "warning: DANGOL_DEMO_SKILL_SECRET is not set here; `dangol serve` needs it "
        "(`dangol init` prints new ones; keep them in the environment dangol runs in)"
    ) in out


def test_serve_names_the_secret_it_needs_and_how_to_set_it(
    fresh_shell: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "serve", "--config", "config.example.toml")
    assert (code, err.strip()) == (
        1,
        "dangol: serve needs the secret in DANGOL_DEMO_SKILL_SECRET, not set here: "
        "`export DANGOL_DEMO_SKILL_SECRET=…` first (`dangol init` prints new ones; keep them "
        "in the environment dangol runs in)",
    )


def test_send_test_through_a_provider_names_its_unset_secret(
    fresh_shell: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DANGOL_TWILIO_AUTH_TOKEN", "t")
    monkeypatch.delenv("DANGOL_TWILIO_AUTH_TOKEN")
    with fresh_shell.open("a", encoding="utf-8") as f:
        f.write(
            '\n[providers.twilio]\naccount_sid = "AC1"\nauth_token_env = "DANGOL_TWILIO_AUTH_TOKEN"\n'
            'from_number = "+14155550199"\n'
        )
    args = ["send-test", "--config", "config.example.toml", "--shop", "demo"]
    code, _, err = run(capsys, *args, "--provider", "twilio")
    assert code == 1
    assert err.startswith(
        "dangol: send-test through twilio needs the secret in DANGOL_TWILIO_AUTH_TOKEN, not set "
        "here: `export DANGOL_TWILIO_AUTH_TOKEN=…` first"
    )


# --------------------------------------------------------------------------- send-test, owner-status


def test_send_test_defaults_to_the_owners_notification_provider(
    fresh_shell: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It answered "no provider None configured" when the owner is notified by console."""
    first_start(capsys)
    code, out, err = run(capsys, "send-test", "--config", "config.example.toml", "--shop", "demo")
    assert code == 0, err
    assert out.splitlines() == [
        "send-test: through console, the provider that notifies 한빛설비's owner",
        "sent: console → 010-****-3333 (vendor id console-1)",
        "note: console texts nobody, it only writes a log line",
    ]


def _busy_until(db_path: Path) -> datetime:
    async def read() -> datetime:
        db = Database(f"sqlite+aiosqlite:///{db_path}")
        async with db.read() as conn:
            value = (await conn.execute(sa.select(Shop.owner_busy_until))).scalar_one()
        await db.close()
        return value.astimezone(KST)  # type: ignore[no-any-return]

    return asyncio.run(read())


@pytest.mark.parametrize(
    ("at", "said", "until"),
    [
        ((10, 0), "한빛설비: owner is now on-site until 15:30", kst(2026, 11, 23, 15, 30)),
        (
            (19, 15),
            "한빛설비: owner is now on-site until tomorrow (Tue 24 Nov) 15:30 — 15:30 had "
            "already passed today; customers are told so",
            kst(2026, 11, 24, 15, 30),
        ),
    ],
)
def test_owner_status_until_a_time_already_past_today_is_tomorrow(
    at: tuple[int, int],
    said: str,
    until: datetime,
    fresh_shell: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """At 19:15, `--until 15:30` was stored as today's 15:30 — already over, so customers
    were told the owner is free. It is the next 15:30, and the command says so."""
    first_start(capsys)
    clock = FrozenClock(kst(2026, 11, 23, *at))  # a Monday
    args = ["owner-status", "--config", "config.example.toml", "--shop", "demo", "on-site"]
    code, out, err = main_at(clock, capsys, *args, "--until", "15:30")
    assert code == 0, err
    assert out.strip() == said
    assert _busy_until(fresh_shell.parent / "var" / "dangol.db") == until

    # What a customer writing at 10:00 that day is told: the owner answers after 15:30.
    shop = load_settings("config.example.toml").shops[0]
    morning = until.replace(hour=10, minute=0)
    told = assess(
        shop, OwnerState("on_site", _busy_until(fresh_shell.parent / "var" / "dangol.db")), morning
    )
    assert (told.kind, told.reply_from) == ("owner_busy", until)

    code, _, err = main_at(clock, capsys, *args, "--until", "25:00")
    assert (code, err.strip()) == (
        1,
        "dangol: --until: expected a time HH:MM (00:00-23:59), got '25:00'",
    )


def main_at(
    clock: FrozenClock, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    code = main(list(args), clock=clock)
    out, err = capsys.readouterr()
    return code, out, err


def test_token_commands_show_the_secret_once_list_and_revoke(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DANGOL_DEMO_SKILL_SECRET", raising=False)
    target = tmp_path / "config.toml"
    run(capsys, "init", "--config", str(target))
    config = ["--config", str(target)]
    shape = re.compile(r"dgl_[A-Za-z0-9_-]{43}")

    code, out, _ = run(
        capsys, "token", "create", *config, "--shop", "demo", "--name", "예약 페이지"
    )
    assert code == 0, out
    api_secret = shape.findall(out)
    assert len(api_secret) == 1
    assert "api token 1 for " in out
    assert "Authorization: Bearer" in out
    assert "shown only this once" in out

    code, out, _ = run(
        capsys, "token", "create", *config, "--shop", "demo", "--name", "휴대폰", "--calendar"
    )
    assert code == 0, out
    public_url = load_settings(target).server.public_url.rstrip("/")
    (calendar_secret,) = set(shape.findall(out))
    assert f"subscribe your calendar to: {public_url}/calendar/{calendar_secret}.ics" in out

    code, out, _ = run(capsys, "token", "list", *config)
    assert code == 0
    assert api_secret[0] not in out
    assert calendar_secret not in out  # never again
    assert f"dgl_…{api_secret[0][-4:]}" in out
    assert out.count("active") == 2
    assert "예약 페이지" in out
    assert "휴대폰" in out

    code, out, _ = run(capsys, "token", "revoke", *config, "1")
    assert (code, out.strip()) == (0, "token 1 revoked: it stops working now")
    code, out, _ = run(capsys, "token", "revoke", *config, "1")
    assert (code, out.strip()) == (0, "token 1 was already revoked")
    code, out, _ = run(capsys, "token", "list", *config, "--shop", "demo")
    assert out.count("active") == 1
    assert "revoked 20" in out

    async def still_working() -> tuple[bool, bool]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'dangol.db'}")
        await db.start()
        try:
            now = datetime.now(KST)
            api = await verify(db, api_secret[0], "api", now)
            calendar = await verify(db, calendar_secret, "calendar", now)
        finally:
            await db.close()
        return api is not None, calendar is not None

    assert asyncio.run(still_working()) == (False, True)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["create", "--shop", "nowhere", "--name", "x"], "dangol: no shop 'nowhere'"),
        (["create", "--shop", "demo", "--name", "  "], "dangol: 토큰 이름을 적어 주세요"),
        (["create", "--shop", "demo", "--name", "x" * 61], "dangol: 토큰 이름은 60자까지"),
        (["revoke", "99"], "dangol: no token 99"),
        (["list", "--shop", "nowhere"], "dangol: no shop 'nowhere'"),
    ],
)
def test_token_command_mistakes_are_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    said: str,
) -> None:
    monkeypatch.delenv("DANGOL_DEMO_SKILL_SECRET", raising=False)
    target = tmp_path / "config.toml"
    run(capsys, "init", "--config", str(target))
    code, out, err = run(capsys, "token", args[0], "--config", str(target), *args[1:])
    assert code == 1
    assert err.startswith(said), err
    assert len(err.strip().splitlines()) == 1
    assert "dgl_" not in out
