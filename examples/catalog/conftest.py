import pytest
from catalog import Catalog


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.generate(20_000)
