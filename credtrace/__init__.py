"""credtrace: a permissioned ledger for shared e-commerce credit records and product traceability.

This package holds what every part shares: settings, errors, keys, the demo consortium and the CLI.
Chain work lives in :mod:`node_bridge`, HTTP in :mod:`api`.
"""

__version__ = "0.1.0"
