"""Signing keys as encrypted eth-account keystores (``<data dir>/keys/<name>.json``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from credtrace.errors import NotFound, ValidationFailed

STANDARD_SCRYPT_N = 2**18  # eth-account's default work factor (~0.7 s per key here)
LIGHT_SCRYPT_N = 2**14  # demo keys only: their password is public anyway
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class KeyInfo:
    """A keystore on disk: its name and address (no secret is read to list it)."""

    name: str
    address: str
    path: Path


def _path(keys_dir: Path, name: str) -> Path:
    if not _NAME.match(name):
        raise ValidationFailed("name", f"{name!r} must be 1-64 of a-z, 0-9, '.', '_', '-' and start alphanumeric")
    return keys_dir / f"{name}.json"


def new_key(keys_dir: Path, name: str, password: str, scrypt_n: int = STANDARD_SCRYPT_N) -> KeyInfo:
    """Create a new random key and store it encrypted; refuses to overwrite an existing one."""
    return _create(keys_dir, name, password, scrypt_n)[0]


def _create(keys_dir: Path, name: str, password: str, scrypt_n: int) -> tuple[KeyInfo, LocalAccount]:
    path = _path(keys_dir, name)
    if path.exists():
        raise ValidationFailed("name", f"a key named {name!r} already exists at {path}")
    account: LocalAccount = Account.create()
    keystore = Account.encrypt(account.key, password, kdf="scrypt", iterations=scrypt_n)
    keys_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(keystore))
    return KeyInfo(name, account.address, path), account


def list_keys(keys_dir: Path) -> list[KeyInfo]:
    """Every keystore in ``keys_dir``, sorted by name."""
    infos = []
    for path in sorted(keys_dir.glob("*.json")):
        address = json.loads(path.read_text()).get("address", "")
        infos.append(KeyInfo(path.stem, Web3.to_checksum_address("0x" + address.removeprefix("0x")), path))
    return infos


def key_info(keys_dir: Path, name: str) -> KeyInfo:
    """The keystore named ``name``; :class:`NotFound` names the file it looked for."""
    path = _path(keys_dir, name)
    if not path.exists():
        raise NotFound(f"no key named {name!r} (looked for {path}); create it with `credtrace keys new {name}`")
    address = json.loads(path.read_text())["address"]
    return KeyInfo(name, Web3.to_checksum_address("0x" + address.removeprefix("0x")), path)


def load_key(keys_dir: Path, name: str, password: str) -> LocalAccount:
    """Decrypt a keystore; a wrong password raises :class:`ValidationFailed` on ``password``."""
    info = key_info(keys_dir, name)
    try:
        secret = Account.decrypt(json.loads(info.path.read_text()), password)
    except ValueError as exc:
        raise ValidationFailed("password", f"does not open key {name!r}") from exc
    account: LocalAccount = Account.from_key(secret)
    return account


def load_or_create(keys_dir: Path, name: str, password: str, scrypt_n: int = STANDARD_SCRYPT_N) -> LocalAccount:
    """Load ``name``, creating it first if it does not exist."""
    if _path(keys_dir, name).exists():
        return load_key(keys_dir, name, password)
    return _create(keys_dir, name, password, scrypt_n)[1]
