"""The one exception type that reaches a user as a single line instead of a traceback."""


class SecateursError(Exception):
    """An error caused by the user's input (a path, an argument, a file), explained in one line.

    The command line prints ``secateurs: error: <message>`` and exits with code 2. Library users
    catch it like any other exception.
    """
