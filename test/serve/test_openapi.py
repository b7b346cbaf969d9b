"""GET /openapi.json: a valid OpenAPI 3.1 document of exactly the app's routes, and a bounded,
seeded schemathesis run of a real server (tiny synthetic model) against it."""

import json
import logging

import httpx
import jsonschema
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from alloy.serve.api.openapi import document
from alloy.serve.config import ServeConfig
from alloy.serve.gguf.testing import write_synthetic_model
from alloy.serve.server import ServerThread, create_app

MAX_EXAMPLES = 25  # per operation and generation mode, fuzzing phase
SEED = 20250601
# A fuzzed request may ask for up to 2**30 tokens or 16 choices (the documented limits); the run
# lowers valid values to these caps, so every case stays a few milliseconds of generation.
# field -> (cap, the documented maximum: larger values are invalid and stay as generated)
CAPS = {"max_tokens": (4, 1 << 30), "max_completion_tokens": (4, 1 << 30), "n": (2, 16),
        "num_predict": (4, None)}
OVERLOADED = {503, 529}  # the deliberate "queue full" answers (OpenAI/Ollama, Anthropic)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = write_synthetic_model(tmp_path_factory.mktemp("openapi") / "tiny.gguf", "llama")
    config = ServeConfig(model=model.path, port=0, ctx=96, default_max_tokens=4, max_queue=64)
    with ServerThread(config) as s:
        yield s


@pytest.fixture(scope="module")
def doc(server):
    return document(server.served)


# -- the document ----------------------------------------------------------------------------


def _meta_validator():
    """OpenAPI 3.1's own schema: openapi-spec-validator's if installed, else the copy
    schemathesis ships (the OAS 3.1 "schema" document, 2022-10-07)."""
    try:
        from openapi_spec_validator import validate

        return validate
    except ImportError:
        from schemathesis.specs.openapi.definitions import OPENAPI_31

        return jsonschema.Draft202012Validator(OPENAPI_31).validate


def _schemas(node, where="#"):
    """Every Schema Object of the document (components, parameters, media types, headers)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                yield f"{where}/{key}", value
            elif key == "schemas" and where == "#/components":
                for name, schema in value.items():
                    yield f"{where}/schemas/{name}", schema
                continue
            yield from _schemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schemas(value, f"{where}/{i}")


def test_document_is_valid_openapi_31(doc):
    assert doc["openapi"].startswith("3.1.")
    _meta_validator()(doc)
    found = list(_schemas(doc))
    assert len(found) > 40
    for where, schema in found:  # each one a valid JSON Schema 2020-12 (the OAS 3.1 dialect)
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise AssertionError(f"{where}: {exc.message}") from None
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref
    schemathesis.openapi.from_dict(doc)  # loads (and validates) it the way the run below does


def _refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_route_is_documented_and_nothing_else(server, doc):
    app = create_app(server.served, server.config)
    registered = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()}
    documented = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert registered - documented == set(), "routes missing from /openapi.json"
    assert documented - registered == set(), "documented routes the app does not have"
    op_ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(op_ids) == len(set(op_ids))


def test_served_document_and_model_facts(server, doc):
    r = httpx.get(server.url + "/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == json.loads(json.dumps(doc))
    served = server.served
    chat = doc["components"]["schemas"]["OpenAIChatRequest"]
    assert served.name in chat["properties"]["model"]["enum"]
    assert chat["additionalProperties"] is False and chat["required"] == ["model", "messages"]
    tok = doc["components"]["schemas"]["OpenAIEmbeddingRequest"]["properties"]["input"]
    assert f'"maximum": {served.model.config.n_vocab - 1}' in json.dumps(tok)
    anth = doc["components"]["schemas"]["AnthropicMessagesRequest"]
    assert set(anth["required"]) == {"model", "messages", "max_tokens"}
    for status in ("400", "404", "529"):
        assert status in doc["paths"]["/v1/messages"]["post"]["responses"]
    assert "503" in doc["paths"]["/api/chat"]["post"]["responses"]
    assert doc["paths"]["/health"]["get"]["security"] == []


def test_documented_security_matches_the_api_key_check(server, doc):
    """With an API key, the operations documented without security answer without it and all
    others answer 401 (in their dialect's shape)."""
    config = ServeConfig(model=server.served.name, port=0, ctx=96, api_key="sekrit")
    with ServerThread(config) as keyed:
        for path, item in doc["paths"].items():
            for method, op in item.items():
                url = keyed.url + path.replace("{model}", server.served.name)
                r = httpx.request(method.upper(), url, json={} if method == "post" else None)
                if op.get("security") == []:
                    assert r.status_code != 401, (method, path)
                else:
                    assert r.status_code == 401, (method, path, r.status_code)
                    assert "401" in op["responses"], (method, path)


# -- the fuzz run ----------------------------------------------------------------------------


class _Errors(logging.Handler):
    """Collects what the server logs at ERROR (every unexpected exception of a handler);
    ``emit`` runs under the handler's own lock, which readers take too."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(scope="module")
def server_errors():
    handler = _Errors()
    logger = logging.getLogger("alloy.serve")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
def api_schema(server, server_errors):
    config = SchemathesisConfig.from_dict({
        "seed": SEED,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large",
                                  "large_base_example"],
        # no shrinking: a failure is reported as found (shrinking against a server is slow)
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True,
                       "database": "none", "no-shrink": True},
        "phases": {"coverage": {"enabled": True}, "stateful": {"enabled": False}},
        # the statuses that are not server errors: all but 5xx, and the deliberate overload
        "checks": {"not_a_server_error": {"expected-statuses": [
            "1xx", "2xx", "3xx", "4xx", *map(str, sorted(OVERLOADED))]}},
        "request-timeout": 60,
    })
    return schemathesis.openapi.from_url(server.url + "/openapi.json", config=config)


def _cap(value):
    """Lower any valid generation length or choice count above CAPS (invalid ones stay as
    generated: they are what the negative cases test)."""
    if isinstance(value, dict):
        for key, v in value.items():
            cap, top = CAPS.get(key, (None, None))
            if cap is not None and isinstance(v, int) and not isinstance(v, bool) and \
                    cap < v and (top is None or v <= top):
                value[key] = cap
            else:
                _cap(v)
    elif isinstance(value, list):
        for v in value:
            _cap(v)


def _stream_errors(response) -> list:
    """Error frames inside a 200 stream (a failure after the reply started)."""
    media = response.headers.get("content-type", [""])
    media = (media[0] if isinstance(media, list) else media).split(";")[0]
    text = response.content.decode("utf-8", "replace")
    found = []
    if media == "text/event-stream":
        for block in text.split("\n\n"):
            lines = block.splitlines()
            data = "".join(line[6:] for line in lines if line.startswith("data: "))
            if "event: error" in lines or data.startswith('{"error"'):
                found.append(data)
    elif media == "application/x-ndjson":
        found = [line for line in text.splitlines() if line.startswith('{"error"')]
    return found


def _shown(case) -> str:
    try:
        return json.dumps(case.body)[:2000]
    except TypeError:  # no body
        return ""


@pytest.fixture
def node_id_shim(request):
    """schemathesis' lazy loader renames the running test through ``node._nodeid`` (gone in
    pytest 9): give it one to read."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.usefixtures("node_id_shim")
@schema.parametrize()
def test_fuzz_against_the_document(case, server_errors):
    _cap(case.body)
    if isinstance(case.query, dict):
        _cap(case.query)
    response = case.call(timeout=60)
    assert response.status_code < 500 or response.status_code in OVERLOADED, (
        f"{case.method} {case.path} answered {response.status_code}: {response.text[:500]}\n"
        f"body: {_shown(case)}")
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             content_type_conformance,
                                             response_schema_conformance])
    if response.status_code == 200:
        assert _stream_errors(response) == [], _shown(case)
    with server_errors.lock:
        logged = [r.getMessage() + ": " + repr(r.exc_info[1]) if r.exc_info else r.getMessage()
                  for r in server_errors.records]
        server_errors.records.clear()
    assert logged == [], f"the server logged errors for {case.method} {case.path} {_shown(case)}"
