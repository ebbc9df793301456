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


class NotAuthenticated(CredtraceError):
    """The caller did not prove who it is (no, malformed, unknown or revoked API key); ``header`` names where."""

    def __init__(self, reason: str, header: str = "Authorization") -> None:
        super().__init__(f"{header}: {reason}")
        self.header = header
        self.reason = reason


class Gone(CredtraceError):
    """The thing asked for existed but was erased for good (a crypto-shredded natural person); ``subject`` names it."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"subject {subject}: {reason}")
        self.subject = subject
        self.reason = reason


class Conflict(CredtraceError):
    """The write clashes with what is already accepted (a used nonce, a record no longer active).

    ``field`` names the input at fault and ``error`` the contract's custom error the chain would answer with.
    """

    def __init__(self, field: str, error: str, reason: str) -> None:
        super().__init__(f"{field}: {reason} ({error})")
        self.field = field
        self.error = error
        self.reason = reason
