"""Structured logs that never show a whole phone number or a secret in a URL path."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from core.config import LoggingConfig
from providers.masking import mask_in_text

# Attributes every LogRecord has; anything else was passed with `extra=` and is structured data.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

# URL paths whose last segment is a credential (bot/app.py's routes), as the access log,
# a Referer header or an error message may carry them: the SOLAPI report webhook's token
# (whoever has it can post delivery reports) and a photo's capability link `/p/<name>`
# (whoever has it sees the customer's photo).
_SECRET_IN_PATH = re.compile(r"(/hooks/solapi/[^/\s?#\"']+/|/p/)[^/\s?#\"']+")
# An API or calendar token (`core.api_tokens`), wherever it turns up: the calendar feed's
# URL carries one in its path.
_API_TOKEN = re.compile(r"dgl_[A-Za-z0-9_-]+")
# What an owner typed into the 고객 tab's search: a customer's name or number, URL-encoded
# ("%2B82+10+…"), which the phone masker cannot read.
_CUSTOMER_SEARCH = re.compile(r"(/console/customers\?(?:[^\s?#\"']*&)?q=)[^&\s#\"']+")


def redact(text: str) -> str:
    """`text` with phone numbers, secret path segments and API tokens masked."""
    if "dgl_" in text:
        text = _API_TOKEN.sub("dgl_********", text)
    if "/" in text:
        text = _SECRET_IN_PATH.sub(r"\1********", text)
        text = _CUSTOMER_SEARCH.sub(r"\1********", text)
    return mask_in_text(text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):  # the access log's request_header / response_header
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


class Redact(logging.Filter):
    """Masks phone numbers and secret path segments in the message and in structured
    extras, whatever logger wrote them (aiohttp's access log included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                record.__dict__[key] = _redact_value(value)
        return True


class ShortAccessLogger(AbstractAccessLogger):
    """One short line per request — "POST /simulator/api/say 200 38ms" — for `dangol demo`,
    whose terminal also shows the owner's notices: aiohttp's own line, with its headers as
    extras, runs to several hundred characters. The query string is left out."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %dms", request.method, request.path, response.status, round(time * 1000)
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line (written here rather than pulled in: it is twenty lines)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        }
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return redact(line) if record.exc_info else line


def setup(cfg: LoggingConfig) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if cfg.format == "json" else TextFormatter())
    handler.addFilter(Redact())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.level)
    # aiohttp's access log line is one per request: useful, but keep it at the configured level
    logging.getLogger("aiohttp.access").setLevel(max(logging.INFO, root.level))
