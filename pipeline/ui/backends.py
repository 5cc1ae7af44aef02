"""What answers the web page: an exported model loaded here, or TF Serving's REST API.

Both take the 28x28 uint8 image that components/reading/images.py made (the same preprocessing
as batch-predict) and return the 10 class probabilities and the model version that answered.
"""

from __future__ import annotations

import http.client
import json
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from components.common import spec
from components.common.errors import StepError
from components.common.records import MAX_RECORD, RecordError, parse_record


class BackendError(StepError, RuntimeError):
    """The model cannot answer: the message says why (never a stack trace)."""


class Embedded:
    """A model version loaded into this process: one folder or s3:// version, or the newest
    complete version under a store's models prefix."""

    def __init__(self, model_uri: str, s3_endpoint: str = ""):
        from components.batch_predict.model import BatchPredictError, load_model_version
        from pipeline.model_versions import ModelNotFound, resolve_version

        try:
            self.model_uri = resolve_version(model_uri, s3_endpoint)
        except ModelNotFound as e:
            raise BackendError(str(e)) from None
        self.version = self.model_uri.rstrip("/").rpartition("/")[2]
        self._work = tempfile.TemporaryDirectory(prefix="mnist-ui-model-")
        try:
            self._classify = load_model_version(self.model_uri, s3_endpoint, Path(self._work.name))
        except BatchPredictError as e:
            raise BackendError(str(e)) from None
        self._lock = threading.Lock()  # one prediction at a time through the loaded model
        self.label = f"version {self.version} at {self.model_uri}"

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        with self._lock:
            probabilities, _ = self._classify(pixels[None])
        return np.asarray(probabilities[0], dtype=np.float64)


class ServingRest:
    """TF Serving's REST predict API (KServe's v1 protocol speaks it too), with timeouts."""

    def __init__(self, url: str, model: str = "mnist", timeout: float = 5.0):
        from components.common.redact import refuse_credentials

        try:  # a URL is printed in messages and labels: it must not carry a password
            refuse_credentials("--serving-url", url)
        except ValueError as e:
            raise BackendError(str(e)) from None
        self.url, self.model, self.timeout = url.rstrip("/"), model, timeout
        self.version = "?"
        self.label = f"TF Serving at {self.url}"

    def _call(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/v1/models/{self.model}{path}",
            data=data,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return parse_record(answer.read(MAX_RECORD + 1), f"TF Serving at {self.url}")
        except urllib.error.HTTPError as e:
            detail = e.read(300).decode(errors="replace").strip()
            raise BackendError(f"TF Serving at {self.url} answered {e.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise BackendError(
                f"TF Serving at {self.url} cannot be reached ({reason}; timeout {self.timeout} s)"
            ) from None
        except http.client.HTTPException as e:  # something answered, but not in HTTP
            raise BackendError(
                f"TF Serving at {self.url} answered something that is not HTTP "
                f"({type(e).__name__}): is it TF Serving's REST port (8501)?"
            ) from None
        except RecordError as e:
            raise BackendError(f"{e} (not a TF Serving answer)") from None

    def status(self) -> str:
        """The version TF Serving reports as AVAILABLE (the one answering)."""
        versions = self._call("").get("model_version_status")
        available = [
            spec.version_number(str(v.get("version")))
            for v in (versions if isinstance(versions, list) else [])
            if isinstance(v, dict) and v.get("state") == "AVAILABLE"
        ]
        available = [v for v in available if v is not None]
        self.version = str(max(available)) if available else "?"
        self.label = f"version {self.version} via TF Serving at {self.url}"
        return self.version

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        if self.version == "?":  # started with --no-check, or TF Serving had no model yet
            self.status()
        answer = self._call(
            ":predict",
            {"signature_name": spec.SIGNATURE, "instances": [pixels.astype(int).tolist()]},
        )
        try:
            row = answer["predictions"][0]
            probabilities = row[spec.OUTPUT_PROBABILITIES] if isinstance(row, dict) else row
            result = np.asarray(probabilities, dtype=np.float64)
        except (KeyError, IndexError, TypeError, ValueError):
            raise BackendError(f"TF Serving at {self.url} answered without probabilities") from None
        if result.shape != (10,):
            raise BackendError(f"TF Serving at {self.url} answered {result.shape}, not 10 classes")
        return result
