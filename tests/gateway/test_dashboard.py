"""The dashboard page in a real browser: Playwright driving Debian's Chromium
headless against a real gateway on a loopback port.

The README's test command installs Chromium when it is missing; without it
these tests fail with that instruction rather than being skipped.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from laneway.gateway import serve_in_thread

from .conftest import Server
from .test_serve_cli import free_port, start_serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 15_000  # generous: the first page load starts Chromium's caches


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `apt-get install chromium` (the README's test command does this)")
    with sync_playwright() as playwright:
        # --no-sandbox: the tests may run as root (CI), where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Refused WebSocket handshakes are logged too (expected while a server
    # restarts); what must never appear is a policy violation.
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    yield page
    context.close()
    assert errors == [], errors  # no script errors, no CSP violations


def restart_gateway(server: Server) -> None:
    """Stop the gateway (clients get 1001 "going away") and start a new one
    on the same port with the same engine, as an operator's restart does."""
    port = server.running.port
    server.running.stop()
    server.running = serve_in_thread(server.engine, msgspec.structs.replace(server.config, port=port), secret=None)


def submit_mix(server: Server, session: str, start: int, count: int) -> None:
    """`count` events into acme/`session`: every third a priority type, and
    one explicit level 2 and 3 in each run of eight."""
    for i in range(start, start + count):
        if i % 8 == 6:
            server.engine.submit("acme", session, "Alarm", {"i": i}, priority=2)
        elif i % 8 == 7:
            server.engine.submit("acme", session, "Restart", {"i": i}, priority=3)
        elif i % 3 == 0:
            server.engine.submit("acme", session, "Stop", {"i": i, "summary": f"done {i}"})
        else:
            server.engine.submit("acme", session, "PreToolUse", {"i": i, "tool_name": "Bash"}, source="user")


def expected_counts(server: Server) -> list[int]:
    counts = [0, 0, 0, 0]
    for tenant in server.engine.tenants():
        for session in server.engine.sessions(tenant):
            for event in server.engine.events(tenant, session, 0, 10_000):
                counts[event.priority] += 1
    return counts


def lane_rows(page: Page, lane: str) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        f"#lane-{lane} li",
        "rows => rows.map(r => ({session: r.dataset.session, seq: Number(r.dataset.seq), priority: Number(r.dataset.priority)}))",
    )


def check_lanes(page: Page, server: Server) -> None:
    """Every event once, in the lane of its priority, newest first per session."""
    priority, regular = lane_rows(page, "priority"), lane_rows(page, "regular")
    assert all(r["priority"] > 0 for r in priority) and all(r["priority"] == 0 for r in regular)
    for session in server.engine.sessions("acme"):
        history = server.engine.events("acme", session, 0, 10_000)
        for lane, rows in (("priority", priority), ("regular", regular)):
            shown = [r["seq"] for r in rows if r["session"] == session]
            wanted = [e.seq for e in reversed(history) if (e.priority > 0) == (lane == "priority")]
            assert shown == wanted, (session, lane)


def wait_received(page: Page, server: Server) -> None:
    counts = expected_counts(server)
    expect(page.locator("#received")).to_have_text(str(sum(counts)), timeout=WAIT_MS)
    for level, count in enumerate(counts):
        expect(page.locator(f"#count-{level}")).to_have_text(str(count))


def test_live_lanes_counters_detail_and_a_resume_after_a_gateway_restart(
    make_server: Callable[..., Server], page: Page, tmp_path: Path
) -> None:
    server = make_server()
    submit_mix(server, "s1", 0, 12)
    submit_mix(server, "s2", 0, 5)
    page.goto(f"{server.url}/?token={server.token('acme', 'subscribe')}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    expect(page.locator("#protocol")).to_have_text("v2")
    assert "token=" not in page.url  # taken out of the address bar
    wait_received(page, server)

    # Live events, including markup that must show as text.
    submit_mix(server, "s1", 12, 10)
    server.engine.submit("acme", "s2", "PreToolUse", {"tool_name": "<img src=x onerror=alert(1)>", "marker": "xss"})
    wait_received(page, server)
    check_lanes(page, server)
    assert page.locator("#lane-regular li .gist", has_text="<img src=x onerror=alert(1)>").count() == 1
    expect(page.locator("#sessions li")).to_have_count(2)

    # The detail view shows an event's metadata and payload.
    page.locator("#lane-priority li[data-session='s1'][data-seq='7']").click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-title")).to_have_text("Alarm · s1 #7")
    assert '"priority": 2' in page.locator("#detail-meta").inner_text()
    assert '"i": 6' in page.locator("#detail-payload").inner_text()

    # A forced disconnect: the gateway restarts; meanwhile events land in
    # known sessions and in a session the page has never seen.
    restart_gateway(server)
    submit_mix(server, "s1", 22, 9)
    submit_mix(server, "s3", 0, 6)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    wait_received(page, server)
    submit_mix(server, "s2", 6, 4)  # and live again after the resume
    wait_received(page, server)
    check_lanes(page, server)
    assert int(page.locator("#reconnects").inner_text()) >= 1
    assert page.evaluate("window.laneway.store.resumes") >= 1
    expect(page.locator("#duplicates")).to_have_text("0")
    expect(page.locator("#gap-count")).to_have_text("0")
    assert float(page.locator("#rate").inner_text()) >= 0

    # Filtering to one session.
    page.locator("#sessions li .name", has_text="s3").click()
    expect(page.locator("#lane-regular li[data-session='s1']")).to_have_count(0)
    rows = lane_rows(page, "priority") + lane_rows(page, "regular")
    assert {r["session"] for r in rows} == {"s3"} and len(rows) == 6
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def test_a_resume_past_max_replay_events_shows_the_gap(make_server: Callable[..., Server], page: Page) -> None:
    server = make_server(max_replay_events=5)
    submit_mix(server, "s1", 0, 3)
    page.goto(f"{server.url}/?token={server.token('acme', 'subscribe')}&tenant=acme")
    expect(page.locator("#received")).to_have_text("3", timeout=WAIT_MS)
    restart_gateway(server)
    submit_mix(server, "s1", 3, 20)  # seqs 4-23; a resume replays only the newest 5
    expect(page.locator("#gap-count")).to_have_text("1", timeout=WAIT_MS)
    expect(page.locator("#gap-list li")).to_contain_text("acme / s1: seq 4-18 (15 events) unavailable")
    expect(page.locator("#received")).to_have_text("8")
    seqs = sorted(r["seq"] for r in lane_rows(page, "priority") + lane_rows(page, "regular"))
    # Priority events inside the range are not replayed either: the gap covers them.
    assert seqs == [1, 2, 3, 19, 20, 21, 22, 23]


def test_falls_back_to_v1_against_a_server_without_v2(make_server: Callable[..., Server], page: Page) -> None:
    server = make_server(protocols=("laneway.v1.json",))
    submit_mix(server, "s1", 0, 8)
    page.goto(f"{server.url}/?token={server.token('acme', 'subscribe')}")
    expect(page.locator("#protocol")).to_have_text("v1 (no priorities)", timeout=WAIT_MS)
    expect(page.locator("#received")).to_have_text("8", timeout=WAIT_MS)
    submit_mix(server, "s1", 8, 4)
    expect(page.locator("#count-0")).to_have_text("12", timeout=WAIT_MS)  # v1 carries no priorities
    assert [r["seq"] for r in lane_rows(page, "regular")] == list(range(12, 0, -1))
    assert lane_rows(page, "priority") == []


def test_a_refused_token_is_said_plainly_and_not_retried(make_server: Callable[..., Server], page: Page) -> None:
    server = make_server()
    page.goto(f"{server.url}/?token=not-a-jwt&tenant=acme")
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline", timeout=WAIT_MS)
    expect(page.locator("#connection-detail")).to_contain_text("4001")
    assert page.locator("#reconnects").inner_text() == "0"


BUCKET_SCRIPT = """async () => {
  const { DualBucket } = await import("/static/buckets.js");
  const run = (options, events) => {
    const b = new DualBucket(options);
    for (const [seq, priority] of events) b.add({ seq, priority, payload: { seq } });
    return { priority: b.priority.newest(99).map(e => e.seq), regular: b.regular.newest(99).map(e => e.seq),
             counters: b.counters, bytes: b.bytes };
  };
  // 1-3 priority, then 4-9 regular, then priority 10-11
  const events = [[1, 1], [2, 2], [3, 1], [4, 0], [5, 0], [6, 0], [7, 0], [8, 0], [9, 0], [10, 3], [11, 1]];
  let bad = null;
  try { new DualBucket({ overflow: "drop_everything" }); } catch (e) { bad = e.message; }
  return {
    shared: run({ priorityMax: 3, regularMax: 3, overflow: "remove_oldest_regular" }, events),
    rings: run({ priorityMax: 3, regularMax: 3, overflow: "remove_oldest" }, events),
    reject: run({ priorityMax: 3, regularMax: 3, overflow: "reject_new" }, events),
    capped: run({ priorityMax: 100, regularMax: 100, maxBytes: 5 * 430 }, events),
    bad,
  };
}"""


def test_client_buckets_follow_the_engine_overflow_strategies(server: Server, page: Page) -> None:
    page.goto(f"{server.url}/api")  # any page of the origin, to import the module from
    got = page.evaluate(BUCKET_SCRIPT)
    # One shared room of 6: regular at most 3, priority borrows; oldest regular goes first.
    assert got["shared"]["priority"] == [11, 10, 3, 2, 1] and got["shared"]["regular"] == [9]
    assert got["rings"]["priority"] == [11, 10, 3] and got["rings"]["regular"] == [9, 8, 7]
    assert got["reject"]["priority"] == [3, 2, 1] and got["reject"]["regular"] == [6, 5, 4]
    assert got["reject"]["counters"]["rejected"] == 5
    # The memory cap (5 events of ~430 bytes) evicts oldest regular first, whatever the counts allow.
    assert got["capped"]["priority"] == [11, 10, 3, 2, 1] and got["capped"]["regular"] == []
    assert got["capped"]["bytes"] <= 5 * 430 and got["capped"]["counters"]["budgetEvicted"] == 6
    assert "unknown overflow strategy" in got["bad"]


def test_the_demo_url_that_serve_prints_opens_a_live_dashboard(tmp_path: Path, page: Page) -> None:
    """The README's main command, as a person uses it: start, open the URL."""
    port = free_port()
    proc, lines = start_serve(tmp_path / "data", port, "--demo")
    try:
        assert proc.stdout is not None
        while not any("dashboard:" in line for line in lines):
            lines.append(proc.stdout.readline())
        url = next(line for line in lines if "dashboard:" in line).split("dashboard: ")[1].strip()
        page.goto(url)
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        # The producer runs at ~20 events/s over two tenants: both show up, in both lanes.
        expect(page.locator("#sessions li .tenant", has_text="team-alpha").first).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#sessions li .tenant", has_text="team-beta").first).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#lane-priority li").first).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#lane-regular li").first).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#rate")).not_to_have_text("0.0", timeout=WAIT_MS)
        # Every prompt gets a streamed reply from the demo's assistant, then
        # the committed AssistantReply in the lanes.
        expect(page.locator("#stream-list li .text").first).to_contain_text("About", timeout=WAIT_MS * 2)
        expect(page.locator("li.event .type", has_text="AssistantReply").first).to_be_visible(timeout=WAIT_MS * 2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped cleanly" in out


def test_more_tenants_than_subscriptions_shows_the_most_recent_and_says_so(make_server: Callable[..., Server], page: Page) -> None:
    server = make_server()
    for i in range(18):
        server.engine.submit(f"t{i:02d}", "s", "T", {"i": i})
    page.goto(f"{server.url}/?token={server.token('*', 'subscribe')}")
    expect(page.locator("#notice")).to_have_text("Showing 16 of 18 tenants; pin others with ?tenant=a,b", timeout=WAIT_MS)
    expect(page.locator("#received")).to_have_text("16", timeout=WAIT_MS)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    shown = {r["tenant"] for r in page.eval_on_selector_all("#lane-regular li", "rows => rows.map(r => ({tenant: r.dataset.tenant}))")}
    assert len(shown) == 16 and "t17" in shown  # the newest are kept (ties in ms make the exact two uncertain)


def test_the_tenant_limit_follows_the_gateways_max_subscriptions(make_server: Callable[..., Server], page: Page) -> None:
    server = make_server(max_subscriptions=4)
    for i in range(6):
        server.engine.submit(f"t{i}", "s", "T", {"i": i})
    page.goto(f"{server.url}/?token={server.token('*', 'subscribe')}")
    expect(page.locator("#notice")).to_have_text("Showing 4 of 6 tenants; pin others with ?tenant=a,b", timeout=WAIT_MS)
    expect(page.locator("#received")).to_have_text("4", timeout=WAIT_MS)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")  # not closed with 4009


def test_a_stream_grows_live_survives_a_gateway_restart_and_is_replaced_by_its_result(
    make_server: Callable[..., Server], page: Page
) -> None:
    server = make_server()
    prompt = server.engine.submit("acme", "chat", "UserPromptSubmit", {"prompt": "hi"})
    page.goto(f"{server.url}/?token={server.token('acme', 'subscribe')}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    expect(page.locator("#streams")).to_be_hidden()
    stream = server.engine.open_stream("acme", "chat", reply_to=prompt.seq)
    stream.write("The answer")
    row = page.locator("#stream-list li[data-session='chat']")
    expect(row.locator(".text")).to_have_text("The answer", timeout=WAIT_MS)
    expect(row.locator(".where")).to_have_text("chat · answering #1")
    restart_gateway(server)  # the page reconnects and resumes, offsets included
    stream.write(" is 42")
    expect(row.locator(".text")).to_have_text("The answer is 42", timeout=WAIT_MS)
    receipt = stream.commit("AssistantReply", {"text": "The answer is 42"})
    expect(page.locator("#streams")).to_be_hidden(timeout=WAIT_MS)
    expect(page.locator(f"li.event[data-session='chat'][data-seq='{receipt.seq}'] .type")).to_have_text("AssistantReply", timeout=WAIT_MS)


def test_the_header_counts_open_failed_and_dead_effects(make_server: Callable[..., Server], page: Page) -> None:
    from laneway import effect

    server = make_server()
    server.engine.handler("T")(lambda event, state: effect("call", "not-registered"))  # waits: open
    server.engine.submit("acme", "s", "T")
    server.engine.submit("acme", "s", "T")
    assert server.engine.wait_for_effects(WAIT_MS / 1000)
    server.engine.discard_effect("acme:s:2:0", actor="test")
    page.goto(f"{server.url}/?token={server.token('acme', 'subscribe')}")
    expect(page.locator("#effects")).to_have_text("1 · 0 · 1", timeout=WAIT_MS)


def test_the_sla_panel_charts_waits_per_tier_and_shows_the_inversion_counter(make_server: Callable[..., Server], page: Page) -> None:
    from laneway import effect

    server = make_server()
    engine = server.engine
    engine.set_tier("globex", "low", why="test")
    engine.set_workspace_members("ws", ["acme"], why="test")
    engine.register_callable("work", lambda ctx: None)
    engine.handler("T")(lambda event, state: effect("call", "work"))
    for tenant in ("acme", "globex", "initech"):
        engine.submit(tenant, "s", "T")
    assert engine.wait_for_effects(WAIT_MS / 1000)
    page.goto(f"{server.url}/?token={server.token(['*'], 'subscribe')}")
    expect(page.locator("#sla")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#sla-inversions")).to_have_text("0", timeout=WAIT_MS)
    for tier in ("high", "medium", "low"):
        expect(page.locator(f"#sla-rows tr[data-tier='{tier}'] td").nth(5)).to_have_text("1", timeout=WAIT_MS)  # started
    # A second poll adds a point to every tier's lines.
    expect(page.locator("#sla-chart")).to_have_attribute("data-samples", "2", timeout=WAIT_MS)
    assert page.locator("#sla-chart polyline.high.p99").get_attribute("points")


def test_the_sla_panel_says_what_a_one_tenant_token_lacks(make_server: Callable[..., Server], page: Page) -> None:
    server = make_server()
    page.goto(f"{server.url}/?token={server.token('acme', 'subscribe')}")
    expect(page.locator("#sla-note")).to_contain_text("token for every tenant", timeout=WAIT_MS)


def test_lanes_are_newest_first_across_tenants_whatever_order_their_history_arrives_in(
    make_server: Callable[..., Server], page: Page
) -> None:
    server = make_server()
    tenants = ("acme", "globex", "initech")
    # Interleaved history: each tenant's recent events reach the page in its
    # own sync, one tenant after another, so arrival order is not commit order.
    for i in range(60):
        server.engine.submit(tenants[i % 3], f"s{i % 2}", "PreToolUse", {"tool_name": "Bash", "i": i})
    page.goto(f"{server.url}/?token={server.token(['*'], 'subscribe')}")
    expect(page.locator("#received")).to_have_text("60", timeout=WAIT_MS)

    def lsns() -> list[int]:
        return page.eval_on_selector_all("#lane-regular li", "rows => rows.map(r => Number(r.dataset.lsn))")

    first = lsns()
    assert first == sorted(first, reverse=True) and len(first) == 60, first[:10]
    for i in range(60, 75):  # and live events keep it so
        server.engine.submit(tenants[(i * 7) % 3], "s0", "PreToolUse", {"tool_name": "Bash", "i": i})
    expect(page.locator("#received")).to_have_text("75", timeout=WAIT_MS)
    after = lsns()
    assert after == sorted(after, reverse=True) and after[0] == 75


def test_events_per_second_counts_live_events_not_the_history_loaded_at_open(
    make_server: Callable[..., Server], page: Page
) -> None:
    server = make_server()
    submit_mix(server, "old", 0, 90)
    page.goto(f"{server.url}/?token={server.token('acme', 'subscribe')}")
    wait_received(page, server)
    # The history is shown and counted as received, but it is no rate.
    assert page.evaluate("window.laneway.store.rates.series(Math.floor(Date.now() / 1000) + 1).flat().reduce((a, b) => a + b, 0)") == 0
    assert page.evaluate("[...window.laneway.store.arrivals.values()].reduce((a, b) => a + b, 0)") == 0
    expect(page.locator("#rate")).to_have_text("0.0")
    submit_mix(server, "new", 0, 24)
    wait_received(page, server)
    live = page.evaluate("window.laneway.store.rates.series(Math.floor(Date.now() / 1000) + 1)")
    by_priority = [0, 0, 0, 0]
    for event in server.engine.events("acme", "new"):
        by_priority[event.priority] += 1
    assert [sum(row[p] for row in live) for p in range(4)] == by_priority and sum(by_priority) == 24
    expect(page.locator("#rate")).not_to_have_text("0.0", timeout=WAIT_MS)


def test_the_rate_chart_and_session_sparklines_draw_live_events(make_server: Callable[..., Server], page: Page) -> None:
    server = make_server()
    server.engine.submit("acme", "quiet", "PreToolUse", {"tool_name": "Bash"})
    page.goto(f"{server.url}/?token={server.token('acme', 'subscribe')}")
    expect(page.locator("#received")).to_have_text("1", timeout=WAIT_MS)
    submit_mix(server, "busy", 0, 16)
    expect(page.locator("#received")).to_have_text("17", timeout=WAIT_MS)
    chart = page.locator("#rate-chart")
    expect(chart.locator("polyline")).to_have_count(4, timeout=WAIT_MS)
    expect(chart).to_have_attribute("data-points", "300")
    # Drawn each second: wait for a tick that has seen the live events.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#rate-chart polyline')].some(l => new Set(l.getAttribute('points').split(' ').map(p => p.split(',')[1])).size > 1)",
        timeout=WAIT_MS,
    )
    busy = page.locator("#sessions li", has=page.locator(".name", has_text="busy"))
    quiet = page.locator("#sessions li", has=page.locator(".name", has_text="quiet"))
    expect(busy.locator("svg.spark")).to_have_attribute("data-total", "16", timeout=WAIT_MS)
    expect(quiet.locator("svg.spark")).to_have_attribute("data-total", "0")  # its one event is history
    expect(page.locator("#rate-scale")).to_contain_text("/s")


def test_hook_events_read_as_sentences_not_payload_json(make_server: Callable[..., Server], page: Page) -> None:
    server = make_server()
    engine = server.engine
    engine.submit("acme", "s", "SessionStart", {"source": "startup"})
    engine.submit("acme", "s", "PreToolUse", {"tool_name": "Bash", "tool_input": {"command": "pytest -q"}})
    engine.submit("acme", "s", "SubagentStop", {"session_id": "x", "transcript_path": "/t.jsonl", "stop_hook_active": False})
    engine.submit("acme", "s", "Stop", {"session_id": "x", "transcript_path": "/t.jsonl", "stop_hook_active": False})
    engine.submit("acme", "s", "Stop", {"summary": "Done: the tests pass"})
    engine.submit("acme", "s", "PreCompact", {"trigger": "auto", "context_tokens": 180000})
    engine.submit("acme", "s", "Custom", {"alpha": 1, "beta": {"x": 2}})
    engine.submit("acme", "s", "AssistantReply", {"text": "All 12 tests pass.", "prompt_seq": 3})
    page.goto(f"{server.url}/?token={server.token('acme', 'subscribe')}")
    expect(page.locator("#received")).to_have_text("8", timeout=WAIT_MS)
    gists = page.eval_on_selector_all("li.event", "rows => Object.fromEntries(rows.map(r => [r.dataset.seq, r.querySelector('.gist').textContent]))")
    assert gists["1"] == "session started (startup)"
    assert gists["2"] == "Bash: pytest -q"
    assert gists["3"] == "subagent finished"
    assert gists["4"] == "stopped"
    assert gists["5"] == "stopped: Done: the tests pass"
    assert gists["6"].startswith("compacting context (auto), 180")
    assert gists["7"] == "{alpha, beta}"
    assert gists["8"] == "reply: All 12 tests pass."
    assert not any("transcript_path" in g or g.startswith('{"') for g in gists.values())
