"""The demo consortium created on the first start with an empty data directory (unless ``CREDTRACE_DEMO=0``).

Three regulators (threshold 2) from ``config/consortium.yaml`` and the members of ``config/demo.yaml``, each
with an eth-account keystore ``<data dir>/keys/<key>.json`` whose password is ``demo``. Members are admitted
on chain by proposals that two regulators sign. ``<data dir>/demo.json`` records progress, so an interrupted
seeding resumes on the next start. Each demo member, regulators included, gets an API key, kept in
``<data dir>/api-keys.json`` (0600; see :func:`demo_api_keys`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from rich.progress import Progress
from web3 import Web3

from credtrace import uscc
from credtrace.keys import LIGHT_SCRYPT_N, load_or_create
from credtrace.settings import PROJECT_ROOT, Settings
from node_bridge.consortium import ConsortiumClient, MemberStatus, Role, member_id
from node_bridge.deploy import ConsortiumConfig, Deployment
from node_bridge.transactions import Sender

DEMO_PASSWORD = "demo"
DEMO_CONFIG = PROJECT_ROOT / "config" / "demo.yaml"


class DemoMember(BaseModel):
    uscc: str
    name: str
    roles: list[str]
    key: str

    @property
    def role_flags(self) -> Role:
        flags = Role(0)
        for role in self.roles:
            flags |= Role[role]
        return flags


def _marker(settings: Settings) -> Path:
    return settings.data_path / "demo.json"


def is_pending(settings: Settings) -> bool:
    """True while a demo seeding was started and has not finished."""
    marker = _marker(settings)
    return marker.exists() and json.loads(marker.read_text()).get("status") != "complete"


def demo_members() -> list[DemoMember]:
    members = [DemoMember.model_validate(m) for m in yaml.safe_load(DEMO_CONFIG.read_text())["members"]]
    for index, member in enumerate(members):
        uscc.validate(member.uscc, field=f"members[{index}].uscc")
    return members


def prepare(settings: Settings, config: ConsortiumConfig) -> None:
    """Create the founding regulators' demo keys (deploy needs their addresses); mark seeding started."""
    for regulator in config.regulators:
        if not regulator.key.startswith("0x"):
            load_or_create(settings.keys_dir, regulator.key, DEMO_PASSWORD, LIGHT_SCRYPT_N)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    _marker(settings).write_text(json.dumps({"status": "seeding"}))


def seed(settings: Settings, w3: Web3, deployment: Deployment, sender: Sender) -> list[str]:
    """Admit every demo member not yet admitted; returns the names admitted now."""
    config = ConsortiumConfig.read(settings.consortium_config)
    client = ConsortiumClient(w3, deployment.contract(w3, "Consortium"), sender)
    signers = [
        load_or_create(settings.keys_dir, r.key, DEMO_PASSWORD, LIGHT_SCRYPT_N)
        for r in config.regulators[: config.threshold]
    ]
    admitted = []
    members = demo_members()
    with Progress(transient=True) as progress:
        task = progress.add_task("Admitting demo members", total=len(members))
        for member in members:
            account = load_or_create(settings.keys_dir, member.key, DEMO_PASSWORD, LIGHT_SCRYPT_N)
            if client.member(member_id(member.uscc)).status == MemberStatus.NONE:
                client.admit(member.uscc, member.name, member.role_flags, [account.address], signers)
                admitted.append(member.name)
            progress.advance(task)
    summary: dict[str, Any] = {
        "status": "complete",
        "password": DEMO_PASSWORD,
        "keys_dir": str(settings.keys_dir),
        "regulators": [{"name": r.name, "uscc": r.uscc, "key": r.key} for r in config.regulators],
        "members": [m.model_dump() for m in members],
    }
    from credtrace.demo_records import seed_records

    summary["records"] = seed_records(settings, w3, deployment, sender)
    from credtrace.demo_trace import seed_trace  # traceability: product, lot, codes, a custody chain

    summary["trace"] = seed_trace(settings, w3, deployment)
    from credtrace.demo_protection import seed_protection  # consumer protection: a fund, compensation cases

    summary["protection"] = seed_protection(settings, w3, deployment, sender)
    from credtrace.demo_payments import seed_payments  # online payment management: bindings, signals, a violation

    summary["payments"] = seed_payments(settings, w3, deployment, sender)
    from credtrace.demo_logistics import seed_logistics  # logistics credit: firms, a courier, evaluations, rules

    summary["logistics"] = seed_logistics(settings, w3, deployment, sender)
    from credtrace.demo_supervision import seed_supervision  # supervision: a joint case, an overdue referral

    summary["supervision"] = seed_supervision(settings, w3, deployment, sender)
    _marker(settings).write_text(json.dumps(summary, indent=2))
    demo_api_keys(settings)
    return admitted


# access: one API key per demo member, kept in <data dir>/api-keys.json (0600)

API_KEYS_FILE = "api-keys.json"


def all_demo_members(settings: Settings) -> list[DemoMember]:
    """The founding regulators of the consortium config (as REGULATOR members), then the demo members."""
    config = ConsortiumConfig.read(settings.consortium_config)
    regulators = [DemoMember(uscc=r.uscc, name=r.name, roles=["REGULATOR"], key=r.key) for r in config.regulators]
    return regulators + demo_members()


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), replacing it atomically."""
    scratch = path.with_name(path.name + ".tmp")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.chmod(scratch, 0o600)
    os.replace(scratch, path)


def demo_api_keys(settings: Settings) -> dict[str, str]:
    """``{member name: API key}`` for every demo member, regulators included, from ``<data dir>/api-keys.json``.

    Idempotent: a key in the file that is still valid in the store (``settings.database``) for its member is
    kept; a missing, revoked or unknown one is replaced by a new key, and the file (0600) rewritten.
    """
    from api.auth import create_api_key, key_record
    from node_bridge.store import open_store, session_scope

    path = settings.data_path / API_KEYS_FILE
    existing: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    keys: dict[str, str] = {}
    engine = open_store(settings.database)
    try:
        with session_scope(engine) as session:
            for member in all_demo_members(settings):
                owner = "0x" + member_id(member.uscc).hex()
                key = existing.get(member.name)
                record = key_record(session, key) if key else None
                if key is None or record is None or record.member_id != owner:
                    key, _ = create_api_key(session, owner, label=f"demo: {member.key}")
                keys[member.name] = key
    finally:
        engine.dispose()
    if keys != existing or path.stat().st_mode & 0o077:
        settings.data_path.mkdir(parents=True, exist_ok=True)
        _write_private(path, json.dumps(keys, indent=2) + "\n")
    return keys


def refresh_api_keys(settings: Settings) -> None:
    """On every start of a finished demo: make sure ``api-keys.json`` holds keys the store still knows."""
    marker = _marker(settings)
    if marker.exists() and json.loads(marker.read_text()).get("status") == "complete":
        demo_api_keys(settings)


def demo_directory(settings: Settings) -> dict[str, tuple[str, str]]:
    """Every demo member by its short name (``qilu-mall``) and full name: ``(0x member id, full name)``."""
    directory: dict[str, tuple[str, str]] = {}
    for member in all_demo_members(settings):
        entry = ("0x" + member_id(member.uscc).hex(), member.name)
        directory[member.key] = directory[member.name] = entry
    return directory
