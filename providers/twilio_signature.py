"""Our own `X-Twilio-Signature` validator (PROTOCOLS.md §5.2).

    signature = base64(HMAC-SHA1(auth_token, url + name1 + value1 + name2 + value2 …))

with the POST parameters sorted by name and, for a name that repeats, its unique values
sorted. The URL is the full URL exactly as Twilio called it (scheme, host, port if any,
path, query string). Because Twilio's own signing is inconsistent about default ports,
`is_valid` also tries the URL with the default port added (when it has none) or removed
(when it carries exactly the default one: 443 for https, 80 for http). A non-default port
is never stripped: Twilio called that port, so it is part of what was signed.

JSON-body webhooks carry `bodySHA256=<hex sha256(body)>` in the query string; they are
signed over the URL alone. `is_valid_json_body` checks both.

Written for dangol and cross-checked in tests against `twilio.request_validator` — the
product itself does not depend on the `twilio` package.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, urlsplit, urlunsplit

SIGNATURE_HEADER = "X-Twilio-Signature"
_DEFAULT_PORTS = {"https": 443, "http": 80}

Params = Mapping[str, str | list[str]] | Iterable[tuple[str, str]]


def _pairs(params: Params | None) -> dict[str, set[str]]:
    """name -> unique values, from a mapping (str or list values) or (name, value) pairs."""
    grouped: dict[str, set[str]] = {}
    if params is None:
        return grouped
    items: Iterable[tuple[str, str | list[str]]]
    if isinstance(params, Mapping):
        getall = getattr(params, "getall", None)  # a multidict keeps repeated names
        if callable(getall):
            items = [(k, list(getall(k))) for k in set(params.keys())]
        else:
            items = params.items()
    else:
        items = params
    for name, value in items:
        values = [value] if isinstance(value, str) else list(value)
        grouped.setdefault(name, set()).update(values)
    return grouped


def signing_string(url: str, params: Params | None = None) -> str:
    """The text that is signed: the URL, then every name+value, sorted."""
    parts = [url]
    for name, values in sorted(_pairs(params).items()):
        parts.extend(name + value for value in sorted(values))
    return "".join(parts)


def expected_signature(auth_token: str, url: str, params: Params | None = None) -> str:
    digest = hmac.new(
        auth_token.encode("utf-8"), signing_string(url, params).encode("utf-8"), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> list[str]:
    """The URL as given, plus the same URL with the default port added or removed."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    variants = [url]
    if default is None or parts.hostname is None:
        return variants
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: sign only what we were given
        return variants
    host_part = parts.netloc.rsplit("@", 1)
    userinfo = host_part[0] + "@" if len(host_part) == 2 else ""
    hostport = host_part[-1]
    if port is None:
        other = f"{userinfo}{hostport}:{default}"
    elif port == default:
        other = userinfo + hostport[: hostport.rfind(":")]
    else:
        return variants
    variants.append(urlunsplit(parts._replace(netloc=other)))
    return variants


def is_valid(auth_token: str, url: str, params: Params | None, signature: str | None) -> bool:
    """Does `signature` (the X-Twilio-Signature header) match this request? Constant-time."""
    if not signature or not auth_token:
        return False
    given = signature.strip().encode("utf-8")
    ok = False
    for candidate in url_variants(url):  # no early exit: the same work for any input
        expected = expected_signature(auth_token, candidate, params).encode("ascii")
        ok |= hmac.compare_digest(expected, given)
    return ok


def body_sha256(body: bytes | str) -> str:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return hashlib.sha256(data).hexdigest()


def is_valid_json_body(auth_token: str, url: str, body: bytes | str, signature: str | None) -> bool:
    """A JSON-body webhook: `bodySHA256` in the URL must hash the body; the URL is signed."""
    hashes = parse_qs(urlsplit(url).query).get("bodySHA256", [])
    if len(hashes) != 1:
        return False
    body_ok = hmac.compare_digest(hashes[0].lower().encode(), body_sha256(body).encode())
    return is_valid(auth_token, url, None, signature) and body_ok
