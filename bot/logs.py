"""Structured logs that never show a whole phone number."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from bot.config import LoggingConfig
from providers.masking import mask_in_text

# Attributes every LogRecord has; anything else was passed with `extra=` and is structured data.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class MaskPhones(logging.Filter):
    """Masks phone numbers in the message and in structured extras, whatever logger wrote them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_in_text(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        for key, value in record.__dict__.items():
            if key not in _STANDARD and isinstance(value, str):
                record.__dict__[key] = mask_in_text(value)
        return True


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
            entry["error"] = mask_in_text(self.formatException(record.exc_info))
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
        return mask_in_text(line) if record.exc_info else line


def setup(cfg: LoggingConfig) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if cfg.format == "json" else TextFormatter())
    handler.addFilter(MaskPhones())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.level)
    # aiohttp's access log line is one per request: useful, but keep it at the configured level
    logging.getLogger("aiohttp.access").setLevel(max(logging.INFO, root.level))
