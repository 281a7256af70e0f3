"""What the command line's exit codes mean, which failures need a fix before a retry can succeed, and how a
foreign error text is put into one of ours."""

from __future__ import annotations

#: The command line's exit codes (docs/configuration.md shows the same table; tests/test_exit_codes.py checks
#: both against each other and every path against them).
EXIT_CODES: dict[int, str] = {
    0: "done: everything read was written (check: every required check passed)",
    1: "the run failed part way or a service kept failing; the cursor stays before what was not written, so "
       "running again continues (check: a required check failed)",
    2: "fix something first: a variable, the command line, the credentials or their secret, a Looker setting "
       "or permission, or a cursor store that cannot be written; running again fails the same way until then",
    130: "interrupted (Ctrl-C); run the same command again to continue",
}
OK, FAILED, FIX_FIRST, INTERRUPTED = 0, 1, 2, 130


class NeedsFix(Exception):
    """Mixed into an error that a retry cannot cure: bad configuration, credentials, a setting or a permission."""


def exit_code(error: BaseException) -> int:
    """The exit code of a failure: 2 when it, or what caused it, needs a fix first; else 1."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, NeedsFix):
            return FIX_FIRST
        if isinstance(seen, KeyboardInterrupt):
            return INTERRUPTED
        seen = seen.__cause__
    return FAILED


def one_line(text: object, limit: int = 300) -> str:
    """A foreign error text (a server's, a library's) on one line, cut at ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "…"
