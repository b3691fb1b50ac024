"""Logging set-up: one JSON object per line (or plain text), secrets masked at the formatter.

Masking in the formatter, not at call sites, means no log line can forget it.
"""

import json
import logging
import sys
import time
from typing import Any

from prober.contracts.secrets import Redactor

# Attributes every LogRecord has; anything else came from `extra=` and is a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        # Masked value by value (after turning objects into text), then serialised: a mask
        # applied to the line could land inside a number or break its quoting.
        plain = json.loads(json.dumps(data, default=str))
        return json.dumps(self.redact.value(plain))


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        return self.redact(super().format(record) + (f" {fields}" if fields else ""))


def setup_logging(level: str, fmt: str, redact: Redactor) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def set_redactor(redact: Redactor) -> None:
    """Mask a reloaded scenario file's secrets too, in the handlers `setup_logging` made."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter | TextFormatter):
            handler.formatter.redact = redact
