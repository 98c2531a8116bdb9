"""Each shipped catalog pages once per outage, while it is broken.

A simulated copy of each system (tests/catalog_scenario.py: its HTTP health endpoint and a
real PostgreSQL database) runs through the daemon's own pipeline on a fake clock: healthy,
then the API broken for ten minutes, healthy again, then the database refusing connections
for ten minutes, healthy again, then a 90-second blip of the API. Pages are counted per receiver (local Slack and PagerDuty
sinks, critical routed to both): each outage must give exactly one PagerDuty incident (one
trigger, one resolve) and one Slack message each way, from the rule the runbook names, and
nothing may fire after the service recovered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.catalog_scenario import Scenario, catalog_scenario

MINUTE = 60.0
OUTAGE = 10 * MINUTE


@dataclass(frozen=True)
class System:
    name: str
    api_check: str
    api_down: str  # the alert that pages for the API being down
    database_check: str
    database_down: str
    env: dict[str, str]
    # After recovery, watch this long: past the longest window a rule on these checks reads.
    after: float = 35 * MINUTE


SYSTEMS = [
    System("echo", "echo_dashboard_health", "EchoDashboardDown", "echo_analytics_db", "EchoAnalyticsDatabaseDown",
           {"ECHO_DASHBOARD_URL": "{service}", "ECHO_DATABASE_URL": "{database}"}),
    System("echo_ai", "echo_ai_api_health", "EchoAIHealthCheckFailing", "echo_ai_database", "EchoAIDatabaseDown",
           {"ECHO_AI_API_URL": "{service}", "ECHO_AI_DATABASE_URL": "{database}"}),
    System("echopilot", "echopilot_status_summary", "EchoPilotDown", "echopilot_database", "EchoPilotDatabaseDown",
           {"ECHOPILOT_URL": "{service}", "ECHOPILOT_DATABASE_URL": "{database}"}, after=65 * MINUTE),
    System("sleek_coach", "sleek_coach_api_health", "SleekCoachApiDown", "sleek_coach_database",
           "SleekCoachDatabaseDown", {"SLEEK_COACH_API_URL": "{service}", "SLEEK_COACH_DATABASE_URL": "{database}"}),
    System("pulse_ai_studio", "pulse_backend_health", "PulseBackendDown", "pulse_database", "PulseDatabaseDown",
           {"PULSE_BACKEND_URL": "{service}", "AI_STUDIO_DATABASE_URL": "{database}"}),
]


def placeholders(system: str) -> dict[str, str]:
    """Every other variable the catalog requires, set to something that loads (the checks
    using them are not run)."""
    from tests.test_catalogs import catalog_files, plausible, required_vars

    return {name: plausible(name) for name in required_vars(*catalog_files(system))}


def outage_pages(scenario: Scenario, start: float, alert: str) -> None:
    """Exactly one incident for the outage that began at ``start``: a PagerDuty trigger and
    resolve, and a Slack firing and resolved message, all from ``alert``."""
    pages = scenario.since(start)
    got = [(p.receiver, p.status, p.alertnames) for p in pages]
    assert sorted(got) == sorted([
        ("pagerduty", "firing", (alert,)), ("pagerduty", "resolved", got_resolve_key(pages)),
        ("slack", "firing", (alert,)), ("slack", "resolved", (alert,)),
    ]), scenario.summary(pages)


def got_resolve_key(pages: list) -> tuple[str, ...]:  # type: ignore[type-arg]
    resolves = [p.alertnames for p in pages if p.receiver == "pagerduty" and p.status == "resolved"]
    return resolves[0] if resolves else ("<none>",)


@pytest.mark.parametrize("system", SYSTEMS, ids=[s.name for s in SYSTEMS])
async def test_one_page_per_outage_and_none_after_recovery(system: System, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**placeholders(system.name), **system.env}
    keep = {system.api_check, system.database_check}
    async with catalog_scenario(system.name, tmp_path, monkeypatch, keep, env) as scenario:
        await scenario.advance(15 * MINUTE)  # healthy: a quarter hour of history, no page
        assert scenario.pages == [], scenario.summary()

        api_start = scenario.clock.time()
        scenario.service.broken = True
        await scenario.advance(OUTAGE)
        scenario.service.broken = False
        api_recovered = scenario.clock.time()
        await scenario.advance(system.after)
        outage_pages(scenario, api_start, system.api_down)
        last_fired = max(p.at for p in scenario.since(api_start) if p.status == "firing")
        assert last_fired < api_recovered, scenario.summary()
        resolved = [p.at for p in scenario.since(api_start) if p.status == "resolved"]
        assert all(at - api_recovered <= 6 * MINUTE for at in resolved), scenario.summary()

        db_start = scenario.clock.time()
        scenario.database.refuse(True)
        await scenario.advance(OUTAGE)
        scenario.database.refuse(False)
        db_recovered = scenario.clock.time()
        await scenario.advance(system.after)
        outage_pages(scenario, db_start, system.database_down)
        assert max(p.at for p in scenario.since(db_start) if p.status == "firing") < db_recovered

        # A 90-second blip: shorter than any rule's `for`, so no page, then or later (a failure
        # ratio rule used to go pending here and fire minutes after the service was back).
        blip_start = scenario.clock.time()
        scenario.service.broken = True
        await scenario.advance(90.0)
        scenario.service.broken = False
        await scenario.advance(system.after)
        assert scenario.since(blip_start) == [], scenario.summary(scenario.since(blip_start))
