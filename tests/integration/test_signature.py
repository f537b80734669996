"""The signature scheme: `verify_signature` and the receiver example in docs/architecture.md agree with
what Siyu sends, and refuse a changed body, another secret or an old timestamp."""

from __future__ import annotations

import re
import time
from pathlib import Path

from siyu.integration import service

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _doc_verify():
    section = DOC.read_text(encoding="utf-8").split("## Firm integration", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - our own documentation's example
    return namespace["verify"]


def test_the_documented_receiver_and_verify_signature_accept_only_the_real_request():
    verify = _doc_verify()
    secret, body, now = "whsec_test", b'{"event":"customer.added","id":"1"}', int(time.time())
    headers = {"X-Siyu-Timestamp": str(now), "X-Siyu-Signature": service.sign(secret, timestamp=now, body=body)}
    assert verify(secret, headers, body)
    assert service.verify_signature(secret, timestamp=now, body=body, signature=headers["X-Siyu-Signature"])
    assert not verify("whsec_other", headers, body)
    assert not verify(secret, headers, body.replace(b"added", b"lost"))
    old = {"X-Siyu-Timestamp": str(now - 3600),
           "X-Siyu-Signature": service.sign(secret, timestamp=now - 3600, body=body)}
    assert not verify(secret, old, body)
    assert not service.verify_signature(secret, timestamp=now - 3600, body=body, signature=old["X-Siyu-Signature"])
    assert not service.verify_signature(secret, timestamp="soon", body=body, signature=headers["X-Siyu-Signature"])
