"""Running the real `ezd` command against a test's backend."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import Backend


def ezd_command() -> list[str]:
    """The installed `ezd` console script ([project.scripts] ezd = "api.cli:main")."""
    script = Path(sys.executable).with_name("ezd")
    if script.exists():
        return [str(script)]
    found = shutil.which("ezd")
    assert found, "the ezd console script is not installed"
    return [found]


def cli_env(backend: Backend, **extra: str) -> dict[str, str]:
    """The environment that points `ezd` at this test's backend, and nothing else."""
    s = backend.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("EZD_")}
    env["EZD_DATA_DIR"] = str(s.data_dir)
    env["EZD_LOG_LEVEL"] = "warning"
    if s.database_url:
        env["EZD_DATABASE_URL"] = s.database_url
    if s.s3_endpoint:
        env.update(
            {
                "EZD_S3_ENDPOINT": s.s3_endpoint,
                "EZD_S3_ACCESS_KEY": s.s3_access_key,
                "EZD_S3_SECRET_KEY": s.s3_secret_key.get_secret_value(),
                "EZD_S3_BUCKET": s.s3_bucket,
                "EZD_S3_SECURE": "true" if s.s3_secure else "false",
                "EZD_S3_PREFIX": s.s3_prefix,
            }
        )
    env.update(extra)
    return env


def run_ezd(backend: Backend, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real `ezd` command against the backend; `env` adds settings (EZD_...)."""
    return subprocess.run(
        [*ezd_command(), *args],
        env=cli_env(backend, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
