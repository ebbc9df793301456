"""The demo consortium created on the first start with an empty data directory (unless ``CREDTRACE_DEMO=0``).

Three regulators (threshold 2) from ``config/consortium.yaml`` and the members of ``config/demo.yaml``, each
with an eth-account keystore ``<data dir>/keys/<key>.json`` whose password is ``demo``. Members are admitted
on chain by proposals that two regulators sign. ``<data dir>/demo.json`` records progress, so an interrupted
seeding resumes on the next start.
"""

from __future__ import annotations

import json
from pathlib import Path

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
    summary = {
        "status": "complete",
        "password": DEMO_PASSWORD,
        "keys_dir": str(settings.keys_dir),
        "regulators": [{"name": r.name, "uscc": r.uscc, "key": r.key} for r in config.regulators],
        "members": [m.model_dump() for m in members],
    }
    _marker(settings).write_text(json.dumps(summary, indent=2))
    return admitted
