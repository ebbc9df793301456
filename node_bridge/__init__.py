"""Everything that touches the chain: compiler, chain providers, deployment, contract clients."""
