"""Schemathesis hooks (SCHEMATHESIS_HOOKS=schemathesis_hooks, loaded by test/schemathesis.sh).

Before each request, asks the fixture service (test/schemathesis-fixtures.ts) for the state the
operation needs and the real ids, tokens or credentials to put into it, so fuzzing reaches past
the 404s and refusals random data would meet. Requests run as the fuzzing admin unless the fixture
names an account of its own; the service keeps the admin's token fresh. Webhook bodies are signed here, over the exact bytes sent.
"""
import base64
import hashlib
import hmac
import json
import os
import time

import requests
import schemathesis

FIXTURES_URL = os.environ["SCHEMATHESIS_FIXTURES_URL"]
WEBHOOK_SECRET = os.environ["PAYMENT_WEBHOOK_SECRET"].encode()
# A 1x1 PNG: uploads are checked by their bytes.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
JSON_TYPES = (dict, list, str, int, float, bool, type(None))


@schemathesis.hook
def before_call(ctx, case, kwargs):
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    body = case.body if isinstance(case.body, JSON_TYPES) else None
    answer = requests.post(
        f"{FIXTURES_URL}/before",
        json={"operation": operation, "pathParameters": case.path_parameters or {}, "query": case.query or {}, "body": body},
        timeout=60,
    )
    answer.raise_for_status()
    patch = answer.json()
    # The fixture service answers the fuzzing admin's current token (or an account's own).
    case.headers = {**(case.headers or {}), **patch.get("headers", {})}
    if patch.get("pathParameters"):
        case.path_parameters = {**(case.path_parameters or {}), **patch["pathParameters"]}
    if patch.get("query"):
        case.query = {**(case.query or {}), **patch["query"]}
    if "replaceBody" in patch:
        case.body = patch["replaceBody"]
    elif patch.get("body"):
        case.body = {**(case.body if isinstance(case.body, dict) else {}), **patch["body"]}
    if operation == "POST /uploads" and isinstance(case.body, dict):
        case.body = {**case.body, "file": PNG}
    if operation == "POST /payments/webhooks/{provider}" and isinstance(case.body, dict):
        # requests serialises json= bodies with json.dumps' defaults; sign those bytes.
        timestamp = int(time.time())
        digest = hmac.new(WEBHOOK_SECRET, f"{timestamp}.".encode() + json.dumps(case.body).encode(), hashlib.sha256).hexdigest()
        case.headers["x-shop-signature"] = f"t={timestamp},v1={digest}"
