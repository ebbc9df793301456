"""The offline Solidity toolchain: the solc-js wrapper serves py-solc-x and ape-solidity, with no network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import solcx

from node_bridge import compiler
from node_bridge.compiler import PROJECT_ROOT, SOLC_WRAPPER, compile_contracts, source_fingerprint


def test_wrapper_reports_the_pinned_version_to_py_solc_x() -> None:
    assert str(solcx.wrapper.get_solc_version(SOLC_WRAPPER)) == compiler.SOLC_VERSION


def test_wrapper_keeps_stdout_pure_json() -> None:
    source = 'pragma solidity 0.8.28; import "@openzeppelin/contracts/utils/Strings.sol"; contract A {}'
    request = {
        "language": "Solidity",
        "sources": {"A.sol": {"content": source}},
        "settings": {"outputSelection": {"A.sol": {"A": ["abi"]}}},
    }
    result = subprocess.run(
        [str(SOLC_WRAPPER), "--standard-json"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
    )
    output = json.loads(result.stdout)
    assert output["contracts"]["A.sol"]["A"]["abi"] == []
    assert not [e for e in output.get("errors", []) if e["severity"] == "error"]


def test_compile_writes_artifacts_and_recompiles_only_when_stale(tmp_path: Path) -> None:
    build = tmp_path / "build"
    artifacts = compile_contracts(build)
    assert "Consortium" in artifacts
    assert artifacts["Consortium"].bytecode.endswith("0033"), "creation code should end in solc metadata"
    written = json.loads((build / "Consortium.json").read_text())
    assert written["abi"] == artifacts["Consortium"].abi
    stamp = (build / "stamp.json").stat().st_mtime_ns
    compile_contracts(build)
    assert (build / "stamp.json").stat().st_mtime_ns == stamp, "an up-to-date build was compiled again"
    (build / "stamp.json").write_text(json.dumps({"fingerprint": "stale"}))
    compile_contracts(build)
    assert json.loads((build / "stamp.json").read_text())["fingerprint"] == source_fingerprint()


def test_ape_compile_works_offline(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("contracts", "ape-config.yaml"):
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name)
        else:
            shutil.copy(source, project / name)
    (project / "node_modules").symlink_to(PROJECT_ROOT / "node_modules")
    solcx_dir = tmp_path / "solcx"
    solcx_dir.mkdir()
    (solcx_dir / f"solc-v{compiler.SOLC_VERSION}").symlink_to(SOLC_WRAPPER)
    env = {**os.environ, "SOLCX_BINARY_PATH": str(solcx_dir), "HOME": str(tmp_path)}
    ape = Path(os.environ.get("VIRTUAL_ENV", PROJECT_ROOT / ".venv")) / "bin" / "ape"
    result = subprocess.run([str(ape), "compile"], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((project / ".build" / "__local__.json").read_text())
    assert "Consortium" in manifest["contractTypes"]
