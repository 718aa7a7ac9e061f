"""MongoDB integration: backends (URI, Docker, local mongod, mongomock), command capture, query
budgets (``queries``, ``docs_examined``, ``collscan``), N+1 detection, index advice, profiling.

The pytest wiring is :mod:`pytest_perfgate.mongo.plugin`; everything else here is pytest-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_module

if TYPE_CHECKING:
    from .advisor import Advice as Advice
    from .advisor import QueryPattern as QueryPattern
    from .advisor import advise as advise
    from .advisor import pattern_of as pattern_of
    from .advisor import reconcile as reconcile
    from .backends import BACKENDS as BACKENDS
    from .backends import Backend as Backend
    from .backends import Capabilities as Capabilities
    from .backends import MongoSettings as MongoSettings
    from .backends import Selection as Selection
    from .backends import choose as choose
    from .backends import start as start
    from .capture import CaptureHub as CaptureHub
    from .capture import MongomockCapture as MongomockCapture
    from .capture import QueryLog as QueryLog
    from .capture import QueryRecord as QueryRecord
    from .capture import Repeat as Repeat
    from .capture import find_repeats as find_repeats
    from .explain import ExplainSummary as ExplainSummary
    from .explain import summarize as summarize
    from .queries import Queries as Queries

#: the public names, name -> the submodule defining it (imported on first use); ``__all__``,
#: ``__getattr__`` and ``__dir__`` come from it
_EXPORTS = {
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
}

__getattr__, __dir__ = lazy_module(__name__, _EXPORTS)

__all__ = list(_EXPORTS)
