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
from typing import TYPE_CHECKING, Any

import httpx
from eth_account.signers.local import LocalAccount

from credtrace.errors import CredtraceError
from node_bridge import credit
from node_bridge.credit import Kind, Relation, Tier
from node_bridge.eip712 import Domain

if TYPE_CHECKING:
    from node_bridge.signed import SignedRegistry


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

    def _submit_signed(self, path: str, field: str, signed: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """POST signed messages as ``{field: [...]}``, in order and in batches of up to 1,000 (what every write
        route takes at once); returns every accepted item. Each workflow's submit method names its route."""
        accepted: list[dict[str, Any]] = []
        for start in range(0, len(signed), 1000):
            body = {field: list(signed[start : start + 1000])}
            accepted.extend(self._json(self.http.post(path, json=body))["accepted"])
        return accepted

    def _published_domain(self, path: str, registry: SignedRegistry) -> Domain:
        """The EIP-712 domain of a registry of member-signed messages, as the API publishes it at ``path``."""
        published = self._json(self.http.get(path))["domain"]
        return registry.domain(published["chainId"], published["verifyingContract"])

    def submit(self, signed: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Submit signed records, revocations or repairs (batches of up to 1,000); returns what was accepted."""
        return self._submit_signed("/v1/records", "records", signed)

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

    # online payment management (C11)

    def payment_domain(self) -> Domain:
        """The PaymentRegistry's EIP-712 domain, as the API publishes it."""
        from node_bridge.payments import REGISTRY

        return self._published_domain("/v1/payments/eip712", REGISTRY)

    def submit_payments(self, kind: str, signed: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Submit signed ``bindings``, ``unbindings`` or ``signals`` (batches of up to 1,000); returns the accepted."""
        return self._submit_signed(f"/v1/payments/{kind}", "messages", signed)

    def payment_alerts(self, **params: Any) -> list[dict[str, Any]]:
        """``GET /v1/payments/alerts`` with its filters (kind, subject, account, from_block, limit)."""
        query = {k: v for k, v in params.items() if v is not None}
        return list(self._json(self.http.get("/v1/payments/alerts", params=query)))

    def payment_merchant(self, subject: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/v1/payments/merchants/{subject}")))

    # logistics credit (C6)

    def logistics_domain(self) -> Domain:
        """The LogisticsRegistry's EIP-712 domain, as the API publishes it."""
        from node_bridge.logistics import REGISTRY

        return self._published_domain("/v1/logistics/eip712", REGISTRY)

    def submit_logistics(self, signed: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Submit signed logistics messages (batches of up to 1,000); returns what was accepted."""
        return self._submit_signed("/v1/logistics/messages", "messages", signed)

    def logistics_firm(self, firm: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/v1/logistics/firms/{firm}")))

    def logistics_access(self, firms: Sequence[str], full: bool = False) -> dict[str, Any]:
        body = {"firms": list(firms), "detail": "full" if full else "compact"}
        return dict(self._json(self.http.post("/v1/logistics/access:batch", json=body)))

    # inter-department supervision (C12)

    def supervision_domain(self) -> Domain:
        """The SupervisionRegistry's EIP-712 domain, as the API publishes it."""
        from node_bridge.supervision import REGISTRY

        return self._published_domain("/v1/supervision/eip712", REGISTRY)

    def supervision_submit(self, entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Submit signed case entries (each with its ``text`` when it signs a ``noteHash``; batches of up to 1,000)."""
        return self._submit_signed("/v1/supervision/entries", "entries", entries)

    def joint_sign(self, signed: Mapping[str, Any]) -> dict[str, Any]:
        """Submit one department's signature of a joint decision."""
        return dict(self._json(self.http.post("/v1/supervision/joint-decisions", json=dict(signed))))

    def case(self, case_id: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/v1/supervision/cases/{case_id}")))

    def cases(self, **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v is not None}
        return dict(self._json(self.http.get("/v1/supervision/cases", params=query)))

    def overdue(self) -> dict[str, Any]:
        return dict(self._json(self.http.get("/v1/supervision/overdue")))

    # consumer protection (C7)

    def protection_domain(self) -> Domain:
        """The ProtectionRegistry's EIP-712 domain, as the API publishes it."""
        from node_bridge.protection import REGISTRY

        return self._published_domain("/v1/protection/eip712", REGISTRY)

    def submit_protection(self, signed: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Submit signed fund declarations and case steps (batches of up to 1,000, in order)."""
        return self._submit_signed("/v1/protection/messages", "messages", signed)

    def protection_case(self, case_id: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/v1/protection/cases/{case_id}")))

    def protection_summary(self, platform: str, at: int | None = None) -> dict[str, Any]:
        params = {"at": at} if at is not None else {}
        return dict(self._json(self.http.get(f"/v1/protection/platforms/{platform}/summary", params=params)))

    def protection_risks(self, grace_days: int | None = None) -> dict[str, Any]:
        params = {"grace_days": grace_days} if grace_days is not None else {}
        return dict(self._json(self.http.get("/v1/protection/risks", params=params)))
