"""The pjsua2 binding, or None when it is not installed (imported once, here)."""

from __future__ import annotations

__all__ = ["pj"]

try:
    import pjsua2 as pj
except ImportError:  # pragma: no cover - depends on the installation
    pj = None
