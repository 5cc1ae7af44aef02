"""A stand-in for the Kubernetes API on 127.0.0.1: the custom-objects endpoints that
components/common/kube.py uses (create, get, list by labels, merge-patch, delete), answering as
the API server does (201, 200, 404, 409, 403 Status objects). Tests drive the objects' status
(`script_status`), add what an operator would make (`put`) and refuse verbs (`forbid`) to reach
Ready, Failed, never-ready, 403 and 409.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator

from tests import servers

PATH = re.compile(r"^/apis/([^/]+)/([^/]+)/namespaces/([^/]+)/([^/]+)(?:/([^/?]+))?$")


def status_body(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
            "reason": reason, "code": code}  # fmt: skip


def merge(target: dict, patch: dict) -> dict:
    """RFC 7386 JSON merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value
    return target


class KubeApi:
    def __init__(self):
        self.objects: dict[tuple[str, str, str], dict] = {}  # (plural, namespace, name) -> obj
        self.requests: list[tuple[str, str, dict | None]] = []
        self.forbidden: set[str] = set()
        self._statuses: dict[tuple[str, str], list[dict]] = {}
        self._lock = threading.Lock()
        # What an operator does to an object of a plural at each GET of it (tests/kserve_fake.py)
        self.controllers: dict[str, Callable[[dict], None]] = {}
        # A validating webhook per plural: (old or None, new) -> "" to admit, else why not
        self.admission: dict[str, Callable[[dict | None, dict], str]] = {}
        # The OpenAPI v3 documents the API server publishes, by path (/openapi/v3/apis/<g>/<v>)
        self.documents: dict[str, dict] = {}

    def forbid(self, *verbs: str) -> None:
        self.forbidden |= set(verbs)

    def put(self, plural: str, obj: dict) -> None:
        """Store an object as an operator would have made it (a Katib Trial)."""
        with self._lock:
            self.objects[(plural, obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj

    def script_status(self, plural: str, name: str, *statuses: dict) -> None:
        """Each GET of the object takes the next status; the last one stays."""
        self._statuses[(plural, name)] = list(statuses)

    def _admit(self, plural: str, old: dict | None, new: dict) -> tuple[int, dict] | None:
        """None when the plural's webhook (if any) admits `new`; else the API server's 403."""
        why = self.admission[plural](old, new) if plural in self.admission else ""
        if not why:
            return None
        message = f'admission webhook "{plural}.validator" denied the request: {why}'
        return 403, status_body(403, "Forbidden", message)

    def handle(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        with self._lock:
            self.requests.append((method, path, body))
            if path.startswith("/openapi/"):
                document = self.documents.get(path.split("?")[0])
                if document is None:
                    return 404, status_body(404, "NotFound", f"no route {path}")
                return 200, document
            match = PATH.match(path.split("?")[0])
            if not match:
                return 404, status_body(404, "NotFound", f"no route {path}")
            group, version, namespace, plural, name = match.groups()
            verb = {"POST": "create", "GET": "get", "PATCH": "patch", "DELETE": "delete"}[method]
            if method == "GET" and name is None:
                verb = "list"
            if verb in self.forbidden:
                return 403, status_body(
                    403, "Forbidden",
                    f'{plural}.{group} is forbidden: User "system:serviceaccount:{namespace}:'
                    f'pipeline-runner" cannot {verb} resource "{plural}"',
                )  # fmt: skip
            if method == "POST":
                key = (plural, namespace, body["metadata"]["name"])
                if key in self.objects:
                    return 409, status_body(409, "AlreadyExists", f"{key[2]} already exists")
                obj = {**body, "metadata": {**body["metadata"], "namespace": namespace,
                                            "uid": f"uid-{len(self.objects)}"}}  # fmt: skip
                obj["metadata"]["generation"] = 1
                if denied := self._admit(plural, None, obj):
                    return denied
                self.objects[key] = obj
                return 201, obj
            if verb == "list":
                return 200, self._list(plural, namespace, path)
            key = (plural, namespace, name)
            if key not in self.objects:
                return 404, status_body(404, "NotFound", f'{plural} "{name}" not found')
            if method == "GET":
                script = self._statuses.get((plural, name))
                if script:
                    self.objects[key]["status"] = script.pop(0) if len(script) > 1 else script[0]
                if plural in self.controllers:
                    self.controllers[plural](self.objects[key])
                return 200, self.objects[key]
            if method == "PATCH":
                old = self.objects[key]
                new = merge(json.loads(json.dumps(old)), body or {})
                if denied := self._admit(plural, old, new):
                    return denied
                if new.get("spec") != old.get("spec"):  # the API server counts spec changes
                    new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
                self.objects[key] = new
                return 200, new
            del self.objects[key]
            return 200, status_body(200, "", "deleted") | {"status": "Success"}

    def _list(self, plural: str, namespace: str, path: str) -> dict:
        """A list answer: the objects of `plural` in `namespace` whose labels match the
        equality selector (`labelSelector=a=b,c=d`), as the API server gives them."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        selector = query.get("labelSelector", [""])[0]
        wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
        items = [
            obj
            for (p, ns, _), obj in self.objects.items()
            if p == plural and ns == namespace
            and wanted.items() <= ((obj.get("metadata") or {}).get("labels") or {}).items()
        ]  # fmt: skip
        return {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}


@contextlib.contextmanager
def kube_api() -> Iterator[tuple[KubeApi, str]]:
    """(the stand-in, its URL)."""
    api = KubeApi()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            pass

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = api.handle(self.command, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

    with servers.serve(Handler) as url:
        yield api, url.rstrip("/")


def client_for(url: str):
    from kubernetes import client

    configuration = client.Configuration(host=url)
    return client.ApiClient(configuration)


class Clock:
    """time.monotonic and time.sleep for components.common.kube: a sleep moves the clock."""

    def __init__(self):
        self.now, self.sleeps = 1000.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
