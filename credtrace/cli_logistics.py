"""``credtrace logistics ...``: logistics credit (C6) from the command line.

``register-firm``, ``register-courier``, ``evaluate`` and ``publish-rule`` sign a message with your own keystore and
submit it through the API (``--out FILE`` writes the signed JSON instead, to submit later with ``submit``).
``score`` recomputes a firm's grade from the chain alone: it reads the LogisticsRegistry's logs over JSON-RPC
(``eth_getLogs`` filtered by event topic and the firm's topic), checks the rule file against the hash published on
chain for its version, and prints each input with its weight, the score and the grade; no SQL index, no API.
``access`` asks the API whether platforms must refuse firms.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from credtrace.cli_signing import (
    ApiKey,
    ApiUrl,
    Key,
    Nonce,
    Password,
    Signed,
    api_url,
    deliver,
    exit_on,
    fresh_nonce,
    signer_id,
    submit_signed,
)
from credtrace.client import ApiError, CredtraceClient
from credtrace.errors import CredtraceError, NotFound, ValidationFailed
from credtrace.keys import load_key
from credtrace.logistics_rating import Figures, Grade, file_hash, grade, load_rule, parse_version, rule_path
from credtrace.settings import Settings, get_settings
from node_bridge import logistics
from node_bridge.credit import subject_code, subject_id
from node_bridge.eip712 import to_json

logistics_app = typer.Typer(help="Logistics credit: firms, couriers, evaluations, rating rules.", no_args_is_help=True)
out = Console()

Organisation = Annotated[
    str | None, typer.Option("--org", help="Your organisation's credit code (default: from the index).")
]
Output = Annotated[Path | None, typer.Option("--out", help="Write the signed JSON here instead of submitting.")]


def _sign_and_send(
    settings: Settings,
    key: str,
    password: str,
    type_name: str,
    fields: dict[str, Any],
    org: str | None,
    nonce: int | None,
    api: str | None,
    api_key: str | None,
    output: Path | None,
) -> None:
    """Fill in the signing organisation and the nonce, sign with ``key``, then submit (or write to ``output``)."""
    kind = logistics.REGISTRY.type(type_name)
    with exit_on(CredtraceError, ValueError, OSError):
        account = load_key(settings.keys_dir, key, password)
        message = {kind.signer_field: signer_id(settings, org, account.address), **fields}
        message["nonce"] = fresh_nonce(nonce)
        normalised = logistics.REGISTRY.normalise(type_name, to_json(message))
        with CredtraceClient(api_url(settings, api), api_key) as client:
            signed = Signed.sign(client.logistics_domain(), account, type_name, normalised)
            deliver(signed, output, client.submit_logistics)


@logistics_app.command("register-firm")
def register_firm(
    key: Key, password: Password, firm: Annotated[str, typer.Option(help="The firm's credit code.")],
    org: Organisation = None, nonce: Nonce = None, api: ApiUrl = None, api_key: ApiKey = None, output: Output = None,
) -> None:  # fmt: skip
    """Register a delivery firm (LOGISTICS)."""
    _sign_and_send(get_settings(), key, password, "FirmRegistration", {"firm": firm}, org, nonce, api, api_key, output)


@logistics_app.command("register-courier")
def register_courier(
    key: Key, password: Password,
    courier: Annotated[str, typer.Option(help="The courier's commitment (0x, from POST /v1/persons).")],
    firm: Annotated[str, typer.Option(help="The firm's credit code.")],
    org: Organisation = None, nonce: Nonce = None, api: ApiUrl = None, api_key: ApiKey = None, output: Output = None,
) -> None:  # fmt: skip
    """Register a courier of a registered firm (LOGISTICS): a salted commitment, never the person's number."""
    fields = {"courier": courier, "firm": firm}
    _sign_and_send(get_settings(), key, password, "CourierRegistration", fields, org, nonce, api, api_key, output)


@logistics_app.command("evaluate")
def evaluate(
    key: Key, password: Password,
    firm: Annotated[str, typer.Option(help="The firm's credit code.")],
    period: Annotated[int, typer.Option(help="The month evaluated, YYYYMM.")],
    parcels: Annotated[int, typer.Option(help="Parcels handled in the month.")],
    on_time_bps: Annotated[int, typer.Option(help="On-time rate, basis points (9650 = 96.5 %).")],
    loss_damage_bps: Annotated[int, typer.Option(help="Loss and damage rate, basis points.")],
    complaints_per_10k: Annotated[int, typer.Option(help="Complaints per 10,000 parcels.")],
    violations: Annotated[int, typer.Option(help="Violations found in the month.")] = 0,
    sanctions: Annotated[int, typer.Option(help="Sanctions imposed in the month.")] = 0,
    org: Organisation = None, nonce: Nonce = None, api: ApiUrl = None, api_key: ApiKey = None, output: Output = None,
) -> None:  # fmt: skip
    """Evaluate a firm for one month (PLATFORM or REGULATOR)."""
    fields = {"firm": firm, "period": period, "parcels": parcels, "onTimeBps": on_time_bps,
              "lossDamageBps": loss_damage_bps, "complaintsPer10k": complaints_per_10k, "violations": violations,
              "sanctions": sanctions}  # fmt: skip
    _sign_and_send(get_settings(), key, password, "Evaluation", fields, org, nonce, api, api_key, output)


@logistics_app.command("publish-rule")
def publish_rule(
    key: Key, password: Password,
    version: Annotated[str, typer.Option("--rule", help="The version to publish: v1, v2... (its file's hash).")],
    org: Organisation = None, nonce: Nonce = None, api: ApiUrl = None, api_key: ApiKey = None, output: Output = None,
) -> None:  # fmt: skip
    """Publish a rule version (REGULATOR): the keccak256 of config/logistics/rules/vN.yaml, with N."""
    with exit_on(CredtraceError):
        number = parse_version(version, "--rule")
        load_rule(number)  # the file must exist and be a valid rule of that version
        fields = {"version": number, "ruleHash": "0x" + file_hash(rule_path(number)).hex()}
    _sign_and_send(get_settings(), key, password, "RatingRule", fields, org, nonce, api, api_key, output)


@logistics_app.command("submit")
def submit(
    files: Annotated[list[Path], typer.Argument(help="Signed JSON files (--out of the other commands).")],
    api_key: ApiKey = None,
    api: ApiUrl = None,
) -> None:
    """Submit signed logistics messages written with --out."""
    settings = get_settings()
    submit_signed(files, lambda: CredtraceClient(api_url(settings, api), api_key), CredtraceClient.submit_logistics)


# from the chain alone


def score_from_chain(rpc_url: str | None, firm: str, version: int, settings: Settings | None = None) -> Grade:
    """The grade of ``firm`` under rule ``version`` from the chain's logs alone (see the module docstring)."""
    from node_bridge.chain import connect, rpc_web3
    from node_bridge.deploy import load_deployment
    from node_bridge.logistics_index import message
    from node_bridge.rpc import Rpc

    settings = settings or get_settings()
    w3 = rpc_web3(rpc_url) if rpc_url else connect(settings)
    deployment = load_deployment(w3, settings.deployments_dir)
    if deployment is None or logistics.CONTRACT not in deployment.contracts:
        raise NotFound(f"no deployment with a {logistics.CONTRACT} for chain {w3.eth.chain_id} in "
                       f"{settings.deployments_dir}")  # fmt: skip
    contract = deployment.contracts[logistics.CONTRACT]
    chain = logistics.read_chain(Rpc(w3), contract.address, subject_id(firm), contract.block_number)
    published = chain.rule_hash(version)
    if published is None:
        raise NotFound(f"--rule: version {version} of the rating rule is not published on chain")
    evaluations = [Figures.of(e.args["id"], message(e)) for e in chain.evaluations]
    return grade(load_rule(version, published), evaluations)


@logistics_app.command("score")
def score(
    rule: Annotated[str, typer.Option(help="The rule version: v1, v2...")],
    firm: Annotated[str, typer.Option(help="The firm's credit code or 0x subject id.")],
    rpc_url: Annotated[str | None, typer.Option(help="JSON-RPC endpoint (default: the configured chain).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the grade as JSON.")] = False,
) -> None:
    """Recompute a firm's grade from the chain alone: each input with its weight, the score and the grade."""
    with exit_on(CredtraceError, ValueError):
        version = parse_version(rule, "--rule")
        result = score_from_chain(rpc_url, firm, version)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    code = subject_code(subject_id(firm))
    table = Table(title=f"{code or firm}: rating rule v{result.version} ({result.rule_hash[:18]}…)")
    for column in ("input", "value", "weight", "worst → best", "points", "contribution"):
        table.add_column(column, justify="left" if column == "input" else "right")
    for item in result.breakdown:
        table.add_row(item["key"] + f" ({item['input']})", item["value"], str(item["weight"]),
                      f"{item['worst']} → {item['best']}", item["points"], item["contribution"])  # fmt: skip
    out.print(table)
    if result.grade is None:
        out.print("no evaluations on chain: not rated")
        return
    window = result.window or (0, 0)
    inputs = ", ".join(f"{k} {v}" for k, v in result.to_json()["inputs"].items())
    out.print(f"{len(result.evaluations)} evaluations, {window[0]} to {window[1]}: {inputs}")
    if result.automatic_d:
        out.print(f"automatic D: {'; '.join(result.automatic_d)}")
    out.print(f"score [bold]{result.score}[/bold]  grade [bold]{result.grade}[/bold]")


@logistics_app.command("access")
def access(
    firms: Annotated[list[str], typer.Argument(help="Credit codes or 0x subject ids.")],
    api_key: ApiKey = None,
    api: ApiUrl = None,
) -> None:
    """Whether platforms must refuse these firms (graded D under the latest rule, or blacklisted), and why."""
    settings = get_settings()
    with exit_on(ApiError, ValidationFailed), CredtraceClient(api_url(settings, api), api_key) as client:
        answer = client.logistics_access(firms)
    table = Table(title=f"access as of block {answer['as_of_block']} (rule v{answer['rule_version']})")
    for column in ("firm", "access", "grade", "score", "reasons"):
        table.add_column(column)
    for item in answer["results"]:
        table.add_row(item["firm_code"] or item["firm"], item["access"], item["grade"] or "-", item["score"] or "-",
                      "; ".join(item["reasons"]))  # fmt: skip
    out.print(table)
