"""A throwaway PostgreSQL server (Debian's postgresql package, installed by scripts/setup --dev) for tests."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    assert found, f"PostgreSQL's {name} is missing: run scripts/setup --dev (it installs the Debian package postgresql)"
    return found[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """initdb + pg_ctl start in `directory`, on 127.0.0.1:port, trust auth; `url` is for asyncpg."""

    def __init__(self):
        # Not under pytest's tmp_path: its parents are private to root, and the server runs as `postgres`.
        directory = Path(tempfile.mkdtemp(prefix="llm-erm-postgres-"))
        directory.chmod(0o755)
        self.directory = directory
        self.data, self.socket_dir = directory / "data", directory / "sock"
        self.port = free_port()
        # PostgreSQL refuses to run as root: as root, it runs as the package's `postgres` user.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        for path in (directory, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            if self.as_user:
                entry = pwd.getpwnam("postgres")
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        self.run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(directory / "log"), "-w", "-t", "120", "-o",
                 f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        self.run(_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "prefect")
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/prefect"

    def run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"

    def stop(self) -> None:
        subprocess.run([*self.as_user, _bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        deadline = time.time() + 10
        while (self.data / "postmaster.pid").exists() and time.time() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.directory, ignore_errors=True)
