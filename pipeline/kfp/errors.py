"""The KFP errors, in the project's one family (components/common/errors.py `StepError`).

Each carries the exit status the CLI documents: 2 a bad value or request, 3 the KFP API could
not be reached, refused the request or answered an error, 4 a wait that ran out. `is_transient`
says which failures are worth another try (a 5xx or 429 answer, a lost connection).
"""

from __future__ import annotations

from components.common.errors import StepError

EXIT_BAD_REQUEST, EXIT_API_ERROR, EXIT_WAIT_TIMEOUT = 2, 3, 4


class KfpApiError(StepError, RuntimeError):
    """The KFP API could not be reached, refused us, or answered an error: one line, exit 3."""

    exit_code = EXIT_API_ERROR


class NotKfpApi(KfpApiError):
    """The host answered, but not as the KFP API does (an HTML page, say)."""


class KfpSettingsError(StepError, ValueError):
    """A connection setting (the host URL, say) that cannot be used: exit 2, as a bad flag."""

    exit_code = EXIT_BAD_REQUEST


class RunNotRetryable(StepError, ValueError):
    """`runs retry` of a run that has not failed or been canceled: exit 2, nothing sent."""

    exit_code = EXIT_BAD_REQUEST


class RecurringRunNotFound(StepError, LookupError):
    """`schedule enable|disable|delete` of an ID or name no recurring run has: exit 2."""

    exit_code = EXIT_BAD_REQUEST


class ScheduleExists(StepError, ValueError):
    """`schedule create` of a name a recurring run already has: exit 2, nothing sent."""

    exit_code = EXIT_BAD_REQUEST


class WaitTimedOut(StepError, TimeoutError):
    """Following a run stopped at its --timeout; the run itself goes on: exit 4."""

    exit_code = EXIT_WAIT_TIMEOUT


def is_transient(exc: Exception) -> bool:
    """Worth retrying a read: a 5xx or 429 answer, or a lost connection."""
    import kfp_server_api  # its ApiException is what kfp.Client raises for an HTTP error
    import urllib3

    if isinstance(exc, kfp_server_api.ApiException):
        return exc.status == 429 or (exc.status or 0) >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError)
