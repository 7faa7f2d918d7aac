"""Errors the CLI turns into a one-line message and a non-zero exit."""


class FsclapError(Exception):
    """Bad input or a missing resource. The message is shown to the user as one line."""

    exit_code = 2


class MissingModelError(FsclapError):
    """A model file the chosen profile needs is not on disk."""

    def __init__(self, what: str, path, hint: str = ""):
        self.path = path
        msg = f"{what} not found at {path}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)
