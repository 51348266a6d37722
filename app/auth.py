"""Researcher password: from the environment or Streamlit secrets; constant-time check.

The launcher generates and prints one when neither is set, and hands it to the
Streamlit process through the environment, so a researcher page is never open.
"""
from __future__ import annotations

import hmac
import os
import secrets

ENV_VAR = "PROTOPROTO_PASSWORD"


def configured_password() -> str | None:
    value = os.environ.get(ENV_VAR)
    if value:
        return value
    try:
        import streamlit as st

        value = st.secrets.get("password")  # raises if no secrets file exists
    except Exception:  # noqa: BLE001 - no secrets file is the normal case
        value = None
    return str(value) if value else None


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def check(candidate: str, expected: str | None) -> bool:
    if not expected or not candidate:
        return False
    return hmac.compare_digest(candidate.encode(), expected.encode())
