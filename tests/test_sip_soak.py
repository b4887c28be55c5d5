"""Many calls in a row: nothing may pile up in the app process."""

from .sip import load, peer_result, read_stats, serving, stats_app

STATS_APP = stats_app(
    """
    from voip import runVoipClient

    async def handler(call):
        print("STATS " + json.dumps(stats()), flush=True)
        await call.playTone(440, 5)

    runVoipClient(handler)
    """
)


def test_250_calls_in_a_row_leave_nothing_behind(tmp_path):
    app_path = tmp_path / "app.py"
    app_path.write_text(STATS_APP)
    with serving(app_path) as app:
        result = peer_result(load(app.uri, "--calls", "250"), timeout=300)
    assert result["answered"] == 250, result
    stats = read_stats(app.log)
    assert len(stats) == 250
    early, late = stats[20], stats[-1]
    # At the start of a call only that call (and at most the previous one, ending) exist.
    for s in stats[1:]:
        assert s["calls"] <= 2 and s["sip_calls"] <= 2 and s["ports"] <= 2, s
    assert late["threads"] == early["threads"]
    assert late["fds"] <= early["fds"] + 2  # sockets are closed with their calls
    assert late["tasks"] <= early["tasks"] + 1
    # PJSIP's own caches grow by about 5 MB over the first ~150 calls (measured: the same
    # with one malloc arena), then memory is flat: a leak of even 15 kB a call shows here.
    assert late["rss_kb"] - early["rss_kb"] < 8 * 1024, (early, late)
    assert late["rss_kb"] - stats[175]["rss_kb"] < 1024, (stats[175], late)
