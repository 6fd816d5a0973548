"""Schemathesis hooks for `.ci/fuzz`: every request is signed in as the fuzz user.

The token is fetched by logging in (and fetched again after a 401), so an operation that
ends the fuzz user's session (sign-out, revoking a session) does not blind the rest of the run.
"""

import os

import requests
import schemathesis

BASE = os.environ["SHEETGPT_FUZZ_BASE"]
EMAIL = os.environ["SHEETGPT_FUZZ_EMAIL"]
PASSWORD = os.environ["SHEETGPT_FUZZ_PASSWORD"]


@schemathesis.auth(refresh_interval=60)
class SignIn:
    def get(self, case, context):
        response = requests.post(
            f"{BASE}/api/v1/auth/login",
            json={"email": EMAIL, "password": PASSWORD},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
