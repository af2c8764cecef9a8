"""tests/js's npm packages, installed from the registry by the tests that use them."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def install() -> Path:
    """`npm ci` when node_modules is missing or older than package-lock.json; the folder.

    One process at a time (a file lock): two `npm ci` in one folder race, and esbuild's
    install script then fails ("SyntaxError" running its own binary as JavaScript) and
    leaves node_modules half made, failing every test that uses it.
    """
    npm = shutil.which("npm")
    assert npm, "Node.js and npm are needed: apt-get install nodejs npm"
    installed = HERE / "node_modules" / ".package-lock.json"
    lock = HERE / "package-lock.json"
    with open(HERE / ".npm-install.lock", "w") as exclusive:
        fcntl.flock(exclusive, fcntl.LOCK_EX)
        if not installed.exists() or lock.stat().st_mtime > installed.stat().st_mtime:
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True
            )
    return HERE / "node_modules"
