"""What a gateway keeps between collections: nothing that only the cycle collector could free.

The exporter freezes what lives after its collections out of the collector's sight
(``freezer``), so an object that is freed only by the cycle collector and happens to be alive
at a freeze is never freed: a collection that left a reference cycle behind would leak its
readings at every scrape.
"""

from __future__ import annotations

import gc
from collections import Counter

import pytest
import requests_mock
from conftest import Clocks
from test_client import METERED, TOKEN_ERA, Gateway, client_for, token_for


@pytest.mark.parametrize("routes", [METERED, TOKEN_ERA], ids=["digest", "token"])
def test_a_collection_leaves_no_reference_cycle(routes) -> None:
    clocks = Clocks()
    with requests_mock.Mocker() as m:
        Gateway(m, dict(routes)).install()
        client = client_for(clocks, token=token_for(clocks) if routes is TOKEN_ERA else None)
        client.collect(timeout=5)  # detection, the keepers, the first of everything
        clocks.advance(61)
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(3):
                snapshot = client.collect(timeout=5)
                assert snapshot.up
                clocks.advance(61)
            gc.collect()
            left = Counter(type(o).__qualname__ for o in gc.garbage)
        finally:
            gc.garbage.clear()
            gc.set_debug(0)
            gc.enable()
        client.close()
    assert left == Counter()
