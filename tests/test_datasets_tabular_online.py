"""The online loader against a real HTTP server on 127.0.0.1 that speaks UCI's and OpenML's APIs
(JSON metadata, then the CSV or ARFF it points to); with the server down, one line naming the three
ways to get the table. The real hosts are never contacted (tests/conftest.py points both APIs at
127.0.0.1:9 unless a test starts its own server)."""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from waiting import scaled

from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.datasets.tabular import get_table, load_table
from llm_erm.datasets.tabular.sources import forget_loaded_tables
from llm_erm.errors import UsageError


class ApiServer:
    """Serves fixed replies by path (query included); records every request path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                status, kind, body = server.routes.get(self.path, (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def route(self, path: str, body: bytes | str | dict, status: int = 200, kind: str = "text/csv") -> None:
        if isinstance(body, dict):
            body, kind = json.dumps(body), "application/json"
        self.routes[path] = (status, kind, body.encode() if isinstance(body, str) else body)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ERM_TABLE_CACHE", str(tmp_path / "table-cache"))
    monkeypatch.setenv("LLM_ERM_TABULAR_SOURCES", str(tmp_path / "no-packaged-sources"))
    monkeypatch.setenv("LLM_ERM_DOWNLOAD_TIMEOUT", "10")
    monkeypatch.delenv("LLM_ERM_OFFLINE", raising=False)
    forget_loaded_tables()


def cdc_csv(rows: int = 400, seed: int = 3) -> tuple[str, list[int]]:
    """A small synthetic table with UCI 891's schema: an ID column, the target, then the 21 features."""
    rnd = random.Random(seed)
    names = get_table("fn_o").feature_names
    lines = [",".join(["ID", "Diabetes_binary", *names])]
    labels = []
    for i in range(rows):
        values = {n: rnd.randint(0, 1) for n in names}
        values.update(BMI=rnd.randint(15, 60), GenHlth=rnd.randint(1, 5), MentHlth=rnd.randint(0, 30),
                      PhysHlth=rnd.randint(0, 30), Age=rnd.randint(1, 13), Education=rnd.randint(1, 6),
                      Income=rnd.randint(1, 8))
        label = int(values["BMI"] > 35 or values["HighBP"] and values["Age"] > 8)
        labels.append(label)
        lines.append(",".join(str(v) for v in [i, label, *(values[n] for n in names)]))
    return "\n".join(lines) + "\n", labels


def uci_routes(server: ApiServer, uci_id: int, csv_text: str) -> None:
    data_url = f"{server.url}/static/public/{uci_id}/data.csv"
    server.route(f"/api/dataset?id={uci_id}", {
        "status": 200,
        "statusCode": 200,
        "data": {"uci_id": uci_id, "name": f"dataset {uci_id}", "data_url": data_url,
                 "variables": [{"name": "ID", "role": "ID"}]},
    })
    server.route(urlsplit(data_url).path, csv_text)


def test_uci_table_is_fetched_from_the_api_then_served_from_the_cache(monkeypatch, tmp_path) -> None:
    text, labels = cdc_csv()
    with ApiServer() as server:
        uci_routes(server, 891, text)
        monkeypatch.setenv("LLM_ERM_UCI_URL", f"{server.url}/api")
        table = load_table("fn_o")
        assert server.requests == ["/api/dataset?id=891", "/static/public/891/data.csv"]
    assert len(table.rows) == 400 and sorted(table.labels) == sorted(labels)
    assert table.source["kind"] == "uci" and table.source["dataset"] == 891
    assert table.source["url"].endswith("/static/public/891/data.csv")
    # The server is gone: a new load (no in-process memory) comes from the cache.
    forget_loaded_tables()
    again = load_table("fn_o")
    assert again.rows == table.rows and again.source == table.source
    dataset = build_dataset(DatasetSpec("fn_o", 21, train_size=40, val_size=40, test_size=100), tmp_path / "d")
    assert [sum(dataset.split(s).labels) for s in ("train", "val", "test")] == [20, 20, 50]
    assert dataset.meta["table"]["source"]["kind"] == "uci"
    assert dataset.split("train").inputs[0].keys() == {f"x{i}" for i in range(21)}


def test_secondary_mushroom_with_the_class_first_and_missing_values(monkeypatch) -> None:
    names = get_table("fn_n").feature_names
    rnd = random.Random(5)
    lines = [";".join(["class", *names])]
    for _ in range(60):
        row = [rnd.choice("ep")] + [str(round(rnd.uniform(1, 20), 2)) if n in ("cap-diameter", "stem-height", "stem-width")
                                     else rnd.choice(["x", "f", "", "s"]) for n in names]
        lines.append(";".join(row))
    with ApiServer() as server:
        uci_routes(server, 848, "\n".join(lines) + "\n")
        monkeypatch.setenv("LLM_ERM_UCI_URL", f"{server.url}/api")
        table = load_table("fn_n")
    assert len(table.rows) == 60 and any(v is None for row in table.rows for v in row)
    assert sum(table.labels) == sum(line.startswith("e;") for line in lines[1:])


def test_openml_table_is_fetched_as_arff(monkeypatch) -> None:
    arff = ["@relation mammography", "@attribute 'Age' numeric", "@attribute 'Shape' {1,2,3,4}",
            "@attribute 'Margin' {1,2,3,4,5}", "@attribute 'Density' {1,2,3,4}", "@attribute 'Severity' {0,1}",
            "@data"]
    rnd = random.Random(9)
    rows = [(rnd.choice(["?", str(rnd.randint(20, 90))]), rnd.randint(1, 4), rnd.randint(1, 5), rnd.randint(1, 4),
             rnd.randint(0, 1)) for _ in range(80)]
    arff += [",".join(map(str, r)) for r in rows]
    with ApiServer() as server:
        server.route("/json/data/45557", {"data_set_description": {
            "id": "45557", "name": "mammography", "licence": "Public",
            "url": f"{server.url}/data/v1/download/22111/mammography.arff"}})
        server.route("/data/v1/download/22111/mammography.arff", "\n".join(arff) + "\n", kind="text/plain")
        monkeypatch.setenv("LLM_ERM_OPENML_URL", f"{server.url}/json")
        table = load_table("fn_w")
    assert len(table.rows) == 80 and sum(table.labels) == sum(r[-1] for r in rows)
    assert sum(row[0] is None for row in table.rows) == sum(r[0] == "?" for r in rows)
    assert table.source == {"kind": "openml", "dataset": 45557, "url": table.source["url"],
                            "sha256": table.source["sha256"], "licence": "Public"}


def test_with_the_server_down_it_fails_with_the_one_line_message(monkeypatch, tmp_path) -> None:
    with ApiServer() as server:
        url = server.url
    monkeypatch.setenv("LLM_ERM_UCI_URL", f"{url}/api")  # nothing listens there any more
    bound = scaled(5)  # an idle machine's seconds, stretched by the load
    started = time.monotonic()
    with pytest.raises(UsageError) as info:
        DatasetSpec("fn_o", 21).validate()
    assert time.monotonic() - started < max(bound, scaled(5))
    message = str(info.value)
    assert "\n" not in message
    assert f"cannot reach UCI at {url}/api/dataset?id=891" in message
    assert "--table-file fn_o=PATH" in message and "LLM_ERM_TABLE_CACHE" in message
    assert "allow the download from UCI dataset 891" in message
    assert not (tmp_path / "table-cache").exists()


@pytest.mark.parametrize(("reply", "status", "expected"), [
    ({"status": 404, "message": "dataset not found"}, 200, "UCI has no downloadable dataset 891 (dataset not found)"),
    ("oops", 500, "UCI answered HTTP 500"),
    ("not json", 200, "UCI did not answer with JSON"),
])
def test_a_bad_answer_from_the_api_is_one_line(monkeypatch, reply, status: int, expected: str) -> None:
    with ApiServer() as server:
        server.route("/api/dataset?id=891", reply, status=status, kind="application/json")
        monkeypatch.setenv("LLM_ERM_UCI_URL", f"{server.url}/api")
        with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)")) as info:
            load_table("fn_o")
    assert "\n" not in str(info.value) and "--table-file fn_o=PATH" in str(info.value)


def test_offline_setting_never_opens_a_connection(monkeypatch) -> None:
    with ApiServer() as server:
        uci_routes(server, 891, cdc_csv()[0])
        monkeypatch.setenv("LLM_ERM_UCI_URL", f"{server.url}/api")
        monkeypatch.setenv("LLM_ERM_OFFLINE", "1")
        with pytest.raises(UsageError, match=r"not available: offline \(LLM_ERM_OFFLINE is set\)"):
            load_table("fn_o")
        assert server.requests == []
