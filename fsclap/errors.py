"""Errors the CLI turns into a one-line message and a non-zero exit."""

#: Exit codes of every command (docs/design.md): 0 everything done; 3 finished, but some items
#: failed (recorded where the command says); 2 bad input or configuration; 1 an internal error.
EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_SOME_FAILED = 0, 1, 2, 3


class FsclapError(Exception):
    """Bad input or a missing resource. The message is shown to the user as one line."""

    exit_code = EXIT_BAD_INPUT


class MissingModelError(FsclapError):
    """A model file the chosen profile needs is not on disk."""

    def __init__(self, what: str, path, hint: str = ""):
        self.path = path
        msg = f"{what} not found at {path}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)
