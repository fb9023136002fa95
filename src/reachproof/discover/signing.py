"""Backend.AI's request signature (pure): what `ai.backend.common.auth.utils.generate_signature`
computes, with the standard library only.

The manager checks `Authorization: BackendAI signMethod=HMAC-SHA256, credential=AK:SIG`, where
SIG is an HMAC over the method, the request path with its query, the `Date` header, the host
(as the URL gives it, port included), the content type, the API version and the hash of an
empty body (the client hashes b"" whatever it sends; the manager does the same). The signing
key is the secret key HMAC'ed with the UTC date (YYYYMMDD), then with the host.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

HASH = "sha256"


def signed_headers(
    *,
    method: str,
    rel_url: str,
    host: str,
    content_type: str,
    api_version: str,
    date: datetime,
    access_key: str,
    secret_key: str,
) -> dict[str, str]:
    """The headers that make one request acceptable to the manager (Date included: the
    signature covers it, so both must come from the same `date`, an aware UTC datetime)."""
    stamp = date.isoformat()
    body_hash = hashlib.new(HASH, b"").hexdigest()
    to_sign = "\n".join(
        (
            method.upper(),
            rel_url,
            stamp,
            f"host:{host}",
            f"content-type:{content_type.lower()}",
            f"x-backendai-version:{api_version}",
            body_hash,
        )
    ).encode()
    key = hmac.new(secret_key.encode(), date.strftime("%Y%m%d").encode(), HASH).digest()
    key = hmac.new(key, host.encode(), HASH).digest()
    signature = hmac.new(key, to_sign, HASH).hexdigest()
    return {
        "Authorization": f"BackendAI signMethod=HMAC-{HASH.upper()}, "
        f"credential={access_key}:{signature}",
        "Date": stamp,
        "Content-Type": content_type,
        "X-BackendAI-Version": api_version,
    }
