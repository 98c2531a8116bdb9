"""Optional client libraries load only when a configured check or receiver needs them (docs/architecture.md):
the shipped default config's idle memory must not grow with every new kind."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL = ("aiormq", "pamqp", "asyncmy", "dns", "aiosmtplib")


def test_the_daemon_and_every_probe_module_import_without_optional_clients() -> None:
    code = ("import sys, monitor.daemon, monitor.cli.main, monitor.probes, monitor.alerting.receivers.email; "
            f"print(','.join(m for m in {OPTIONAL!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"loaded at import: {done.stdout.strip()}"
