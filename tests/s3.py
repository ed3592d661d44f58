"""A real S3 HTTP API on loopback for tests: moto in server mode (`moto[server]`, in the dev extra).

It speaks the S3 wire protocol, so s3fs and boto3 talk to it as to any S3-compatible store, found through the
standard AWS_ENDPOINT_URL; the credentials are dummies that exist only in the environment of the test.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUCKET = "llm-erm-test"  # S3's rules: 3-63 characters, lower case


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """`with MotoServer() as s3:` - s3.env holds what a client (or a worker process) needs."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing-key-id-7f3a",
                    "AWS_SECRET_ACCESS_KEY": "testing-secret-9c1d-do-not-leak", "AWS_DEFAULT_REGION": "us-east-1"}
        self.process: subprocess.Popen | None = None
        self._logdir = tempfile.TemporaryDirectory(prefix="moto-")
        self.log = Path(self._logdir.name) / "access.log"

    def __enter__(self) -> MotoServer:
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        self._log_handle = open(self.log, "wb")  # noqa: SIM115 - the server writes it until __exit__
        self.process = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=self._log_handle, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start: is moto[server] installed (dev extra)?") from None
                time.sleep(0.05)
        self.client().create_bucket(Bucket=BUCKET)
        return self

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")

    def keys(self, prefix: str = "") -> list[str]:
        out, token = [], None
        while True:
            kwargs = {"Bucket": BUCKET, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
            page = self.client().list_objects_v2(**kwargs)
            out += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(out)
            token = page["NextContinuationToken"]

    def get(self, key: str) -> bytes:
        return self.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def requests(self) -> dict[str, int]:
        """Requests the server has answered so far, by HTTP method (from its access log)."""
        counts: dict[str, int] = {}
        for line in self.log.read_text(errors="replace").splitlines():
            match = re.search(r'"(GET|PUT|HEAD|POST|DELETE) [^"]*" \d{3}', line)
            if match:
                counts[match.group(1)] = counts.get(match.group(1), 0) + 1
        return counts

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._log_handle.close()
        self._logdir.cleanup()
