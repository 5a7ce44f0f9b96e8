"""The one exception type that reaches a user as a single line instead of a traceback."""


class SecateursError(Exception):
    """An error caused by the user's input (a path, an argument, a file), explained in one line.

    The command line prints ``secateurs: error: <message>`` and exits with code 2. Library users
    catch it like any other exception.
    """


def first_line(error: BaseException, limit: int = 200, fallback: str | None = None) -> str:
    """The first line of ``error``'s message, cut to ``limit`` characters, for a one-line
    :class:`SecateursError` that names a library's failure; ``fallback`` (default: the
    exception's type name) when the message is empty."""
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__ if fallback is None else fallback
    return lines[0][:limit]
