"""What a backend provides: it turns calls (simulated or real) into :class:`~voip.call.Call`
objects, feeds their bridges with frames and events, and runs the handler on each."""

from __future__ import annotations

import abc

from ..lifecycle import Handler

__all__ = ["Backend"]


class Backend(abc.ABC):
    """A source of calls. :meth:`run` serves them with ``handler`` until it is done."""

    @abc.abstractmethod
    async def run(self, handler: Handler) -> int:
        """Serve calls; return the process exit status (0: all went well)."""
