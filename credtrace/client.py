"""A Python client of the credtrace API, for departments and platforms.

Signing happens here, with the caller's own key, never on the server::

    client = CredtraceClient("http://127.0.0.1:8000", api_key)
    record = client.new_record(Kind.BLACKLIST, subject="91370100321654988D", issuer=member_id(uscc),
                               legal_basis="E-Commerce Law art. 38", valid_days=365)
    accepted = client.submit([client.sign(account, "CreditRecord", record)])
    client.record(accepted[0]["id"])

The EIP-712 domain comes from ``GET /v1/eip712`` (or is given, for offline signing from a deployment file).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from credtrace.errors import CredtraceError
from node_bridge import credit
from node_bridge.credit import Kind, Relation, Tier


class ApiError(CredtraceError):
    """The API answered with an error; ``status`` is the HTTP code and ``detail`` its JSON detail."""

    def __init__(self, status: int, detail: Any) -> None:
        message = detail.get("message", detail) if isinstance(detail, dict) else detail
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.detail = detail


def nonces(count: int = 1) -> Iterator[int]:
    """Fresh nonces for one organisation: millisecond time in the high bits, a counter in the low 8.

    The contract keeps eight nonces per storage word (``nonce >> 3``), so consecutive nonces signed together
    share words and cost less gas; two batches of one organisation signed in the same millisecond would collide
    (the second is refused with ``NonceUsed``).
    """
    base = int(time.time() * 1000) << 8
    return iter(range(base, base + count))


class CredtraceClient:
    """Talks to one credtrace API with one member's API key."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self._domain: credit.CreditDomain | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> CredtraceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)
        return response.json()

    # signing

    @property
    def domain(self) -> credit.CreditDomain:
        """The CreditRegistry's EIP-712 domain, as the API publishes it."""
        if self._domain is None:
            published = self._json(self.http.get("/v1/eip712"))["domain"]
            self._domain = credit.CreditDomain(published["chainId"], published["verifyingContract"])
        return self._domain

    def sign(self, account: LocalAccount, primary_type: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON body of one signed message (what ``submit`` and ``credtrace record submit`` take)."""
        normalised = credit.normalise(primary_type, credit.to_json(message))
        signature = self.domain.sign(account, primary_type, normalised)
        return {"type": primary_type, "message": credit.to_json(normalised), "signature": "0x" + signature.hex()}

    @staticmethod
    def new_record(
        kind: Kind,
        subject: str,
        issuer: bytes,
        legal_basis: str,
        *,
        tier: Tier = Tier.GENERAL,
        measures: int = 0,
        document_hash: bytes = credit.ZERO32,
        effective_at: int | None = None,
        public_days: float = 365,
        valid_days: float = 3 * 365,
        relation: Relation = Relation.NONE,
        refers_to: bytes = credit.ZERO32,
        nonce: int | None = None,
    ) -> dict[str, Any]:
        """A record message ready to sign; times default to now, publication to a year, validity to three."""
        start = int(time.time()) if effective_at is None else effective_at
        record = {
            "kind": int(kind), "subject": credit.subject_id(subject), "issuer": issuer, "legalBasis": legal_basis,
            "tier": int(tier), "measures": measures, "documentHash": document_hash, "effectiveAt": start,
            "publicUntil": start + int(public_days * 86400), "validUntil": start + int(valid_days * 86400),
            "relation": int(relation), "refersTo": refers_to, "nonce": next(nonces()) if nonce is None else nonce,
        }  # fmt: skip
        credit.check_record(record)
        return record

    # calls

    def submit(self, signed: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Submit signed records, revocations or repairs (batches of up to 1,000); returns what was accepted."""
        accepted: list[dict[str, Any]] = []
        for start in range(0, len(signed), 1000):
            chunk = list(signed[start : start + 1000])
            answer = self._json(self.http.post("/v1/records", json={"records": chunk}))
            accepted.extend(answer["accepted"])
        return accepted

    def enforce(self, signed: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Submit a platform's signed enforcement receipts."""
        return list(self._json(self.http.post("/v1/enforcements", json={"records": list(signed)}))["accepted"])

    def record(self, record_id: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/v1/records/{record_id}")))

    def status(self, subject: str, at: str | None = None) -> dict[str, Any]:
        params = {"at": at} if at else {}
        return dict(self._json(self.http.get(f"/v1/subjects/{subject}/status", params=params)))

    def statuses(self, subjects: Sequence[str]) -> dict[str, Any]:
        return dict(self._json(self.http.post("/v1/subjects/status:batch", json={"subjects": list(subjects)})))
