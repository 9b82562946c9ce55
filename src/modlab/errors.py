"""One exception type for every user-facing mistake, so entry points can print it as one line."""


class ModlabError(ValueError):
    """A problem with the user's input or environment; the message says what and how to fix it."""
