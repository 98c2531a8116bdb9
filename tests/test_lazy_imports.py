"""Optional client libraries load only when a configured check or receiver needs them (docs/architecture.md):
the shipped default config's idle memory must not grow with every new kind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

OPTIONAL = ("aiormq", "pamqp", "asyncmy", "dns", "boto3", "botocore", "s3transfer", "aiobotocore", "promql_parser", "aiosmtplib")
AWS = ("boto3", "botocore")
ROOT = Path(__file__).resolve().parent.parent


def _loaded_after(code: str, cwd: Path = ROOT) -> list[str]:
    code = textwrap.dedent(code) + f"\nprint(','.join(m for m in {OPTIONAL!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return [name for name in last.split(",") if name]


def test_the_daemon_and_every_probe_module_import_without_optional_clients() -> None:
    loaded = _loaded_after("import sys, monitor.daemon, monitor.cli.main, monitor.probes, monitor.alerting.receivers.email")
    assert loaded == [], f"loaded at import: {loaded}"


def test_the_default_config_loads_and_runs_without_boto3() -> None:
    # The shipped monitor.yaml, loaded and every check of it run once, as the daemon does.
    loaded = _loaded_after("""
        import asyncio, sys
        from monitor.config.loader import load_config
        from monitor.probes import ProbeEnv
        from monitor.scheduling.runner import run_check

        async def main():
            env = ProbeEnv()
            config = load_config("monitor.yaml")
            assert config.checks
            await asyncio.gather(*(run_check(check, env) for check in config.checks))
            await env.close()
        asyncio.run(main())
    """)
    assert loaded == [], f"loaded by the default config: {loaded}"


def test_an_aws_check_runs_boto3_in_the_worker_process_never_in_the_daemon(tmp_path: Path) -> None:
    # botocore answered (EndpointConnectionError is its error), in the worker the first run
    # started; the daemon's process has still not imported it (docs/architecture.md).
    (tmp_path / "monitor.yaml").write_text("check_files: [checks.yaml]\n")
    (tmp_path / "checks.yaml").write_text(textwrap.dedent("""
        checks:
          - name: jobs
            kind: sqs
            region: us-east-1
            endpoint_url: http://127.0.0.1:9
            queue_url: http://127.0.0.1:9/123456789012/jobs
            timeout: 2s
    """))
    code = """
        import asyncio, os, sys
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                          AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent")
        from monitor.config.loader import load_config
        config = load_config("monitor.yaml")
        print("after load:", ",".join(m for m in ("boto3", "botocore") if m in sys.modules))
        from monitor.aws import calls
        print("worker before:", calls.worker_pid())
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + textwrap.dedent("""
        from monitor.probes import ProbeEnv
        from monitor.scheduling.runner import run_check
        result = asyncio.run(run_check(config.checks[0], ProbeEnv()))
        assert not result.up and "EndpointConnectionError" in result.error, result
        print("after run:", ",".join(m for m in ("boto3", "botocore") if m in sys.modules))
        print("worker after:", calls.worker_pid() is not None)
    """)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["after load: ", "worker before: None", "after run: ", "worker after: True"], \
        done.stdout



def test_the_promql_engine_loads_its_parser_only_to_compile_a_query() -> None:
    code = ("import sys, monitor.promql; before = 'promql_parser' in sys.modules; "
            "monitor.promql.compile_query('up'); print(before, 'promql_parser' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


def test_a_config_with_an_sns_receiver_loads_and_builds_it_without_boto3(tmp_path: Path) -> None:
    # boto3 (about 40 MB with one client) is loaded by the first Publish, not by the config.
    (tmp_path / "monitor.yaml").write_text("route: {receiver: aws}\nreceivers:\n  - name: aws\n    sns_configs:\n"
                                           "      - {topic_arn: 'arn:aws:sns:eu-central-1:123456789012:alerts'}\n")
    loaded = _loaded_after("""
        import sys, monitor.daemon
        from monitor.config.loader import load_config
        from monitor.alerting.integrations import build_targets
        targets = build_targets(load_config("monitor.yaml").alerting)
        assert [t.kind for t in targets["aws"]] == ["sns"], targets
    """, cwd=tmp_path)
    assert not set(loaded) & set(AWS), f"loaded by an SNS receiver's config: {loaded}"
