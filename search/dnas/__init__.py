"""DNAS: a constrained, latency-aware architecture search over mcuprof's search spaces.

::

    from profiler_client.client import Client
    from search.dnas import SearchConfig, run_search

    with Client("http://127.0.0.1:8000") as api:
        result = run_search(SearchConfig(space="kws", data="synth:kws",
                                         devices=["virtual:nucleo-f446re"], latency_ms=20,
                                         max_width=32), client=api, progress=print)
    print(result.report())

Modules: :mod:`~search.dnas.relaxed` (the relaxed operator list and expected costs),
:mod:`~search.dnas.graph` (the plan compiler's exact figures, without TensorFlow),
:mod:`~search.dnas.latency` (the server's fits as latency models), :mod:`~search.dnas.costs`
(costs and budgets per device), :mod:`~search.dnas.supernet`, :mod:`~search.dnas.search`
(the loop), :mod:`~search.dnas.train` (final training, QAT, export),
:mod:`~search.dnas.record` (the run on the server) and :mod:`~search.dnas.run`
(:func:`run_search`). ``docs/dnas.md`` is the user's guide.
"""

from __future__ import annotations

from search.dnas.costs import ArchCosts, Budget, CostModel, budget_for
from search.dnas.latency import LatencyModel
from search.dnas.run import run_search
from search.dnas.search import Candidate, SearchConfig, SearchResult

__all__ = ["ArchCosts", "Budget", "Candidate", "CostModel", "LatencyModel", "SearchConfig",
           "SearchResult", "budget_for", "run_search"]
