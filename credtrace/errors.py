"""One exception tree for credtrace; each message names the value at fault.

The API maps these to HTTP codes in one handler (see ``api/errors.py``).
"""


class CredtraceError(Exception):
    """Base of every error credtrace raises on purpose."""


class ValidationFailed(CredtraceError):
    """Input is malformed; ``field`` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(CredtraceError):
    """The thing asked for does not exist."""


class NotAuthorised(CredtraceError):
    """The caller or signer may not do this."""


class ChainUnavailable(CredtraceError):
    """The chain node cannot be reached or did not answer in time."""


class ToolchainError(CredtraceError):
    """The compiler or the local node is missing or failed."""


class ContractReverted(CredtraceError):
    """A transaction or call reverted; ``error`` is the decoded custom error name, if known."""

    def __init__(self, error: str, args: tuple[object, ...] = (), tx_hash: str | None = None) -> None:
        rendered = ", ".join(repr(a) for a in args)
        super().__init__(f"{error}({rendered})" + (f" in {tx_hash}" if tx_hash else ""))
        self.error = error
        self.args_ = args
        self.tx_hash = tx_hash
