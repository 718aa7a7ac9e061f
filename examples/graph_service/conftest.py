from __future__ import annotations

import mongomock
import pytest
from graphstore import FixedGraph, NaiveGraph


@pytest.fixture
def db() -> mongomock.Database:
    """A fresh in-process database (mongomock: each call is atomic; no transactions)."""
    return mongomock.MongoClient().graph_service


@pytest.fixture
def naive(db: mongomock.Database) -> NaiveGraph:
    return NaiveGraph(db)


@pytest.fixture
def fixed(db: mongomock.Database) -> FixedGraph:
    return FixedGraph(db)
