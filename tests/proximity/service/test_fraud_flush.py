"""The embedded service writes the campaign fraud gate's last pings behind, from a background
task every ``fraud_flush_s``, never on the ingest path (tens of thousands of rows at a high ping
rate took seconds there)."""

from proximity.service.settings import Settings
from tests.proximity.service.support import ADMIN_KEY, wait_until


def test_last_pings_reach_sqlite_from_the_background_task(make_client, tmp_path):
    client = make_client(Settings(data_dir=tmp_path, admin_key=ADMIN_KEY, min_ts=0, fraud_flush_s=0.05))
    rt = client.runtime
    assert "fraud-flush" in [t.get_name() for t in rt.tasks]
    gate = rt.campaigns.fraud
    ping = {"device_id": "p1", "ts": 5, "lon": 10.75, "lat": 59.91}
    assert client.post("/v1/pings", json={"pings": [ping]}).status_code == 200
    assert wait_until(lambda: not gate._dirty)
    with gate._db_lock:
        assert gate._db.execute("SELECT ts, lon, lat FROM fraud WHERE device_id = 'p1'").fetchone() == (
            5.0,
            10.75,
            59.91,
        )
