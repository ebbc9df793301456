"""Logistics credit (C6) through the API, the relayer, the LogisticsRegistry on anvil and the indexer.

The demo's firms are graded and answered (allowed / refused, with the records that prove it); every role rule and
state rule of the writes gives a 4xx naming the cause; for random evaluation sets the grade recomputed from the
chain's logs alone (``credtrace logistics score``) equals the API's, and publishing a new rule version changes
grades only under the new version.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from credtrace import logistics_rating
from credtrace.cli import app as cli_app
from credtrace.cli_logistics import score_from_chain
from credtrace.demo_logistics import logistics_demo, seed_logistics
from credtrace.logistics_rating import Figures, file_hash, grade, load_rule, rule_path
from credtrace.settings import get_settings
from credtrace.system import operator_sender
from node_bridge import credit, logistics
from node_bridge.credit import subject_id
from node_bridge.eip712 import Domain, to_json
from node_bridge.rebuild import check, dump
from node_bridge.store import open_store

from .conftest import CreditWorld, fresh_subject

CARRIER, PLATFORM, PLATFORM_B, REGULATOR = "jiaodong-express", "qilu-mall", "haibin-marketplace", "market-regulation"
PRODUCER, CERTIFIER = "yantai-orchard", "realname-centre"
ID_NUMBERS = itertools.count(1)


def id_number() -> str:
    """A fictional resident identity number no other test uses (valid check character)."""
    from credtrace.persons import id_check_character

    body = f"3706021990{next(ID_NUMBERS) % 10000:04d}{next(ID_NUMBERS) % 1000:03d}"[:17]
    body = body[:10] + "0307" + body[14:]  # a real birth date: 1990-03-07
    return body + id_check_character(body)


@dataclass
class Logistics:
    world: CreditWorld
    domain: Domain
    _nonce: Any = field(default_factory=lambda: itertools.count(7_000_000))

    def message(self, signer: str, type_name: str, **fields: Any) -> dict[str, Any]:
        kind = logistics.REGISTRY.type(type_name)
        return {kind.signer_field: self.world.orgs[signer], **fields, "nonce": next(self._nonce)}

    def signed(self, signer: str, type_name: str, **fields: Any) -> dict[str, Any]:
        message = logistics.REGISTRY.normalise(type_name, to_json(self.message(signer, type_name, **fields)))
        signature = self.domain.sign(self.world.key(signer), type_name, message)
        return {"type": type_name, "message": to_json(message), "signature": "0x" + signature.hex()}

    def evaluation(self, signer: str, firm: str, period: int, **figures: int) -> dict[str, Any]:
        values = {"parcels": 1000, "onTimeBps": 9600, "lossDamageBps": 30, "complaintsPer10k": 5, "violations": 0,
                  "sanctions": 0} | figures  # fmt: skip
        return self.signed(signer, "Evaluation", firm=firm, period=period, **values)

    def post(self, caller: str, *bodies: dict[str, Any]) -> Any:
        return self.world.client.post(
            "/v1/logistics/messages", json={"messages": list(bodies)}, headers=self.world.headers(caller)
        )

    def accepted(self, caller: str, *bodies: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.post(caller, *bodies)
        assert response.status_code == 202, response.text
        return list(response.json()["accepted"])

    def refused(self, caller: str, status: int, field_name: str | None, *bodies: dict[str, Any]) -> dict[str, Any]:
        response = self.post(caller, *bodies)
        assert response.status_code == status, response.text
        detail = dict(response.json()["detail"])
        if field_name is not None:
            assert field_name in (detail.get("field") or detail["message"]), detail
        return detail

    def get(self, path: str, caller: str = PLATFORM) -> Any:
        return self.world.client.get(path, headers=self.world.headers(caller))

    def firm(self, code: str) -> dict[str, Any]:
        response = self.get(f"/v1/logistics/firms/{code}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def access(self, code: str, caller: str = PLATFORM) -> dict[str, Any]:
        response = self.get(f"/v1/logistics/{code}/access", caller)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def settle(self) -> None:
        """Relay and index, then bring the in-memory status and grade caches to the new checkpoint at once."""
        self.world.settle()
        state = self.world.client.app.state  # type: ignore[attr-defined]
        self.world.client.portal.call(state.status_cache.refresh)  # type: ignore[union-attr]
        state.logistics_cache.refresh()

    def register(self, code: str) -> None:
        self.accepted(CARRIER, self.signed(CARRIER, "FirmRegistration", firm=code))


@pytest.fixture
def lw(credit_world: CreditWorld) -> Logistics:
    contract = credit_world.deployment.contracts[logistics.CONTRACT]
    return Logistics(credit_world, logistics.REGISTRY.domain(credit_world.deployment.chain_id, contract.address))


def chain_grade(lw: Logistics, code: str, version: int) -> dict[str, Any]:
    return score_from_chain(lw.world.settings.rpc_url, code, version, lw.world.settings).to_json()


def without_tx(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "rule_tx_hash"}


def test_demo_firms_graded_and_access_answered(lw: Logistics, monkeypatch: pytest.MonkeyPatch) -> None:
    demo = logistics_demo()
    assert demo is not None
    city, rural = (f.uscc for f in demo.firms)
    rules = lw.get("/v1/logistics/rules", REGULATOR).json()["rules"]
    assert [(r["version"], r["hash"], r["file_matches"]) for r in rules] == [
        (v, "0x" + file_hash(rule_path(v)).hex(), True) for v in (1, 2)
    ]

    # seeding again does nothing (and does not fail)
    world = lw.world
    again = seed_logistics(world.settings, world.w3, world.deployment, operator_sender(world.settings, world.w3))
    assert again is not None and again["sent"] == 0 and again["firms"]["jiaodong-city"]["uscc"] == city
    lw.settle()

    city_view, rural_view = lw.firm(city), lw.firm(rural)
    assert city_view["registered"] and len(city_view["couriers"]) == 1
    assert len(city_view["evaluations"]) == demo.months * len(demo.evaluators)
    assert [g["rule_version"] for g in city_view["grades"]] == [1, 2]
    assert city_view["current"]["grade"] in ("A", "B") and rural_view["current"]["grade"] == "D"
    assert any("lossDamageBps" in condition for condition in rural_view["current"]["automatic_d"])
    breakdown = city_view["current"]["breakdown"]
    assert [b["key"] for b in breakdown] == [i.key for i in load_rule(2).rule.inputs]
    assert {"value", "weight", "points", "contribution"} <= breakdown[0].keys()

    for code, view in ((city, city_view), (rural, rural_view)):  # the chain alone says the same
        for rule_grade in view["grades"]:
            assert chain_grade(lw, code, rule_grade["rule_version"]) == without_tx(rule_grade)

    allowed, refused = lw.access(city), lw.access(rural)
    assert allowed["access"] == "allowed" and allowed["reasons"] == [] and allowed["rule_version"] == 2
    assert refused["access"] == "refused" and refused["measure"] == "refuse_platform_access"
    assert refused["reasons"][0].startswith("graded D under rating rule v2")
    proof = {r["type"]: r for r in refused["records"]}
    evaluations = [r for r in refused["records"] if r["type"] == "evaluation"]
    assert {e["id"] for e in evaluations} == set(rural_view["current"]["evaluations"])
    assert proof["rating_rule"]["version"] == 2
    receipt = lw.world.w3.eth.get_transaction_receipt(evaluations[0]["tx_hash"])
    assert receipt["status"] == 1

    # the CLI prints the same from the chain alone
    monkeypatch.setenv("CREDTRACE_DATA_DIR", str(lw.world.settings.data_dir))
    monkeypatch.setenv("CREDTRACE_ANVIL_PORT", str(lw.world.settings.anvil_port))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["logistics", "score", "--rule", "v1", "--firm", rural])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "grade D" in result.output and "onTimeBps" in result.output
    assert f"score {rural_view['grades'][0]['score']}" in result.output

    # a blacklisted firm is refused whatever its grade; the record that proves it is named
    record = lw.world.record(REGULATOR, credit.Kind.BLACKLIST, city, tier=int(credit.Tier.SEVERE))
    response = lw.world.submit(REGULATOR, lw.world.signed(REGULATOR, "CreditRecord", record))
    assert response.status_code == 202, response.text
    record_id = response.json()["id"]
    lw.settle()
    blacklisted = lw.access(city)
    assert blacklisted["access"] == "refused" and blacklisted["grade"] in ("A", "B")
    assert blacklisted["reasons"] == [f"blacklisted (credit record {record_id})"]
    assert [r["id"] for r in blacklisted["records"]] == [record_id]

    # many at once, in the order asked
    unknown = fresh_subject()
    batch = lw.world.client.post(
        "/v1/logistics/access:batch", json={"firms": [rural, unknown, city]}, headers=lw.world.headers(PLATFORM_B)
    )
    assert batch.status_code == 200, batch.text
    assert [r["access"] for r in batch.json()["results"]] == ["refused", "allowed", "refused"]
    assert batch.json()["results"][1]["registered"] is False
    bad = lw.world.client.post(
        "/v1/logistics/access:batch", json={"firms": [city, "91370602778899002X"]}, headers=lw.world.headers(PLATFORM)
    )
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "firms[1]"

    # the change feed carries the logistics events (every member may read them)
    feed = lw.world.client.get("/v1/feed", params={"type": "logistics_evaluation", "limit": 500},
                               headers=lw.world.headers(PLATFORM))  # fmt: skip
    assert feed.status_code == 200, feed.text
    assert {e["id"] for e in rural_view["evaluations"]} <= {i["id"] for i in feed.json()["items"]}

    # reads are for members of the logistics workflow
    assert lw.get(f"/v1/logistics/{city}/access", PRODUCER).status_code == 403
    assert lw.get(f"/v1/logistics/firms/{city}", CERTIFIER).status_code == 403
    assert lw.world.client.get(f"/v1/logistics/{city}/access").status_code == 401
    assert lw.get(f"/v1/logistics/{city}/access", "credit-office").status_code == 200
    assert lw.get(f"/v1/logistics/firms/{unknown}").status_code == 404


def test_every_write_rule_names_its_cause(lw: Logistics) -> None:
    demo = logistics_demo()
    assert demo is not None
    city = demo.firms[0].uscc
    period = lw.firm(city)["evaluations"][0]["period"]
    firm = fresh_subject()

    # roles: the signer's organisation must hold the type's role; the API key's member must be one of the workflow
    lw.refused(PLATFORM, 403, "signature", lw.signed(PLATFORM, "FirmRegistration", firm=firm))
    lw.refused(CARRIER, 403, "signature", lw.evaluation(CARRIER, city, 202601))
    lw.refused(PLATFORM, 403, "signature", lw.signed(PLATFORM, "RatingRule", version=3, ruleHash="0x" + "11" * 32))
    lw.refused(PRODUCER, 403, "Authorization", lw.signed(CARRIER, "FirmRegistration", firm=firm))
    stranger = lw.signed(CARRIER, "FirmRegistration", firm=firm)
    message = logistics.REGISTRY.normalise("FirmRegistration", stranger["message"])
    stranger["signature"] = "0x" + lw.domain.sign(Account.create(), "FirmRegistration", message).hex()
    assert "not an active key" in lw.refused(CARRIER, 403, None, stranger)["message"]
    wrong_org = lw.signed(CARRIER, "FirmRegistration", firm=firm)
    wrong_org["message"]["registrar"] = "0x" + lw.world.orgs[PLATFORM].hex()
    lw.refused(CARRIER, 403, None, wrong_org)

    # firms
    assert lw.refused(CARRIER, 409, "firm", lw.signed(CARRIER, "FirmRegistration", firm=city))["contract_error"] == (
        "FirmAlreadyRegistered"
    )
    commitment = "0x" + "ab" * 32
    lw.refused(CARRIER, 422, "firm", lw.signed(CARRIER, "FirmRegistration", firm=commitment))
    twice = lw.refused(CARRIER, 409, "messages[1].firm", lw.signed(CARRIER, "FirmRegistration", firm=firm),
                       lw.signed(CARRIER, "FirmRegistration", firm=firm))  # fmt: skip
    assert twice["contract_error"] == "FirmAlreadyRegistered"

    # couriers: a commitment from POST /v1/persons, of a registered firm, once per firm
    person = lw.world.client.post("/v1/persons", json={"id_number": id_number()}, headers=lw.world.headers(CARRIER))
    assert person.status_code == 201, person.text
    courier = person.json()["commitment"]
    detail = lw.refused(CARRIER, 409, "firm", lw.signed(CARRIER, "CourierRegistration", courier=courier, firm=firm))
    assert detail["contract_error"] == "FirmNotRegistered"
    lw.refused(
        CARRIER,
        422,
        "courier",
        lw.signed(CARRIER, "CourierRegistration", courier="0x" + subject_id(city).hex(), firm=city),
    )
    demo_courier = lw.firm(city)["couriers"][0]["courier"]
    detail = lw.refused(CARRIER, 409, "courier",
                        lw.signed(CARRIER, "CourierRegistration", courier=demo_courier, firm=city))  # fmt: skip
    assert detail["contract_error"] == "CourierAlreadyRegistered"

    # evaluations: the figures, a registered firm, one per evaluator, firm and month
    for figures, name in (({"period": 202613}, "period"), ({"period": 199912}, "period"),
                          ({"onTimeBps": 10_001}, "onTimeBps"), ({"lossDamageBps": 65_000}, "lossDamageBps"),
                          ({"parcels": 0}, "parcels")):  # fmt: skip
        values = {"period": 202601} | figures
        lw.refused(PLATFORM, 422, name, lw.evaluation(PLATFORM, city, **values))
    too_many = lw.evaluation(PLATFORM, city, 202601)
    too_many["message"]["violations"] = 2**16  # beyond uint16: refused before the signature is looked at
    lw.refused(PLATFORM, 422, "messages[0].violations", too_many)
    lw.refused(PLATFORM, 409, "firm", lw.evaluation(PLATFORM, firm, 202601))
    detail = lw.refused(PLATFORM, 409, "period", lw.evaluation(PLATFORM, city, period))
    assert detail["contract_error"] == "EvaluationExists"

    # rules: the next version, the hash of this repository's file of that version
    assert lw.refused(REGULATOR, 409, "version", lw.signed(REGULATOR, "RatingRule", version=2,
                      ruleHash="0x" + file_hash(rule_path(2)).hex()))["contract_error"] == "RuleVersion"  # fmt: skip
    lw.refused(REGULATOR, 422, "version", lw.signed(REGULATOR, "RatingRule", version=3, ruleHash="0x" + "11" * 32))

    # the good path: a registration, a courier and two evaluations of the new firm in one batch (sent in batch
    # order); then on chain and in the index
    accepted = lw.accepted(
        CARRIER,
        lw.signed(CARRIER, "FirmRegistration", firm=firm),
        lw.signed(CARRIER, "CourierRegistration", courier=courier, firm=firm),
        lw.evaluation(PLATFORM, firm, 202601),
        lw.evaluation(REGULATOR, firm, 202601, sanctions=1),
    )
    assert [a["status"] for a in accepted] == ["accepted"] * 4
    # accepted but not yet on chain: the same slot is refused already
    detail = lw.refused(PLATFORM, 409, "period", lw.evaluation(PLATFORM, firm, 202601, parcels=5))
    assert detail["contract_error"] == "EvaluationExists"
    lw.settle()
    view = lw.firm(firm)
    assert view["registered"] and [c["courier"] for c in view["couriers"]] == [courier]
    assert len(view["evaluations"]) == 2 and view["current"]["grade"] is not None
    for item in accepted:
        assert (
            lw.world.client.get(f"/v1/records/{item['id']}", headers=lw.world.headers(CARRIER)).json()["write_status"]
            == "confirmed"
        )

    # the logistics tables are what the chain says: a rebuild from the events alone gives the same rows
    engine = open_store(lw.world.settings.database)
    try:
        differences = check(engine, lw.world.w3, lw.world.deployment, lw.world.settings)
        assert [d for d in differences if "logistics" in d.lower()] == []
        rows = dump(engine)
        assert len(rows["logistics_firm"]) >= 3 and len(rows["logistics_rule"]) == 2
        assert len(rows["logistics_courier"]) == 2
    finally:
        engine.dispose()


figures_strategy = st.fixed_dictionaries({
    "parcels": st.integers(1, 200_000), "onTimeBps": st.integers(8000, 10_000), "lossDamageBps": st.integers(0, 400),
    "complaintsPer10k": st.integers(0, 60), "violations": st.integers(0, 3), "sanctions": st.integers(0, 1),
})  # fmt: skip
evaluation_sets = st.lists(
    st.tuples(st.sampled_from([PLATFORM, PLATFORM_B, REGULATOR]), st.integers(0, 14), figures_strategy),
    min_size=1, max_size=8, unique_by=lambda t: (t[0], t[1]),
)  # fmt: skip


def test_chain_recomputation_equals_the_api_and_versions_only_add(
    lw: Logistics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    firms: list[tuple[str, list[Figures]]] = []

    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(evaluation_sets)
    def one_set(items: list[tuple[str, int, dict[str, int]]]) -> None:
        firm = fresh_subject()
        lw.register(firm)
        bodies = [lw.evaluation(signer, firm, logistics.previous_periods(202612, 15)[month], **figures)
                  for signer, month, figures in items]  # fmt: skip
        lw.accepted(PLATFORM, *bodies)
        lw.settle()
        view = lw.firm(firm)
        api_grades = {g["rule_version"]: without_tx(g) for g in view["grades"]}
        for version in (1, 2):
            assert chain_grade(lw, firm, version) == api_grades[version]
        access = lw.access(firm)
        assert (access["grade"], access["score"]) == (api_grades[2]["grade"], api_grades[2]["score"])
        assert access["access"] == ("refused" if api_grades[2]["grade"] == "D" else "allowed")
        figures = [Figures.of(e["id"], e) for e in view["evaluations"]]
        # the same inputs and version give the same grade, whatever their order
        assert grade(load_rule(1), figures) == grade(load_rule(1), list(reversed(figures)))
        firms.append((firm, figures))

    one_set()

    # a firm with one sanction: B or better under v1, D under v2 (v2 makes one sanction enough)
    sanctioned = fresh_subject()
    lw.register(sanctioned)
    lw.accepted(PLATFORM, *[lw.evaluation(PLATFORM, sanctioned, p, sanctions=int(p == 202606))
                            for p in logistics.previous_periods(202612, 12)])  # fmt: skip
    lw.settle()
    grades = {g["rule_version"]: g for g in lw.firm(sanctioned)["grades"]}
    assert grades[1]["grade"] in ("A", "B") and grades[2]["grade"] == "D"
    assert grades[1]["score"] != grades[2]["score"]  # v2 weighs complaints more

    # publish v3 (a copy of v2 whose thresholds are stricter); v1 and v2 grades stay what they were
    rules_dir = tmp_path / "rules"
    shutil.copytree(rule_path(1).parent, rules_dir)
    text = rule_path(2).read_text().replace("version: 2", "version: 3").replace("{A: 85, B: 70, C: 55}",
                                                                              "{A: 99, B: 98, C: 97}")  # fmt: skip
    (rules_dir / "v3.yaml").write_text(text)
    monkeypatch.setattr(logistics_rating, "RULES_DIR", rules_dir)
    before = {firm: {g["rule_version"]: g for g in lw.firm(firm)["grades"]} for firm, _ in firms}
    lw.accepted(REGULATOR, lw.signed(REGULATOR, "RatingRule", version=3,
                                     ruleHash="0x" + file_hash(rules_dir / "v3.yaml").hex()))  # fmt: skip
    lw.settle()
    assert [r["version"] for r in lw.get("/v1/logistics/rules").json()["rules"]] == [1, 2, 3]
    for firm, figures in firms:
        after = {g["rule_version"]: g for g in lw.firm(firm)["grades"]}
        assert {v: after[v] for v in (1, 2)} == before[firm]
        assert after[3]["grade"] == grade(load_rule(3), figures).grade
        assert chain_grade(lw, firm, 3) == without_tx(after[3])
        assert lw.access(firm)["rule_version"] == 3
    city = logistics_demo().firms[0].uscc  # type: ignore[union-attr]
    city_grades = {g["rule_version"]: g for g in lw.firm(city)["grades"]}
    assert city_grades[2]["grade"] in ("A", "B") and city_grades[3]["grade"] == "D"  # only through v3

    # a rule file changed after publication is refused, naming both hashes
    (rules_dir / "v3.yaml").write_text(text + "# edited\n")
    broken = lw.firm(firms[0][0])["grades"][-1]
    assert "RuleHashMismatch" not in broken and "not the published rule" in broken["error"]


def test_cli_signs_with_a_keystore_and_submits(lw: Logistics, monkeypatch: pytest.MonkeyPatch) -> None:
    """``credtrace logistics register-firm|evaluate|access`` against this API (the client's HTTP is the test
    client), signing with the demo members' keystores."""
    import credtrace.cli_logistics as cli_logistics
    from credtrace.client import CredtraceClient

    world = lw.world

    class Client(CredtraceClient):
        def __init__(self, base_url: str, api_key: str | None = None, **_: Any) -> None:
            super().__init__(base_url, api_key)
            self.http.close()
            self.http = world.client  # an httpx.Client
            world.client.headers.update({"Authorization": f"Bearer {api_key}"})

        def close(self) -> None:
            pass

    monkeypatch.setattr(cli_logistics, "CredtraceClient", Client)
    monkeypatch.setenv("CREDTRACE_DATA_DIR", str(world.settings.data_dir))
    monkeypatch.setenv("CREDTRACE_ANVIL_PORT", str(world.settings.anvil_port))
    monkeypatch.setenv("CREDTRACE_KEY_PASSWORD", "demo")
    get_settings.cache_clear()
    firm = fresh_subject()
    runner = CliRunner()
    try:
        carrier_key = world.api_keys[world.member_names[CARRIER]]
        result = runner.invoke(cli_app, ["logistics", "register-firm", "--key", CARRIER, "--firm", firm,
                                         "--api-key", carrier_key])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert result.output.split()[1:] == ["FirmRegistration", "accepted"]
        lw.settle()
        platform_key = world.api_keys[world.member_names[PLATFORM_B]]
        args = ["logistics", "evaluate", "--key", PLATFORM_B, "--firm", firm, "--period", "202611", "--parcels", "5000",
                "--on-time-bps", "9000", "--loss-damage-bps", "350", "--complaints-per-10k", "20", "--api-key",
                platform_key]  # fmt: skip
        result = runner.invoke(cli_app, args)
        assert result.exit_code == 0, result.output
        result = runner.invoke(cli_app, args)  # the same month again: refused, naming the cause
        assert result.exit_code == 1 and "HTTP 409" in result.output and "already" in result.output
        lw.settle()
        result = runner.invoke(cli_app, ["logistics", "access", firm, "--api-key", platform_key])
        assert result.exit_code == 0, result.output
        assert "refused" in result.output and "graded D" in result.output
        wrong = runner.invoke(cli_app, ["logistics", "register-firm", "--key", PLATFORM, "--firm", fresh_subject(),
                                        "--api-key", carrier_key])  # fmt: skip
        assert wrong.exit_code == 1 and "HTTP 403" in wrong.output
    finally:
        get_settings.cache_clear()
