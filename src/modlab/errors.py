"""One exception type for every user-facing mistake, so entry points can print it as one line."""


class ModlabError(ValueError):
    """A problem with the user's input or environment; the message says what and how to fix it."""


def one_line(err: BaseException, limit: int = 400) -> str:
    """An exception as one log/status line: whitespace folded, the type named unless it is our own message."""
    text = " ".join(str(err).split()) or type(err).__name__
    text = text if isinstance(err, ModlabError) else f"{type(err).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
