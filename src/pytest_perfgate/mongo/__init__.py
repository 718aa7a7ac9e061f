"""MongoDB integration: backends (URI, Docker, local mongod, mongomock), command capture, query
budgets (``queries``, ``docs_examined``, ``collscan``), N+1 detection, index advice, profiling.

The pytest wiring is :mod:`pytest_perfgate.mongo.plugin`; everything else here is pytest-free.
"""

from __future__ import annotations

from .advisor import Advice, QueryPattern, advise, pattern_of, reconcile
from .backends import BACKENDS, Backend, Capabilities, MongoSettings, Selection, choose, start
from .capture import CaptureHub, MongomockCapture, QueryLog, QueryRecord, Repeat, find_repeats
from .explain import ExplainSummary, summarize
from .queries import Queries

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
