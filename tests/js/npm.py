"""tests/js's npm packages, installed from the registry by the tests that use them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def install() -> Path:
    """`npm ci` when node_modules is missing or older than package-lock.json; the folder."""
    npm = shutil.which("npm")
    assert npm, "Node.js and npm are needed: apt-get install nodejs npm"
    installed = HERE / "node_modules" / ".package-lock.json"
    lock = HERE / "package-lock.json"
    if not installed.exists() or lock.stat().st_mtime > installed.stat().st_mtime:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True
        )
    return HERE / "node_modules"
