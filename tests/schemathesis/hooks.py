"""Schemathesis hooks for tests/schemathesis.test.mjs (loaded through SCHEMATHESIS_HOOKS).

Two things a schema cannot say, supplied as the API's own clients would supply them:
- `format: cursor` (the lists' `cursor` parameter) is opaque: only a `next_cursor` the API
  issued is valid, so valid ones are generated the way the API encodes them
  (phone_agent_core::pagination::Cursor: base64url, unpadded, of `<created_at>:<id>`).
- an `agent_id` in a request body must name an agent of the caller's tenant (else 422
  `unknown_agent`): any string the generator picks becomes the agent the test created
  (PHONE_AGENT_AGENT_ID), the way tests/openapi.test.mjs sends the document's examples; a
  `tenant_id` (POST /api/v1/numbers) must name a tenant: it becomes that agent's, ten_default.
"""

import base64
import os

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format(
    "cursor",
    st.builds(
        lambda at, id_: base64.urlsafe_b64encode(f"{at}:{id_}".encode()).decode().rstrip("="),
        st.integers(min_value=0, max_value=2**53),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=40),
    ),
)

AGENT_ID = os.environ["PHONE_AGENT_AGENT_ID"]


@schemathesis.hook
def before_call(context, case, **kwargs):
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("agent_id"), str) and body["agent_id"]:
        body["agent_id"] = AGENT_ID
    if isinstance(body, dict) and isinstance(body.get("tenant_id"), str):
        body["tenant_id"] = "ten_default"
