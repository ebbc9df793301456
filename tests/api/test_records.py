"""Signed credit records through the API, the relayer, the CreditRegistry on anvil and the indexer."""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_typed_data

from node_bridge import credit
from node_bridge.credit import Kind

from .conftest import CreditWorld, fresh_subject


def test_a_blacklist_decision_travels_to_the_chain_and_back(credit_world: CreditWorld) -> None:
    w = credit_world
    subject = fresh_subject()
    message = w.record("market-regulation", Kind.BLACKLIST, subject, tier=2)
    body = w.signed("market-regulation", "CreditRecord", message)
    accepted = w.submit("qilu-mall", body)  # any member may relay; the signature says who issued it
    assert accepted.status_code == 202, accepted.text
    record_id = accepted.json()["id"]
    assert record_id == "0x" + w.domain.digest("CreditRecord", message).hex()
    again = w.submit("market-regulation", body)
    assert again.status_code == 202 and again.json()["id"] == record_id

    w.settle()
    view = w.client.get(f"/v1/records/{record_id}", headers=w.headers("qilu-mall")).json()
    assert view["write_status"] == "confirmed" and view["state"] == "active", view
    assert view["message"]["subject"] == "0x" + credit.subject_id(subject).hex()
    registry = w.deployment.contract(w.w3, "CreditRegistry")
    assert registry.functions.isBlacklisted(credit.subject_id(subject)).call()
    assert not registry.functions.isRedListed(credit.subject_id(subject)).call()

    revocation = w.signed("market-regulation", "Revocation", w.closure("market-regulation", record_id))
    revoked = w.submit("market-regulation", {"records": [revocation]})
    assert revoked.status_code == 202, revoked.text
    w.settle()
    view = w.client.get(f"/v1/records/{record_id}", headers=w.headers("qilu-mall")).json()
    assert view["state"] == "revoked" and view["closed_reason"] == "annulled on review"
    assert not registry.functions.isBlacklisted(credit.subject_id(subject)).call()


def test_bad_records_get_a_4xx_naming_the_cause(credit_world: CreditWorld) -> None:
    w = credit_world
    subject = fresh_subject()

    def rejected(signer: str, primary: str, message: dict[str, object], status: int, cause: str) -> None:
        response = w.submit("qilu-mall", w.signed(signer, primary, message))
        assert response.status_code == status, response.text
        assert cause in response.text, response.text

    # a platform may not issue a decision, nor a regulator a certification
    rejected("qilu-mall", "CreditRecord", w.record("qilu-mall", Kind.BLACKLIST, subject), 403, "needs a REGULATOR")
    rejected(
        "market-regulation",
        "CreditRecord",
        w.record("market-regulation", Kind.REAL_NAME_CERTIFICATION, subject),
        403,
        "needs a CERTIFIER",
    )
    # a commitment countersigned by a platform is fine
    ok = w.submit("qilu-mall", w.signed("qilu-mall", "CreditRecord", w.record("qilu-mall", Kind.COMMITMENT, subject)))
    assert ok.status_code == 202, ok.text
    # the issuer must be the signer's own organisation
    forged = w.record("market-regulation", Kind.BLACKLIST, subject, issuer=w.orgs["credit-office"])
    rejected("market-regulation", "CreditRecord", forged, 403, "issuer")
    # windows, references and the credit code are checked field by field
    now = w.now()
    rejected(
        "market-regulation",
        "CreditRecord",
        w.record("market-regulation", Kind.BLACKLIST, subject, validUntil=now - 120),
        422,
        "validUntil",
    )
    rejected(
        "market-regulation",
        "CreditRecord",
        w.record("market-regulation", Kind.BLACKLIST, subject, relation=1),
        422,
        "refersTo",
    )
    bad_code = w.signed("market-regulation", "CreditRecord", w.record("market-regulation", Kind.BLACKLIST, subject))
    bad_code["message"]["subject"] = subject[:-1] + ("0" if subject[-1] != "0" else "1")
    response = w.submit("market-regulation", bad_code)
    assert response.status_code == 422 and "records" not in response.json()["detail"]["field"], response.text
    assert response.json()["detail"]["field"] == "subject"
    # a signature for another chain id is nobody's signature
    other = credit.CreditDomain(w.deployment.chain_id + 1, w.domain.verifying_contract)
    message = w.record("market-regulation", Kind.BLACKLIST, subject)
    body = {
        "type": "CreditRecord",
        "message": credit.to_json(message),
        "signature": "0x" + other.sign(w.key("market-regulation"), "CreditRecord", message).hex(),
    }
    response = w.submit("market-regulation", body)
    assert response.status_code == 403 and "another chain or contract" in response.text
    # the same nonce for another record is a replay
    first = w.record("market-regulation", Kind.ADMINISTRATIVE_PENALTY, subject)
    assert w.submit("market-regulation", w.signed("market-regulation", "CreditRecord", first)).status_code == 202
    replay = dict(first, legalBasis="another basis")
    response = w.submit("market-regulation", w.signed("market-regulation", "CreditRecord", replay))
    assert response.status_code == 409 and response.json()["detail"]["contract_error"] == "NonceUsed"
    # no API key, no entry
    assert w.client.post("/v1/records", json=w.signed("market-regulation", "CreditRecord", first)).status_code == 401


def test_closures_follow_the_lifecycle(credit_world: CreditWorld) -> None:
    w = credit_world
    subject = fresh_subject()
    now = w.now()
    notice = w.record("market-regulation", Kind.BLACKLIST, subject, effectiveAt=now + 3600, publicUntil=now + 7200)
    accepted = w.submit("market-regulation", w.signed("market-regulation", "CreditRecord", notice))
    w.settle()
    record_id = accepted.json()["id"]
    # repair needs an active record; this one is still in its notice window
    repair = w.signed("market-regulation", "Repair", w.closure("market-regulation", record_id, "repaired"))
    response = w.submit("market-regulation", repair)
    assert response.status_code == 409 and "notice" in response.text, response.text
    # another organisation may not revoke it
    foreign = w.signed("credit-office", "Revocation", w.closure("credit-office", record_id))
    response = w.submit("credit-office", foreign)
    assert response.status_code == 403 and "only that organisation" in response.text
    # an unknown record cannot be closed
    missing = w.signed("market-regulation", "Revocation", w.closure("market-regulation", "0x" + "ab" * 32))
    assert w.submit("market-regulation", missing).status_code == 404


def test_the_published_eip712_types_sign_with_plain_eth_account(credit_world: CreditWorld) -> None:
    w = credit_world
    published = w.client.get("/v1/eip712").json()
    assert published["domain"]["verifyingContract"] == w.domain.verifying_contract
    assert {k["name"] for k in published["kinds"]} == {k.slug for k in Kind}
    typed = published["examples"]["red_list"]
    typed["message"].update(
        issuer="0x" + w.orgs["credit-office"].hex(),
        subject="0x" + credit.subject_id(fresh_subject()).hex(),
        effectiveAt=w.now() - 10,
        publicUntil=w.now() + 3600,
        validUntil=w.now() + 7200,
        nonce=987654321,
    )
    account = w.key("credit-office")
    signed = Account.sign_message(encode_typed_data(full_message=typed), account.key)
    body = {"type": typed["primaryType"], "message": typed["message"], "signature": "0x" + signed.signature.hex()}
    accepted = w.submit("credit-office", body)
    assert accepted.status_code == 202, accepted.text
    w.settle()
    view = w.client.get(f"/v1/records/{accepted.json()['id']}", headers=w.headers("credit-office")).json()
    assert view["write_status"] == "confirmed" and view["state"] == "active"


def test_the_demo_holds_records_of_every_kind(credit_world: CreditWorld) -> None:
    from sqlmodel import Session, select

    from node_bridge.models import CreditRecordRow, EnforcementRow
    from node_bridge.store import open_store

    engine = open_store(credit_world.settings.database)
    with Session(engine) as session:
        rows = session.exec(select(CreditRecordRow)).all()
        receipts = session.exec(select(EnforcementRow)).all()
    engine.dispose()
    assert {row.kind for row in rows} == {kind.slug for kind in Kind}
    assert sorted(row.closed for row in rows if row.closed) == ["repaired", "revoked"]
    breach = next(row for row in rows if row.relation == "breaches_commitment")
    assert any(row.id == breach.refers_to and row.kind == "commitment" for row in rows)
    assert any(row.effective_at > credit_world.now() for row in rows)  # one is still in its notice window
    assert len(receipts) == 1 and receipts[0].record_id == breach.id


def test_a_revoked_key_or_a_suspended_member_signs_nothing(credit_world: CreditWorld) -> None:
    from credtrace.system import operator_sender
    from node_bridge.consortium import ConsortiumClient, member_id

    w = credit_world
    client = ConsortiumClient(w.w3, w.deployment.contract(w.w3, "Consortium"), operator_sender(w.settings, w.w3))
    regulators = [w.key("market-regulation"), w.key("credit-office")]
    client.suspend(w.orgs["commerce-department"], regulators)
    haibin = w.key("haibin-marketplace")
    client.revoke_own_key(haibin, w.orgs["haibin-marketplace"], haibin.address)
    w.indexer.step()
    subject = fresh_subject()
    suspended = w.signed("commerce-department", "CreditRecord", w.record("commerce-department", Kind.RED_LIST, subject))
    response = w.submit("qilu-mall", suspended)
    assert response.status_code == 403 and "not an active key of an active member" in response.text
    revoked = w.signed("haibin-marketplace", "CreditRecord", w.record("haibin-marketplace", Kind.COMMITMENT, subject))
    response = w.submit("qilu-mall", revoked)
    assert response.status_code == 403 and haibin.address in response.text
    assert member_id("91370100321654988D") == w.orgs["qilu-mall"]  # the platform still signs


def test_a_signature_for_another_contract_and_bad_credit_codes_are_named(credit_world: CreditWorld) -> None:
    w = credit_world
    message = w.record("market-regulation", Kind.BLACKLIST, fresh_subject())
    elsewhere = credit.CreditDomain(w.deployment.chain_id, "0x" + "12" * 20)
    body = {
        "type": "CreditRecord",
        "message": credit.to_json(message),
        "signature": "0x" + elsewhere.sign(w.key("market-regulation"), "CreditRecord", message).hex(),
    }
    response = w.submit("market-regulation", body)
    assert response.status_code == 403 and "another chain or contract" in response.text
    good = fresh_subject()
    cases = {
        good[:17]: "must be 18 characters",
        good[:5] + "I" + good[6:]: "position 6",  # I is not in the GB 32100 alphabet
        good[:17] + ("0" if good[17] != "0" else "1"): "check character",
    }
    for code, cause in cases.items():
        body = w.signed("market-regulation", "CreditRecord", w.record("market-regulation", Kind.BLACKLIST, good))
        body["message"]["subject"] = code
        response = w.submit("market-regulation", {"records": [body]})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail["field"] == "records[0].subject" and cause in detail["reason"], (code, detail)


def test_an_oversized_batch_is_refused_whole(credit_world: CreditWorld) -> None:
    w = credit_world
    body = w.signed("market-regulation", "CreditRecord", w.record("market-regulation", Kind.BLACKLIST, fresh_subject()))
    response = w.submit("market-regulation", {"records": [body] * 1001})
    assert response.status_code == 422 and "records" in response.text
    record_id = "0x" + w.domain.digest("CreditRecord", credit.normalise("CreditRecord", body["message"])).hex()
    assert w.client.get(f"/v1/records/{record_id}", headers=w.headers("qilu-mall")).status_code == 404


def test_a_platform_files_an_enforcement_receipt(credit_world: CreditWorld) -> None:
    w = credit_world
    subject = fresh_subject()
    accepted = w.submit(
        "market-regulation",
        w.signed("market-regulation", "CreditRecord", w.record("market-regulation", Kind.BLACKLIST, subject)),
    )
    record_id = accepted.json()["id"]
    receipt = {
        "platform": w.orgs["qilu-mall"], "subject": credit.subject_id(subject),
        "recordId": bytes.fromhex(record_id[2:]), "measure": 10, "appliedAt": w.now(), "nonce": 77,
    }  # fmt: skip
    by_regulator = w.signed("market-regulation", "Enforcement", receipt | {"platform": w.orgs["market-regulation"]})
    assert w.submit("market-regulation", by_regulator, "/v1/enforcements").status_code == 403  # not a platform
    filed = w.submit("qilu-mall", w.signed("qilu-mall", "Enforcement", receipt), "/v1/enforcements")
    assert filed.status_code == 202, filed.text
    w.settle()
    view = w.client.get(f"/v1/records/{filed.json()['id']}", headers=w.headers("qilu-mall")).json()
    assert view["type"] == "Enforcement" and view["write_status"] == "confirmed", view
