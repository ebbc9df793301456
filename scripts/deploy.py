"""Deploy the credtrace contracts with the bootstrap consortium of ``config/consortium.yaml``.

Run it with ape on any network ape knows (``ape run deploy --network ethereum:local:foundry``) or through the
CLI (``credtrace deploy``). Both write ``<data dir>/deployments/<chain_id>.json``; running again reuses it.
"""

from __future__ import annotations

import json


def main() -> None:
    """ape entry point: deploy through the network ape is connected to."""
    from ape import networks

    from credtrace.settings import get_settings
    from credtrace.system import ensure_deployment

    w3 = networks.provider.web3
    deployment, created = ensure_deployment(get_settings(), w3)
    print(json.dumps({"created": created, **deployment.model_dump()}, indent=2))
