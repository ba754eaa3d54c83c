"""The exceptions strumlab raises, each carrying the library's one-line message."""


class StrumlabError(Exception):
    """Base of every strumlab error."""


class InvalidArgument(StrumlabError, ValueError):
    """A bad argument, option value, configuration or model."""


class NotFound(StrumlabError, FileNotFoundError):
    """A file, model or dataset that does not exist (or is not fetched yet)."""
