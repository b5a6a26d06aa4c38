"""Schemathesis hooks for tests/schemathesis.test.mjs (loaded through SCHEMATHESIS_HOOKS).

What a schema cannot say, supplied as the API's own clients would supply it:
- `format: cursor` (the lists' `cursor` parameter) is opaque: only a `next_cursor` the API
  issued is valid, so valid ones are generated the way the API encodes them
  (phone_agent_core::pagination::Cursor: base64url, unpadded, of `<created_at>:<id>`).
- an `agent_id` in a request body must name an agent of the caller's tenant (else 422
  `unknown_agent`): a well-formed one becomes the agent the test created
  (PHONE_AGENT_AGENT_ID), the way tests/openapi.test.mjs sends the document's examples; a
  `tenant_id` (POST /api/v1/numbers) must name a tenant: it becomes that agent's, ten_default.
- an agent's `session.transfer_to` must pass the dialling rules (no premium, unknown-country,
  … numbers; the agent's allowed_countries, which a PATCH may leave stored): a well-formed E.164
  one becomes a US number when the body's countries allow it, else a blank one (no transfer).
- Flux's `stt.eager_eot_threshold` may not exceed `stt.eot_threshold` (a rule between two
  values, refused with 422 invalid_fields; a PATCH is checked merged with what is stored): a
  body giving one gets the other too (eot 0.9, eager 0.3, the extremes, so any stored value
  agrees), and two given the wrong way round are swapped.
- an agent's `analysis` needs at least one field or a success_criterion, and its field names are
  unique (rules across items): a body without either gets a criterion, and a repeated name gets
  its position appended.
- an endpoint's `url` is where the worker will deliver events: a well-formed one becomes the
  test's local receiver (PHONE_AGENT_SINK_URL), as nothing outside 127.0.0.1 can be reached.
- an agent's `http_tools`: a well-formed `url` becomes that receiver too (public names may not
  resolve, private ones are refused), and tools' names are made unique (two tools of one agent
  may not share a name, which a schema cannot say).
- an agent's `calendar` needs an IANA `time_zone` and forward, non-overlapping windows: given
  ones become Europe/Berlin, Monday 09:00-17:00. A well-formed `feed_url` is dropped: booking
  would fetch it, and nothing outside 127.0.0.1 can be reached (tests/calendar-feed.test.mjs
  serves real feeds).
Only values the schema accepts are replaced, so invalid ones still reach the worker as generated.
"""

import base64
import os
import re

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
WELL_FORMED_ID = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,128}")
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
SINK_URL = os.environ["PHONE_AGENT_SINK_URL"]
# The document's pattern for an endpoint url.
URL = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[^/@?#\s]+([/?#][^\s]*)?")
# Characters a URI may hold (RFC 3986): a string with others is no `format: uri`.
URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


@schemathesis.hook
def before_call(context, case, **kwargs):
    body = case.body
    if not isinstance(body, dict):
        return
    agent_id = body.get("agent_id")
    if isinstance(agent_id, str) and WELL_FORMED_ID.fullmatch(agent_id) and agent_id.strip():
        body["agent_id"] = AGENT_ID
    if isinstance(body.get("tenant_id"), str):
        body["tenant_id"] = "ten_default"
    session = body.get("session")
    if isinstance(session, dict) and isinstance(session.get("transfer_to"), str) and E164.fullmatch(session["transfer_to"]):
        countries = body.get("allowed_countries")
        if isinstance(countries, list):
            us_allowed = any(isinstance(c, str) and c.upper() == "US" for c in countries)
        else:
            us_allowed = case.method.upper() == "POST" and countries is None
        session["transfer_to"] = "+15558675310" if us_allowed else ""
    calendar = body.get("calendar")
    if isinstance(calendar, dict):
        # A zone must be an IANA name and windows must run forward without overlapping: rules
        # the schema cannot say; well-typed values become a valid calendar.
        if isinstance(calendar.get("time_zone"), str):
            calendar["time_zone"] = "Europe/Berlin"
        if isinstance(calendar.get("weekly"), dict):
            calendar["weekly"] = {"mon": [["09:00", "17:00"]]}
        if isinstance(calendar.get("feed_url"), str) and URL.fullmatch(calendar["feed_url"]):
            del calendar["feed_url"]
    stt = body.get("stt")
    if isinstance(stt, dict) and ("eot_threshold" in stt or "eager_eot_threshold" in stt):
        eot = stt.setdefault("eot_threshold", 0.9)
        eager = stt.setdefault("eager_eot_threshold", 0.3)
        numbers = (int, float)
        in_range = isinstance(eot, numbers) and isinstance(eager, numbers) \
            and 0.5 <= eot <= 0.9 and 0.3 <= eager <= 0.9
        if in_range and eager > eot:
            stt["eot_threshold"], stt["eager_eot_threshold"] = eager, eot
    tools = body.get("http_tools")
    if "/agents" in case.path and isinstance(tools, list):
        seen = set()
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                continue
            url = tool.get("url")
            if isinstance(url, str) and URL.fullmatch(url) and URI_CHARS.fullmatch(url):
                tool["url"] = SINK_URL
            name = tool.get("name")
            if not isinstance(name, str):
                continue
            if name in seen:
                tool["name"] = name = f"{name[:60]}_{i}"
            seen.add(name)
    analysis = body.get("analysis")
    if isinstance(analysis, dict):
        fields = analysis.get("fields")
        if not fields and not analysis.get("success_criterion"):
            analysis["success_criterion"] = "The caller's question was answered."
        if isinstance(fields, list):
            seen = set()
            for i, field in enumerate(fields):
                name = field.get("name") if isinstance(field, dict) else None
                if isinstance(name, str) and re.fullmatch(r"[a-z][a-z0-9_]*", name) and len(name) <= 64:
                    if name in seen or name in ("success", "success_reason"):
                        name = f"{name[:58]}_{i}"
                        field["name"] = name
                    seen.add(name)
    url = body.get("url")
    if "/endpoints" in case.path and isinstance(url, str) and URL.fullmatch(url) and URI_CHARS.fullmatch(url):
        body["url"] = SINK_URL
