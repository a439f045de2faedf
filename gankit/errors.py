"""Errors a user can cause. The CLI prints them as one line and exits with status 2."""


class GankitError(Exception):
    """A problem with the user's input: config, names, files. Never a bug in gankit."""


class ConfigError(GankitError):
    """An invalid configuration: unknown key or name, wrong type, value out of range."""


class ParamError(ValueError):
    """Raised by a component factory about one of its own parameters; the registry adds where it lives."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param} {message}")
        self.param = param
        self.message = message


class TrainingDiverged(GankitError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""
