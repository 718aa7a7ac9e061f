"""MongoDB integration: backends (URI, Docker, local mongod, mongomock), command capture, query
budgets (``queries``, ``docs_examined``, ``collscan``), N+1 detection, index advice, profiling.

The pytest wiring is :mod:`pytest_perfgate.mongo.plugin`; everything else here is pytest-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .advisor import Advice, QueryPattern, advise, pattern_of, reconcile
    from .backends import BACKENDS, Backend, Capabilities, MongoSettings, Selection, choose, start
    from .capture import CaptureHub, MongomockCapture, QueryLog, QueryRecord, Repeat, find_repeats
    from .explain import ExplainSummary, summarize
    from .queries import Queries

__getattr__ = lazy_exports(
    __name__,
    {
        "Advice": "advisor",
        "QueryPattern": "advisor",
        "advise": "advisor",
        "pattern_of": "advisor",
        "reconcile": "advisor",
        "BACKENDS": "backends",
        "Backend": "backends",
        "Capabilities": "backends",
        "MongoSettings": "backends",
        "Selection": "backends",
        "choose": "backends",
        "start": "backends",
        "CaptureHub": "capture",
        "MongomockCapture": "capture",
        "QueryLog": "capture",
        "QueryRecord": "capture",
        "Repeat": "capture",
        "find_repeats": "capture",
        "ExplainSummary": "explain",
        "summarize": "explain",
        "Queries": "queries",
    },
)


__all__ = [
    "BACKENDS",
    "Advice",
    "Backend",
    "Capabilities",
    "CaptureHub",
    "ExplainSummary",
    "MongoSettings",
    "MongomockCapture",
    "Queries",
    "QueryLog",
    "QueryPattern",
    "QueryRecord",
    "Repeat",
    "Selection",
    "advise",
    "choose",
    "find_repeats",
    "pattern_of",
    "reconcile",
    "start",
    "summarize",
]
