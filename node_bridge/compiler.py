"""Compile the Solidity contracts offline with py-solc-x over the solc-js wrapper (``scripts/solc``).

Artifacts (ABI and bytecode per contract) go to ``build/contracts/`` (ignored by git). They are rebuilt
when any source, the compiler version or the settings change: :func:`load_artifacts` compiles if stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import solcx

from credtrace.errors import ToolchainError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = PROJECT_ROOT / "contracts"
BUILD_DIR = PROJECT_ROOT / "build" / "contracts"
SOLC_WRAPPER = PROJECT_ROOT / "scripts" / "solc"
SOLC_VERSION = "0.8.28"
EVM_VERSION = "cancun"
REMAPPINGS = ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"]
OPTIMIZER_RUNS = 200
_STAMP = "stamp.json"


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: its ABI, creation bytecode and the hash of its ABI."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str

    @property
    def abi_hash(self) -> str:
        canonical = json.dumps(self.abi, sort_keys=True, separators=(",", ":")).encode()
        return "0x" + hashlib.sha256(canonical).hexdigest()


def solc_binary() -> Path:
    """The solc-compatible executable to use: ``CREDTRACE_SOLC`` or the project's wrapper."""
    binary = Path(os.environ.get("CREDTRACE_SOLC", SOLC_WRAPPER))
    if not binary.exists():
        raise ToolchainError(f"solc wrapper not found at {binary}")
    if not (PROJECT_ROOT / "node_modules" / "solc").exists() and binary == SOLC_WRAPPER:
        raise ToolchainError("npm package 'solc' is missing: run `npm ci` (or `make deps`)")
    return binary


def _sources() -> dict[str, Path]:
    return {p.relative_to(PROJECT_ROOT).as_posix(): p for p in sorted(CONTRACTS_DIR.rglob("*.sol"))}


def _settings() -> dict[str, Any]:
    return {
        "remappings": REMAPPINGS,
        "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
        "evmVersion": EVM_VERSION,
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
    }


def source_fingerprint() -> str:
    """Hash of every contract source, the compiler version and the settings."""
    digest = hashlib.sha256()
    digest.update(SOLC_VERSION.encode())
    digest.update(json.dumps(_settings(), sort_keys=True).encode())
    for source_id, path in _sources().items():
        digest.update(source_id.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _is_fresh(build_dir: Path, fingerprint: str) -> bool:
    stamp = build_dir / _STAMP
    if not stamp.exists():
        return False
    return bool(json.loads(stamp.read_text()).get("fingerprint") == fingerprint)


def compile_contracts(build_dir: Path = BUILD_DIR, force: bool = False) -> dict[str, Artifact]:
    """Compile ``contracts/`` into ``build_dir`` unless it is already up to date."""
    fingerprint = source_fingerprint()
    if not force and _is_fresh(build_dir, fingerprint):
        return _read_artifacts(build_dir)
    sources = _sources()
    standard_input = {
        "language": "Solidity",
        "sources": {sid: {"content": path.read_text()} for sid, path in sources.items()},
        "settings": _settings(),
    }
    try:
        output = solcx.compile_standard(
            standard_input,
            solc_binary=solc_binary(),
            base_path=str(PROJECT_ROOT),
            allow_paths=[str(PROJECT_ROOT)],
        )
    except solcx.exceptions.SolcError as exc:
        raise ToolchainError(f"compilation failed: {exc}") from exc
    build_dir.mkdir(parents=True, exist_ok=True)
    for stale in build_dir.glob("*.json"):
        stale.unlink()
    artifacts: dict[str, Artifact] = {}
    for source_id, contracts in output.get("contracts", {}).items():
        if source_id not in sources:
            continue
        for name, data in contracts.items():
            artifacts[name] = Artifact(name, data["abi"], "0x" + data["evm"]["bytecode"]["object"])
            payload = {
                "contractName": name,
                "sourceId": source_id,
                "abi": data["abi"],
                "bytecode": artifacts[name].bytecode,
            }
            (build_dir / f"{name}.json").write_text(json.dumps(payload, indent=1))
    (build_dir / _STAMP).write_text(json.dumps({"fingerprint": fingerprint, "solc": SOLC_VERSION}))
    _cached_artifacts.cache_clear()
    return artifacts


def _read_artifacts(build_dir: Path) -> dict[str, Artifact]:
    artifacts = {}
    for path in sorted(build_dir.glob("*.json")):
        if path.name == _STAMP:
            continue
        data = json.loads(path.read_text())
        artifacts[data["contractName"]] = Artifact(data["contractName"], data["abi"], data["bytecode"])
    return artifacts


@cache
def _cached_artifacts(fingerprint: str) -> dict[str, Artifact]:
    return compile_contracts()


def load_artifacts() -> dict[str, Artifact]:
    """All compiled contracts, compiling first if the build folder is missing or stale."""
    return _cached_artifacts(source_fingerprint())


def artifact(name: str) -> Artifact:
    """One compiled contract by name."""
    artifacts = load_artifacts()
    if name not in artifacts:
        raise ToolchainError(f"no contract named {name!r} in contracts/ (have: {', '.join(sorted(artifacts))})")
    return artifacts[name]
