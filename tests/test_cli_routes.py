"""`monitor routes show | test`: amtool's `config routes` on the daemon's routing code.

The expectations are Alertmanager's: the tree below is TestRouteMatch's from Alertmanager's
dispatch/route_test.go (match, match_re, continue, group_by [...], a default route) plus a
branch written with `matchers:` lists, and the answers are the receivers its Route.Match
returns there, in order (a route with `continue: false` that matches stops its siblings; a
parent's receiver is used only when none of its children matches).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli.main import main
from tests.test_cli import monitor

TREE = """
route:
  receiver: notify-def
  routes:
    - match: {owner: team-A}
      receiver: notify-A
      routes:
        - match: {env: testing}
          receiver: notify-testing
          group_by: [...]
        - match: {env: production}
          receiver: notify-productionA
          group_wait: 1m
          continue: true
        - match_re: {env: "produ.*", job: ".*"}
          receiver: notify-productionB
          group_wait: 30s
          group_interval: 5m
          repeat_interval: 1h
          group_by: [job]
    - match_re: {owner: "team-(B|C)"}
      group_by: [foo, bar]
      group_wait: 2m
      receiver: notify-BC
    - match: {group_by: role}
      group_by: [role]
      routes:
        - match: {env: testing}
          receiver: notify-testing
          routes:
            - match: {wait: long}
              group_wait: 2m
    # Added: matchers lists, a fan-out with continue, and a route that stops its siblings.
    - matchers: ['team="db"', 'severity=~"critical|page"']
      receiver: db-pager
      continue: true
    - matchers: ['team="db"']
      receiver: db-slack
    - matchers: ['team="db"']
      receiver: never-reached
receivers:
  - {name: notify-def}
  - {name: notify-A}
  - {name: notify-testing}
  - {name: notify-productionA}
  - {name: notify-productionB}
  - {name: notify-BC}
  - {name: db-pager}
  - {name: db-slack}
  - {name: never-reached}
"""


@pytest.fixture
def tree_config(tmp_path: Path) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(f"global:\n  state: sqlite:///{tmp_path}/s.db\ncheck_files: []\nrule_files: []\n{TREE}")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("labels, receivers", [
    # Alertmanager's TestRouteMatch cases, receivers in the order Route.Match returns them.
    (["owner=team-A"], "notify-A"),                        # no child matches: the parent takes it
    (["owner=team-A", "env=unset"], "notify-A"),
    (["owner=team-C"], "notify-BC"),
    (["owner=team-A", "env=testing"], "notify-testing"),   # first match, no continue: siblings skipped
    (["owner=team-A", "env=production"], "notify-productionA,notify-productionB"),  # continue
    (["group_by=role"], "notify-def"),                     # a receiver-less route inherits its parent's
    (["env=testing", "group_by=role"], "notify-testing"),
    (["env=testing", "group_by=role", "wait=long"], "notify-testing"),
    # The added branch.
    (["team=db", "severity=critical"], "db-pager,db-slack"),  # db-slack (no continue) stops never-reached
    (["team=db", "severity=warning"], "db-slack"),
    (["owner=team-A", "team=db", "severity=page"], "notify-A"),  # first top-level match without continue wins
    ([], "notify-def"),                                    # the default route
    (["alertname=X", 'owner=""'], "notify-def"),            # an empty value is an absent label
])
def test_receivers_follow_alertmanagers_route_match(capsys: pytest.CaptureFixture[str], tree_config: Path,
                                                    labels: list[str], receivers: str) -> None:
    code, out, err = run(capsys, "routes", "test", "-c", str(tree_config), *labels)
    assert (code, out, err) == (0, receivers + "\n", "")


def test_tree_shows_the_matched_branches_and_verbose_the_groups(capsys: pytest.CaptureFixture[str], tree_config: Path) -> None:
    code, out, _ = run(capsys, "routes", "test", "--tree", "-c", str(tree_config), "owner=team-A", "env=production", "job=api")
    assert code == 0
    assert out == (
        "Matching routes:\n"
        ".\n"
        "└── default-route\n"
        "    └── {owner=\"team-A\"}\n"
        "        ├── {env=\"production\"}  receiver: notify-productionA\n"
        "        └── {env=~\"produ.*\",job=~\".*\"}  receiver: notify-productionB\n"
        "\n"
        "notify-productionA,notify-productionB\n"
    )
    code, out, _ = run(capsys, "routes", "test", "-v", "-c", str(tree_config), "owner=team-A", "env=testing", "job=api")
    assert code == 0
    # group_by: [...] groups by every label; the timers are the inherited defaults.
    assert ('notify-testing: route {}/{owner="team-A"}/{env="testing"}, group {env="testing", job="api", owner="team-A"}'
            ' (key {}/{owner="team-A"}/{env="testing"}:{env="testing", job="api", owner="team-A"});'
            " group_wait 30s, group_interval 5m, repeat_interval 4h") in out.splitlines()
    code, out, _ = run(capsys, "routes", "test", "-v", "-c", str(tree_config), "owner=team-B", "foo=1", "x=2")
    assert "notify-BC: route {}/{owner=~\"team-(B|C)\"}, group {foo=\"1\"} " in out
    assert "group_wait 2m, group_interval 5m, repeat_interval 4h" in out


def test_show_prints_the_whole_tree_with_what_each_route_sets(capsys: pytest.CaptureFixture[str], tree_config: Path) -> None:
    code, out, _ = run(capsys, "routes", "show", "-c", str(tree_config))
    assert code == 0
    lines = out.splitlines()
    assert lines[:4] == [
        "Routing tree:",
        ".",
        "└── default-route  receiver: notify-def  group_by: []  group_wait: 30s  group_interval: 5m  repeat_interval: 4h",
        "    ├── {owner=\"team-A\"}  receiver: notify-A",
    ]
    assert "    │   ├── {env=\"testing\"}  receiver: notify-testing  group_by: [...]" in lines
    assert "    │   ├── {env=\"production\"}  continue: true  receiver: notify-productionA  group_wait: 1m" in lines
    assert ("    │   └── {env=~\"produ.*\",job=~\".*\"}  receiver: notify-productionB  group_by: [job]"
            "  repeat_interval: 1h") in lines
    assert "    ├── {severity=~\"critical|page\",team=\"db\"}  continue: true  receiver: db-pager" in lines
    assert lines[-1] == "    └── {team=\"db\"}  receiver: never-reached"


def test_exit_codes_and_bad_input_in_one_line(tmp_path: Path, tree_config: Path) -> None:
    ok = monitor("routes", "test", "-c", str(tree_config), "--verify-receivers", "db-pager,db-slack", "team=db", "severity=page")
    assert (ok.returncode, ok.stdout) == (0, "db-pager,db-slack\n")
    # amtool's spelling of the flag works too; a different answer is exit 1 with a warning.
    wrong = monitor("routes", "test", "-c", str(tree_config), "--verify.receivers", "db-slack", "team=db", "severity=page")
    assert wrong.returncode == 1 and wrong.stdout == "db-pager,db-slack\n"
    assert wrong.stderr == "WARNING: expected receivers db-slack, got db-pager,db-slack\n"
    regex = monitor("routes", "test", "-c", str(tree_config), "team=~db")
    assert regex.returncode == 2 and regex.stderr.startswith("monitor: label team=~\"db\": labels are NAME=VALUE")
    bad = monitor("routes", "test", "-c", str(tree_config), "not a label")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "Traceback" not in bad.stderr
    bare = tmp_path / "bare.yaml"
    bare.write_text(f"global:\n  state: sqlite:///{tmp_path}/s.db\ncheck_files: []\nrule_files: []\n")
    none = monitor("routes", "show", "-c", str(bare))
    assert none.returncode == 2 and none.stderr == f"monitor: {bare} has no `route:`: alerts reach no receiver\n"
