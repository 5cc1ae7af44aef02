"""A Kubeflow Pipelines v2beta1 REST API on 127.0.0.1: enough of it for kfp.Client 2.17.

It keeps pipelines, versions, experiments, runs and recurring runs in memory, answers with the
fields kfp_server_api's models parse (snake_case JSON, as the real API server sends), and records
every request for assertions. Tests can make it fail (`fail(401)`, a login redirect, an HTML
page), require a bearer token, or move runs through their states (`script_run_states`).

    with KfpServer() as kfp:
        ...  # point the client at kfp.url
        body = kfp.last("POST", "/runs").body
"""

from __future__ import annotations

import email.parser
import email.policy
import http.server
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/apis/v2beta1"
CREATED_AT = "2025-01-31T02:00:00Z"
# KFP's error codes are gRPC's; the body has the same shape as grpc-gateway's.
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 500: 13, 503: 14}


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Any = None  # the parsed JSON body
    files: dict[str, bytes] = field(default_factory=dict)  # multipart file fields

    def arg(self, name: str) -> str | None:
        """The first value of query parameter `name`."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class _Canned:
    """An answer given instead of the real one, `times` times (None: until cleared)."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]
    times: int | None
    method: str
    path: str

    def matches(self, method: str, path: str) -> bool:
        return (not self.method or self.method == method) and self.path in path


def error_body(status: int, message: str) -> dict:
    return {"error": message, "code": _GRPC_CODES.get(status, 2), "message": message, "details": []}


class KfpServer:
    """The fake API; start with `with KfpServer() as kfp:`, address at `kfp.url`."""

    def __init__(self, multi_user: bool = False, token: str | None = None):
        self.multi_user, self.token = multi_user, token
        self.requests: list[Recorded] = []
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self._canned: list[_Canned] = []
        self._states: list[str] = []
        self._run_error = ""
        self._lock = threading.Lock()
        self._http: http.server.ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> KfpServer:
        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self._http.kfp = self  # type: ignore[attr-defined]
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._http.shutdown()
        self._http.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    # -- what tests tell it --------------------------------------------------------------------

    def fail(
        self,
        status: int,
        times: int | None = None,
        method: str = "",
        path: str = "",
        message: str = "",
    ) -> None:
        """Answer `status` with KFP's error body to the matching requests (`times`, or all)."""
        body = json.dumps(error_body(status, message or f"fake failure {status}")).encode()
        self.respond(status, body, "application/json", times=times, method=method, path=path)

    def respond(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/html",
        headers: dict[str, str] | None = None,
        times: int | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        """Answer anything (a redirect, an HTML page) to the matching requests."""
        with self._lock:
            self._canned.append(
                _Canned(status, body, content_type, headers or {}, times, method, path)
            )

    def clear_failures(self) -> None:
        with self._lock:
            self._canned.clear()

    def script_run_states(self, *states: str, error: str = "") -> None:
        """Each GET of a run moves it to the next state; the last one stays."""
        with self._lock:
            self._states, self._run_error = list(states), error

    def set_run_state(self, run_id: str, state: str) -> None:
        with self._lock:
            self.runs[run_id]["state"] = state

    # -- what tests read -----------------------------------------------------------------------

    def calls(self, method: str, path: str = "") -> list[Recorded]:
        """Recorded requests with this method whose path contains `path`."""
        return [r for r in self.requests if r.method == method and path in r.path]

    def last(self, method: str, path: str = "") -> Recorded:
        found = self.calls(method, path)
        assert found, f"no {method} request to a path containing {path!r}"
        return found[-1]

    # -- request handling ----------------------------------------------------------------------

    def handle(self, request: Recorded) -> tuple[int, bytes, str, dict[str, str]]:
        with self._lock:
            self.requests.append(request)
            canned = self._take_canned(request)
            if canned:
                return canned.status, canned.body, canned.content_type, canned.headers
            if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
                return _json(401, error_body(401, "Unauthenticated: bad or missing token"))
            for method, pattern, handler in _ROUTES:
                match = re.fullmatch(API + pattern, request.path)
                if match and method == request.method:
                    return _json(*handler(self, request, *match.groups()))
            return _json(404, error_body(404, f"no route for {request.method} {request.path}"))

    def _take_canned(self, request: Recorded) -> _Canned | None:
        for canned in self._canned:
            if canned.matches(request.method, request.path):
                if canned.times is not None:
                    canned.times -= 1
                    if canned.times <= 0:
                        self._canned.remove(canned)
                return canned
        return None

    def _healthz(self, request):
        return 200, {"multi_user": self.multi_user, "pipeline_store": "database"}

    def _upload_pipeline(self, request):
        name = request.arg("name") or request.arg("display_name") or "uploaded"
        namespace = request.arg("namespace") or ""
        if "uploadfile" not in request.files:
            return 400, error_body(400, "no uploadfile in the multipart body")
        if _filtered(self.pipelines.values(), "display_name", name, namespace, shared=False):
            return 409, error_body(409, f"AlreadyExistsError: pipeline {name} already exists")
        pipeline = {
            "pipeline_id": _new_id(),
            "display_name": name,
            "name": name,
            "description": request.arg("description") or "",
            "namespace": namespace,
            "created_at": CREATED_AT,
        }
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        self._add_version(pipeline["pipeline_id"], name, request)
        return 200, pipeline

    def _upload_version(self, request):
        pipeline_id, name = request.arg("pipelineid"), request.arg("name") or "version"
        if pipeline_id not in self.pipelines:
            return 404, error_body(404, f"ResourceNotFoundError: pipeline {pipeline_id}")
        if any(
            v["pipeline_id"] == pipeline_id and v["display_name"] == name
            for v in self.versions.values()
        ):
            return 409, error_body(409, f"AlreadyExistsError: version {name} already exists")
        return 200, self._add_version(pipeline_id, name, request)

    def _add_version(self, pipeline_id: str, name: str, request: Recorded) -> dict:
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": _new_id(),
            "display_name": name,
            "name": name,
            "description": request.arg("description") or "",
            "created_at": CREATED_AT,
        }
        self.versions[version["pipeline_version_id"]] = version
        return version

    def _list_pipelines(self, request):
        found = _filtered(
            self.pipelines.values(),
            None,
            None,
            request.arg("namespace"),
            shared=True,
            query=request.arg("filter"),
        )
        return 200, _page("pipelines", found)

    def _get_pipeline(self, request, pipeline_id):
        return _get(self.pipelines, pipeline_id, "pipeline")

    def _list_versions(self, request, pipeline_id):
        found = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
        if request.arg("sort_by") == "created_at desc":
            found.reverse()  # added in order, so the newest last
        return 200, _page("pipeline_versions", found)

    def _create_experiment(self, request):
        body = request.body or {}
        if self.multi_user and not body.get("namespace"):
            return 400, error_body(400, "In multi-user mode, experiment namespace can't be empty")
        experiment = {
            **body,
            "experiment_id": _new_id(),
            "created_at": CREATED_AT,
            "storage_state": "AVAILABLE",
        }
        self.experiments[experiment["experiment_id"]] = experiment
        return 200, experiment

    def _list_experiments(self, request):
        found = _filtered(
            self.experiments.values(),
            None,
            None,
            request.arg("namespace"),
            shared=False,
            query=request.arg("filter"),
        )
        return 200, _page("experiments", found)

    def _get_experiment(self, request, experiment_id):
        return _get(self.experiments, experiment_id, "experiment")

    def _create_run(self, request):
        body = request.body or {}
        if body.get("experiment_id") not in self.experiments:
            return 404, error_body(404, f"experiment {body.get('experiment_id')} not found")
        run = {
            **body,
            "run_id": _new_id(),
            "state": "PENDING",
            "created_at": CREATED_AT,
            "storage_state": "AVAILABLE",
        }
        self.runs[run["run_id"]] = run
        return 200, run

    def _get_run(self, request, run_id):
        run = self.runs.get(run_id)
        if run and self._states:
            run["state"] = self._states.pop(0) if len(self._states) > 1 else self._states[0]
            if run["state"] == "FAILED" and self._run_error:
                run["error"] = {"code": 2, "message": self._run_error, "details": []}
        return _get(self.runs, run_id, "run")

    def _list_runs(self, request):
        runs = list(self.runs.values())
        if request.arg("experiment_id"):
            runs = [r for r in runs if r.get("experiment_id") == request.arg("experiment_id")]
        runs = _filtered(runs, None, None, None, False, request.arg("filter"))
        if request.arg("sort_by") == "created_at desc":
            runs.reverse()  # created in order, so the newest last
        size = int(request.arg("page_size") or 10)
        return 200, _page("runs", runs[:size])

    def _terminate_run(self, request, run_id):
        if run_id not in self.runs:
            return 404, error_body(404, f"ResourceNotFoundError: run {run_id} not found")
        self.runs[run_id]["state"] = "CANCELING"
        return 200, {}

    def _retry_run(self, request, run_id):
        if run_id not in self.runs:
            return 404, error_body(404, f"ResourceNotFoundError: run {run_id} not found")
        self.runs[run_id]["state"] = "RUNNING"
        return 200, {}

    def _create_recurring_run(self, request):
        body = request.body or {}
        if body.get("experiment_id") not in self.experiments:
            return 404, error_body(404, f"experiment {body.get('experiment_id')} not found")
        mode = body.get("mode", "ENABLE")
        run = {
            **body,
            "recurring_run_id": _new_id(),
            "created_at": CREATED_AT,
            "updated_at": CREATED_AT,
            "status": "ENABLED" if mode == "ENABLE" else "DISABLED",
            "namespace": self.experiments[body["experiment_id"]].get("namespace", ""),
        }
        self.recurring_runs[run["recurring_run_id"]] = run
        return 200, run

    def _list_recurring_runs(self, request):
        found = _filtered(
            self.recurring_runs.values(),
            None,
            None,
            request.arg("namespace"),
            shared=False,
            query=request.arg("filter"),
        )
        # The one camelCase list field: the proto names it recurringRuns, and so does the model.
        return 200, _page("recurringRuns", list(reversed(found)))

    def _get_recurring_run(self, request, run_id):
        return _get(self.recurring_runs, run_id, "recurring run")

    def _switch_recurring_run(self, request, run_id, action):
        if run_id not in self.recurring_runs:
            return 404, error_body(404, f"ResourceNotFoundError: recurring run {run_id}")
        run = self.recurring_runs[run_id]
        run["mode"], run["status"] = (
            ("ENABLE", "ENABLED") if action == "enable" else ("DISABLE", "DISABLED")
        )
        return 200, {}

    def _delete_recurring_run(self, request, run_id):
        if self.recurring_runs.pop(run_id, None) is None:
            return 404, error_body(404, f"ResourceNotFoundError: recurring run {run_id}")
        return 200, {}


_ID = "([^/:]+)"
_ROUTES = [
    ("GET", "/healthz", KfpServer._healthz),
    ("POST", "/pipelines/upload", KfpServer._upload_pipeline),
    ("POST", "/pipelines/upload_version", KfpServer._upload_version),
    ("GET", "/pipelines", KfpServer._list_pipelines),
    ("GET", f"/pipelines/{_ID}", KfpServer._get_pipeline),
    ("GET", f"/pipelines/{_ID}/versions", KfpServer._list_versions),
    ("POST", "/experiments", KfpServer._create_experiment),
    ("GET", "/experiments", KfpServer._list_experiments),
    ("GET", f"/experiments/{_ID}", KfpServer._get_experiment),
    ("POST", "/runs", KfpServer._create_run),
    ("GET", "/runs", KfpServer._list_runs),
    ("GET", f"/runs/{_ID}", KfpServer._get_run),
    ("POST", f"/runs/{_ID}:terminate", KfpServer._terminate_run),
    ("POST", f"/runs/{_ID}:retry", KfpServer._retry_run),
    ("POST", "/recurringruns", KfpServer._create_recurring_run),
    ("GET", "/recurringruns", KfpServer._list_recurring_runs),
    ("GET", f"/recurringruns/{_ID}", KfpServer._get_recurring_run),
    ("POST", f"/recurringruns/{_ID}:(enable|disable)", KfpServer._switch_recurring_run),
    ("DELETE", f"/recurringruns/{_ID}", KfpServer._delete_recurring_run),
]


def _new_id() -> str:
    return str(uuid.uuid4())


def _json(status: int, payload: Any) -> tuple[int, bytes, str, dict[str, str]]:
    return status, json.dumps(payload).encode(), "application/json", {}


def _get(table: dict, key: str, kind: str):
    if key not in table:
        return 404, error_body(404, f"ResourceNotFoundError: {kind} {key} not found")
    return 200, table[key]


def _page(name: str, items: list) -> dict:
    """A list answer; like grpc-gateway, an empty list is left out."""
    return {name: items, "total_size": len(items)} if items else {"total_size": 0}


def _filtered(
    items,
    key: str | None,
    value: str | None,
    namespace: str | None,
    shared: bool,
    query: str | None = None,
) -> list[dict]:
    """Items in `namespace` (plus shared ones if `shared`) that match every predicate."""
    predicates = json.loads(query)["predicates"] if query else []
    if key is not None:
        predicates.append({"operation": "EQUALS", "key": key, "string_value": value})
    found = []
    for item in items:
        item_ns = item.get("namespace") or ""
        if namespace and item_ns != namespace and not (shared and not item_ns):
            continue
        if all(_matches(item, p) for p in predicates):
            found.append(item)
    return found


def _matches(item: dict, predicate: dict) -> bool:
    """EQUALS and IS_SUBSTRING on string fields; the operation as a name or a number."""
    wanted = predicate.get("string_value", predicate.get("stringValue"))
    actual = str(item.get(predicate["key"], ""))
    operation = predicate.get("operation")
    if operation in ("IS_SUBSTRING", 9):
        return wanted in actual
    if operation in ("EQUALS", 1):
        return actual == wanted
    raise AssertionError(f"the fake KFP server does not do filter operation {operation!r}")


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - keep test output readable
        pass

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_DELETE(self):
        self._serve("DELETE")

    def do_PATCH(self):
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        request = Recorded(
            method,
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in self.headers.items()},
        )
        self._read_body(request)
        status, body, content_type, headers = self.server.kfp.handle(request)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self, request: Recorded) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.headers.get("Content-Type", "")
        if kind.startswith("multipart/form-data"):
            request.files = _multipart_files(kind, raw)
        elif raw:
            request.body = json.loads(raw)


def _multipart_files(content_type: str, raw: bytes) -> dict[str, bytes]:
    """The file fields of a multipart/form-data body, by field name."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    files = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            files[name] = part.get_payload(decode=True)
    return files
