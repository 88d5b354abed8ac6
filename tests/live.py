"""A census loaded the way production loads it: a real sync from the fake SODA server."""

from collections.abc import Callable

from tests.fakes.soda import FakeSodaServer
from trees import sync
from trees.models import SyncRun
from trees.socrata import SocrataClient


def sync_census(
    start_server: Callable[..., FakeSodaServer], *, rows: int, seed: int = 7
) -> SyncRun:
    """Start a fake SODA server with `rows` rows and sync them all into the test database."""
    server = start_server(rows=rows, seed=seed)
    client = SocrataClient(server.url, backoff_factor=0.001, backoff_max=0.01)
    run = sync.run(
        source=sync.SocrataSource(client=client, dataset=server.dataset), dataset=server.dataset
    )
    assert run.status == SyncRun.Status.SUCCEEDED, run.error_message
    assert run.rows_inserted == rows
    return run
