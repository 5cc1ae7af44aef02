"""Response headers that keep the page and the API to what they are.

The page is one self-contained file: one inline <style>, one inline <script>, images from
data: URIs (the 28x28 the model saw, the file uploaded) and its own icon, and fetch() to its
own API. Its Content-Security-Policy
allows exactly that: the inline script and style by their SHA-256 (computed here from the
file, so an edit of page.html cannot drift from its policy), no other script, style, font,
frame, form target or plug-in. Every other response (JSON) gets the strictest policy. Framing
is allowed from the same origin only (Kubeflow's dashboard shows apps in a same-origin
iframe), and no response sends a referrer or may be sniffed as another type.
"""

from __future__ import annotations

import base64
import hashlib
import re

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def _hashes(html: str, tag: str) -> str:
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    if not bodies:
        raise ValueError(f"page.html has no inline <{tag}>")
    digests = (base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() for b in bodies)
    return " ".join(f"'sha256-{d}'" for d in digests)


class PageSecurity:
    """The page's HTML and the headers it is served with."""

    def __init__(self, html: str):
        self.html = html
        policy = (
            "default-src 'none'; "
            f"script-src {_hashes(html, 'script')}; "
            f"style-src {_hashes(html, 'style')}; "
            "img-src 'self' data:; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
        )
        self.headers = {"Content-Security-Policy": policy, "X-Frame-Options": "SAMEORIGIN"}


class SecurityHeaders:
    """ASGI middleware: COMMON on every HTTP response, API_POLICY where none is set."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = dict(COMMON)
                if b"content-security-policy" not in present:
                    extra["Content-Security-Policy"] = API_POLICY
                for name, value in extra.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
