"""The ``credtrace`` command line: bring the system up, run the chain, deploy, manage keys, show status."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from credtrace.cli_logistics import logistics_app  # logistics credit (C6)
from credtrace.cli_payments import payment_app  # online payment management (C11)
from credtrace.cli_protection import protection_app  # consumer protection (C7)
from credtrace.cli_records import record_app
from credtrace.cli_supervision import supervision_app  # inter-department supervision (C12)
from credtrace.errors import CredtraceError
from credtrace.keys import list_keys, new_key
from credtrace.settings import get_settings

app = typer.Typer(help="credtrace: shared e-commerce credit records and product traceability.", no_args_is_help=True)
chain_app = typer.Typer(help="The local anvil node (CREDTRACE_CHAIN=anvil).", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys: encrypted keystores in <data dir>/keys/.", no_args_is_help=True)
index_app = typer.Typer(help="The SQL index of the chain: rebuild it, check it.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")
app.add_typer(keys_app, name="keys")
app.add_typer(index_app, name="index")
apikey_app = typer.Typer(  # access
    help="Members' API keys (Authorization: Bearer ctk_…), stored hashed in the SQL store.", no_args_is_help=True
)
app.add_typer(apikey_app, name="apikey")
app.add_typer(record_app, name="record")
app.add_typer(protection_app, name="protection")  # consumer protection (C7)
app.add_typer(supervision_app, name="supervision")  # inter-department supervision (C12)
app.add_typer(logistics_app, name="logistics")  # logistics credit (C6)
app.add_typer(payment_app, name="payments")  # online payment management (C11)
console = Console(stderr=True)
out = Console()


def _fail(exc: CredtraceError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


@app.command()
def up(api: Annotated[bool, typer.Option(help="Serve the API after bringing the chain up.")] = True) -> None:
    """Start everything: the chain (anvil by default), the contracts (deployed once), the demo, the API."""
    from credtrace.system import ensure_deployment, start_chain

    settings = get_settings()
    try:
        with console.status("Starting the chain"):
            w3, started = start_chain(settings)
        console.print(f"chain: {settings.rpc_url} (chain id {w3.eth.chain_id}, block {w3.eth.block_number})")
        with console.status("Compiling and deploying the contracts"):
            deployment, created = ensure_deployment(settings, w3)
    except CredtraceError as exc:
        raise _fail(exc) from exc
    verb = "deployed" if created else "reused"
    for name, contract in deployment.contracts.items():
        console.print(f"{name}: {contract.address} ({verb}, block {contract.block_number})")
    demo_file = settings.data_path / "demo.json"
    if demo_file.exists():
        console.print(f"demo consortium: keys in {settings.keys_dir} (password 'demo'); details in {demo_file}")
        api_keys = settings.data_path / "api-keys.json"
        if api_keys.exists():
            console.print(f"demo API keys (Authorization: Bearer …) for each member in {api_keys}")
    if not api:
        return
    import uvicorn

    from api.app import create_app
    from credtrace.supervisor import Supervisor

    app_ = create_app(settings)  # applies the store's migrations
    supervisor = Supervisor(settings.data_path / "logs")
    supervisor.start()
    console.print(f"relayer and indexer running (logs in {settings.data_path / 'logs'})")
    base = f"http://{settings.api_host}:{settings.api_port}"
    console.print(f"API: {base}  (OpenAPI at {base}/docs, health at {base}/healthz); Ctrl-C stops")
    trace = json.loads(demo_file.read_text()).get("trace") if demo_file.exists() else None
    if trace:  # traceability: the scan page of a delivered demo bottle
        console.print(f"scan a trace code: {base}{trace['scan']}", soft_wrap=True)  # one line, to copy
    try:
        uvicorn.run(app_, host=settings.api_host, port=settings.api_port, log_level="info")
    finally:
        supervisor.stop()
        if started:
            from node_bridge.chain import AnvilNode

            AnvilNode.from_settings(settings).stop()
            console.print("chain stopped (state saved)")


@chain_app.command("start")
def chain_start() -> None:
    """Start the local anvil node in the background (reuses it if already running)."""
    from node_bridge.chain import AnvilNode

    settings = get_settings()
    node = AnvilNode.from_settings(settings)
    try:
        w3 = node.start()
    except CredtraceError as exc:
        raise _fail(exc) from exc
    out.print(f"anvil running at {node.url} (pid {node.pid()}, block {w3.eth.block_number}, state {node.state_file})")


@chain_app.command("stop")
def chain_stop() -> None:
    """Stop the local anvil node cleanly (its state is saved)."""
    from node_bridge.chain import AnvilNode

    stopped = AnvilNode.from_settings(get_settings()).stop()
    out.print("anvil stopped" if stopped else "anvil was not running")


@chain_app.command("status")
def chain_status() -> None:
    """Is the local anvil node running."""
    from node_bridge.chain import AnvilNode

    node = AnvilNode.from_settings(get_settings())
    running = node.is_running()
    out.print(f"anvil {'running' if running else 'stopped'} at {node.url}")
    raise typer.Exit(0 if running else 1)


@app.command()
def compile(force: Annotated[bool, typer.Option(help="Recompile even if up to date.")] = False) -> None:
    """Compile contracts/ offline into build/contracts/ (skipped when nothing changed)."""
    from node_bridge.compiler import BUILD_DIR, compile_contracts

    try:
        with console.status("Compiling contracts with solc-js"):
            artifacts = compile_contracts(force=force)
    except CredtraceError as exc:
        raise _fail(exc) from exc
    for name, item in sorted(artifacts.items()):
        out.print(f"{name}: abi {item.abi_hash[:18]}…, {len(item.bytecode) // 2 - 1} bytes of creation code")
    out.print(f"artifacts in {BUILD_DIR}")


@app.command()
def deploy() -> None:
    """Deploy the contracts on the configured chain, or reuse the existing deployment."""
    from credtrace.system import ensure_deployment
    from node_bridge.chain import connect

    settings = get_settings()
    try:
        w3 = connect(settings)
        with console.status("Compiling and deploying"):
            deployment, created = ensure_deployment(settings, w3)
    except CredtraceError as exc:
        raise _fail(exc) from exc
    out.print_json(json.dumps({"created": created, **deployment.model_dump()}))


@keys_app.command("new")
def keys_new(
    name: str,
    password: Annotated[str, typer.Option(prompt=True, confirmation_prompt=True, hide_input=True)],
) -> None:
    """Create a new signing key, stored encrypted as <data dir>/keys/NAME.json."""
    try:
        info = new_key(get_settings().keys_dir, name, password)
    except CredtraceError as exc:
        raise _fail(exc) from exc
    out.print(f"{info.name} {info.address} {info.path}")


@keys_app.command("list")
def keys_list() -> None:
    """List the keys in the data directory (names and addresses; no secret is read)."""
    keys = list_keys(get_settings().keys_dir)
    if not out.is_terminal:  # plain lines for scripts and pipes
        for info in keys:
            print(info.name, info.address, info.path, sep="\t")
        return
    table = Table("name", "address", "file")
    for info in keys:
        table.add_row(info.name, info.address, str(info.path))
    out.print(table)


@app.command()
def status() -> None:
    """Show the chain, the deployment and the consortium's members."""
    from node_bridge.chain import connect
    from node_bridge.consortium import ConsortiumClient
    from node_bridge.deploy import load_deployment

    settings = get_settings()
    try:
        w3 = connect(settings)
    except CredtraceError as exc:
        raise _fail(exc) from exc
    out.print(f"chain {settings.rpc_url}: chain id {w3.eth.chain_id}, head block {w3.eth.block_number}")
    deployment = load_deployment(w3, settings.deployments_dir)
    if deployment is None:
        out.print("not deployed on this chain: run `credtrace deploy`")
        raise typer.Exit(1)
    for name, contract in deployment.contracts.items():
        out.print(f"{name}: {contract.address} (block {contract.block_number})")
    client = ConsortiumClient.read_only(w3, deployment.contract(w3, "Consortium"))
    out.print(f"threshold: {client.threshold()} regulator approvals")


def _bridge():  # type: ignore[no-untyped-def]
    """Settings, chain connection, deployment and store, for the index and bridge commands."""
    from node_bridge.chain import connect
    from node_bridge.deploy import load_deployment
    from node_bridge.store import open_store

    settings = get_settings()
    w3 = connect(settings)
    deployment = load_deployment(w3, settings.deployments_dir)
    if deployment is None:
        raise typer.BadParameter("no deployment on this chain: run `credtrace deploy` first")
    return settings, w3, deployment, open_store(settings.database)


@index_app.command("rebuild")
def index_rebuild() -> None:
    """Drop the index and rebuild it from the chain alone."""
    from node_bridge.rebuild import rebuild

    try:
        settings, w3, deployment, engine = _bridge()
        with console.status("Rebuilding the index from the chain"):
            events = rebuild(engine, w3, deployment, settings)
    except CredtraceError as exc:
        raise _fail(exc) from exc
    out.print(f"index rebuilt: {events} events up to block {w3.eth.block_number}")


@index_app.command("check")
def index_check() -> None:
    """Rebuild into a scratch database and report every difference from the live index (exit 1 if any)."""
    from node_bridge.rebuild import check

    try:
        settings, w3, deployment, engine = _bridge()
        with console.status("Rebuilding into a scratch database and comparing"):
            differences = check(engine, w3, deployment, settings)
    except CredtraceError as exc:
        raise _fail(exc) from exc
    for difference in differences:
        out.print(difference)
    out.print(f"{len(differences)} difference(s)" if differences else "index matches the chain")
    raise typer.Exit(1 if differences else 0)


@apikey_app.command("create")
def apikey_create(
    member: Annotated[str, typer.Option(help="A member's 0x id, its name in the index, or a demo name (qilu-mall).")],
    label: Annotated[str, typer.Option(help="What the key is for (shown by `apikey list`).")] = "",
) -> None:
    """Create an API key for a member and print it once (only its hash is kept)."""
    from api.auth import create_api_key, resolve_member
    from credtrace.demo import demo_directory
    from node_bridge.store import open_store, session_scope

    settings = get_settings()
    try:
        with session_scope(open_store(settings.database)) as session:
            member_id, name = resolve_member(session, member, demo_directory(settings))
            key, record = create_api_key(session, member_id, label)
    except CredtraceError as exc:
        raise _fail(exc) from exc
    console.print(f"API key {record.id} for {name} ({member_id}); it is shown once, keep it now:")
    print(key)


@apikey_app.command("list")
def apikey_list() -> None:
    """List API keys: id, member, label, created, last used, revoked (no secret is shown or kept)."""
    from api.auth import list_api_keys
    from node_bridge.models import Member
    from node_bridge.store import open_store, session_scope

    with session_scope(open_store(get_settings().database)) as session:
        rows = []
        for record in list_api_keys(session):
            member = session.get(Member, record.member_id)
            when = [t.isoformat(timespec="seconds") if t else "-" for t in (record.last_used_at, record.revoked_at)]
            rows.append(
                [
                    record.id,
                    member.name if member else record.member_id,
                    record.label or "-",
                    record.created_at.isoformat(timespec="seconds"),
                    *when,
                ]
            )
    if not out.is_terminal:  # plain lines for scripts and pipes
        for row in rows:
            print(*row, sep="\t")
        return
    table = Table("id", "member", "label", "created", "last used", "revoked")
    for row in rows:
        table.add_row(*row)
    out.print(table)


@apikey_app.command("revoke")
def apikey_revoke(key_id: str) -> None:
    """Revoke an API key; running API processes refuse it within CREDTRACE_API_KEY_CACHE_SECONDS."""
    from api.auth import revoke_api_key
    from node_bridge.store import open_store, session_scope

    settings = get_settings()
    try:
        with session_scope(open_store(settings.database)) as session:
            record = revoke_api_key(session, key_id)
    except CredtraceError as exc:
        raise _fail(exc) from exc
    assert record.revoked_at is not None
    out.print(
        f"API key {record.id} revoked at {record.revoked_at.isoformat(timespec='seconds')}; "
        f"API processes refuse it within {settings.api_key_cache_seconds:g} s"
    )


@app.command()
def relayer() -> None:
    """Run the relayer in the foreground (``credtrace up`` runs it for you)."""
    from node_bridge.relayer import main as relayer_main

    relayer_main()


@app.command()
def indexer() -> None:
    """Run the indexer in the foreground (``credtrace up`` runs it for you)."""
    from node_bridge.indexer import main as indexer_main

    indexer_main()


def main() -> None:
    try:
        app()
    except CredtraceError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
