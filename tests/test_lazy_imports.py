"""Optional client libraries load only when a configured check needs them (docs/architecture.md):
the shipped default config's idle memory must not grow with every new kind."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL = ("aiormq", "pamqp", "asyncmy", "dns")


def test_the_daemon_and_every_probe_module_import_without_optional_clients() -> None:
    code = ("import sys, monitor.daemon, monitor.cli.main, monitor.probes; "
            f"print(','.join(m for m in {OPTIONAL!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"loaded at import: {done.stdout.strip()}"


def test_a_config_with_an_sns_receiver_loads_and_builds_it_without_boto3(tmp_path: object) -> None:
    # boto3 (about 40 MB with one client) is loaded by the first Publish, not by the config.
    from pathlib import Path

    main = Path(str(tmp_path)) / "monitor.yaml"
    main.write_text("route: {receiver: aws}\nreceivers:\n  - name: aws\n    sns_configs:\n"
                    "      - {topic_arn: 'arn:aws:sns:eu-central-1:123456789012:alerts'}\n", encoding="utf-8")
    code = ("import sys; from monitor.config.loader import load_config; "
            "from monitor.alerting.integrations import build_targets; import monitor.daemon; "
            f"targets = build_targets(load_config({str(main)!r}).alerting); "
            "assert [t.kind for t in targets['aws']] == ['sns'], targets; "
            "print(','.join(m for m in ('boto3', 'botocore') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"loaded at import: {done.stdout.strip()}"
