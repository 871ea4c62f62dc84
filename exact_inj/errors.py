"""Every exception a user of exact_inj may catch, in one place.

* :class:`InputError`: bad input (a file, a number, an option), one line.
* :class:`OperatorTooLarge`: a dense operator would be too big to build.
"""

from __future__ import annotations

import os

__all__ = ["InputError", "OperatorTooLarge"]

# Characters of one message before it is shortened (the path is always kept whole).
_MAX_MESSAGE = 1000


class InputError(ValueError):
    """Bad input, explained on one line: ``str(e)`` is ``"PATH: message"``.

    ``path`` is None when the input did not come from a file; ``str(e)`` is
    then just the message.  A ValueError, so that callers which wrap number
    parsing in ``except ValueError`` (and re-raise with their path) keep
    working with :func:`parse_exact`.

    >>> str(InputError("net.json", "layers[0].weight[1][0]: 'abc' is not a number"))
    "net.json: layers[0].weight[1][0]: 'abc' is not a number"
    >>> str(InputError(None, "two\\nlines"))
    'two lines'
    """

    def __init__(self, path: str | os.PathLike | None, message: str) -> None:
        self.path = None if path is None else os.fspath(path)
        # One line, whatever produced the message: callers print it as is.
        self.message = " ".join(str(message).split())
        if len(self.message) > _MAX_MESSAGE:
            # A message quoting hostile input (a 5000-digit number, a long
            # token) keeps its start and end and says how long it was.
            m = self.message
            self.message = f"{m[:_MAX_MESSAGE // 2]} ...[{len(m)} characters]... {m[-_MAX_MESSAGE // 4:]}"
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        return f"{' '.join(self.path.split())}: {self.message}"


class OperatorTooLarge(ValueError):
    """A route needs the dense operator of a convolution larger than
    :data:`~exact_inj.model.conv.MAX_OPERATOR_ENTRIES`; the engine answers
    ``unknown`` instead."""
