"""What `make test` relies on: Chromium is found or the run stops at once with the command that fixes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FIX = "sudo apt-get update && sudo apt-get install -y chromium"


def test_ensure_chromium_stops_with_the_command_when_chromium_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "no-chromium"
    env = {**os.environ, "PATHWAYS_TEST_CHROMIUM": str(missing)}
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "ensure-chromium")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"error: the browser tests need Chromium at {missing}; install it with: {FIX}\n"


def test_ensure_chromium_accepts_an_executable(tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    env = {**os.environ, "PATHWAYS_TEST_CHROMIUM": str(browser)}
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "ensure-chromium")], env=env, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_pytest_stops_before_the_first_test_without_chromium(tmp_path: Path) -> None:
    env = {**os.environ, "PATHWAYS_TEST_CHROMIUM": str(tmp_path / "no-chromium")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/e2e/test_pages.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 4, done.stdout[-2000:]
    assert FIX in done.stdout
    assert " passed" not in done.stdout and " failed" not in done.stdout and " error" not in done.stdout
