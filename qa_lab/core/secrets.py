"""Secrets stay out of every file a run writes: the one place that decides what a secret is and masks it.

A secret is the value of a config key named `token` or `api_key`, or ending in `_token`, `_key`, `password`
or `secret` (`hub_token`, `PGPASSWORD`, `client_secret`); the password of a URL
(`postgresql://user:pw@host/db`); and the values of the environment's credentials (WANDB_API_KEY, HF_TOKEN,
HUGGING_FACE_HUB_TOKEN). Only the copies that are written (saved configs, W&B config, logs, reports) are
masked; the code that needs a value reads the live config or environment.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

MASK = "***"
SECRET_NAMES = ("token", "api_key")
SECRET_SUFFIXES = ("_token", "_key", "password", "secret")
ENV_SECRETS = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# an environment value shorter than this could be any word or number: masking it would garble text
MIN_ENV_SECRET_LENGTH = 8
_masking_logs = False  # mask_log_records() installs its record factory once per process

# scheme://user:password@host -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@", re.IGNORECASE)
# a Hydra override `key=value` (as in overrides.yaml, hydra.overrides.task and hydra.job.override_dirname)
_OVERRIDE = re.compile(r"""((?:^|(?<=[\s,]))[+~]{0,2}[\w.-]+=)('[^']*'|"[^"]*"|[^,\s]*)""")


def is_secret_key(name: str) -> bool:
    """Whether a config key (plain, dotted, or an override's `+a.b_token`) holds a secret."""
    last = name.lstrip("+~").rsplit(".", 1)[-1].lower()
    return last in SECRET_NAMES or last.endswith(SECRET_SUFFIXES)


def mask_text(text: str) -> str:
    """`text` with URL passwords, values of secret overrides and the environment's credentials masked."""
    text = _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)
    text = _OVERRIDE.sub(lambda match: match[1] + MASK if is_secret_key(match[1][:-1]) else match[0], text)
    for name in ENV_SECRETS:
        value = os.environ.get(name, "")
        if len(value) >= MIN_ENV_SECRET_LENGTH:
            text = text.replace(value, MASK)
    return text


def redact(value: Any) -> Any:
    """A copy of a plain config container (dicts, lists, scalars) that is safe to write."""
    if isinstance(value, dict):
        return {key: MASK if is_secret_key(str(key)) and item is not None else redact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_log_records() -> None:
    """From now on every log record of this process is made with its secrets masked, its traceback included:
    whatever handlers Hydra configures later (per job, per sweep) write masked lines."""
    global _masking_logs
    if _masking_logs:
        return
    make_record = logging.getLogRecordFactory()

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the message: logging reports that itself
            return record
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(masked_record)
    _masking_logs = True
