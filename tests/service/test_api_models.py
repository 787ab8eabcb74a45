"""/api/v1/models: upload, dedup, analysis, bad uploads, listing by tag, the file."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient

from tests.service.conftest import MakeClient
from tests.service.helpers import float_model, tanh_model, upload


def count_models(client: TestClient) -> int:
    return len(client.get("/api/v1/models").json())


def test_upload_analyzes_and_deduplicates(client: TestClient, kws_bytes: bytes) -> None:
    first = upload(client, kws_bytes, tags=["backbone=kws", "width=0.5"])
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["sha256"] == hashlib.sha256(kws_bytes).hexdigest()
    assert body["name"] == "kws_tiny" and body["size_bytes"] == len(kws_bytes)
    assert body["tags"] == {"backbone": "kws", "width": "0.5"}
    analysis = body["analysis"]
    assert (analysis["ops"], analysis["macs"]) == (1_035_588, 516_288)
    assert analysis["input_shape"] == [1, 49, 10, 1] and analysis["output_shape"] == [1, 12]
    # 6,016 B of activations (TFLM's own head) + 14,496 B of dsp-kernel scratch (with the
    # depthwise layers' planar int16 images)
    assert analysis["arena_bytes"] == 20512 and len(analysis["layers"]) == 12

    again = upload(client, kws_bytes, name="other.tflite", tags=["width=1.0", "seed=3"])
    assert again.status_code == 200
    assert again.json()["id"] == body["id"] and again.json()["name"] == "kws_tiny"
    assert again.json()["tags"] == {"backbone": "kws", "width": "1.0", "seed": "3"}
    assert count_models(client) == 1


def test_name_field_wins_over_the_file_name(client: TestClient, kws_bytes: bytes) -> None:
    r = client.post("/api/v1/models", files={"file": ("x.tflite", kws_bytes)},
                    data={"name": "ds-cnn-s"})
    assert r.status_code == 201 and r.json()["name"] == "ds-cnn-s"


def test_get_file_and_model(client: TestClient, kws_bytes: bytes) -> None:
    model_id = upload(client, kws_bytes).json()["id"]
    r = client.get(f"/api/v1/models/{model_id}/file")
    assert r.status_code == 200 and r.content == kws_bytes
    assert r.headers["content-type"] == "application/octet-stream"
    assert hashlib.sha256(kws_bytes).hexdigest() in r.headers["etag"]
    assert client.get(f"/api/v1/models/{model_id}").json()["id"] == model_id
    assert client.get(f"/api/v1/models/{model_id}/measurements").json() == []
    for path in ("", "/file", "/measurements"):
        missing = client.get(f"/api/v1/models/999{path}")
        assert missing.status_code == 404 and "no model 999" in missing.json()["detail"]


def test_list_filters_by_tag_in_sql(client: TestClient, kws_bytes: bytes) -> None:
    from tests.service.helpers import relu_model

    kws = upload(client, kws_bytes, tags=["backbone=kws", "w=1"]).json()["id"]
    relu = upload(client, relu_model(8, 8, 4), name="relu.tflite",
                  tags=["backbone=relu", "w=1"]).json()["id"]

    def ids(*tags: str) -> list[int]:
        r = client.get("/api/v1/models", params={"tag": list(tags)})
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()]

    assert ids() == [kws, relu]
    assert ids("backbone=kws") == [kws]
    assert ids("w=1") == [kws, relu]
    assert ids("w=1", "backbone=relu") == [relu]
    assert ids("backbone=none") == []
    page = client.get("/api/v1/models", params={"limit": 1, "offset": 1}).json()
    assert [m["id"] for m in page] == [relu]
    assert client.get("/api/v1/models", params={"tag": "nokey"}).status_code == 422


def test_non_tflite_upload_is_a_422_naming_the_problem(client: TestClient) -> None:
    r = upload(client, b"PK\x03\x04 this is a zip file", name="model.zip")
    assert r.status_code == 422
    assert "not a TensorFlow Lite flatbuffer" in r.json()["detail"]
    assert count_models(client) == 0


def test_truncated_upload_is_a_422(client: TestClient, kws_bytes: bytes) -> None:
    r = upload(client, kws_bytes[: len(kws_bytes) // 2])
    assert r.status_code == 422 and "damaged" in r.json()["detail"]
    assert count_models(client) == 0


def test_float_model_is_a_422_with_the_recipe(client: TestClient, kws_bytes: bytes) -> None:
    r = upload(client, float_model(kws_bytes))
    assert r.status_code == 422
    assert "float" in r.json()["detail"] and "TFLITE_BUILTINS_INT8" in r.json()["detail"]
    assert count_models(client) == 0


def test_unsupported_op_is_a_422_naming_it(client: TestClient, kws_bytes: bytes) -> None:
    r = upload(client, tanh_model(kws_bytes))
    assert r.status_code == 422 and "TANH" in r.json()["detail"]
    assert count_models(client) == 0


def test_oversized_upload_is_a_413(make_client: MakeClient, kws_bytes: bytes) -> None:
    client = make_client(max_upload_bytes=len(kws_bytes) - 1)
    r = upload(client, kws_bytes)
    assert r.status_code == 413 and "MCUPROF_MAX_UPLOAD_BYTES" in r.json()["detail"]
    # far over the limit: refused from Content-Length before the body is read
    r = upload(client, kws_bytes * 100)
    assert r.status_code == 413 and "MCUPROF_MAX_UPLOAD_BYTES" in r.json()["detail"]
    assert count_models(client) == 0


def test_oversized_streamed_upload_is_a_413(make_client: MakeClient) -> None:
    client = make_client(max_upload_bytes=1000)

    def chunks():  # no Content-Length: counted while it streams
        for _ in range(200):
            yield b"x" * 1024

    r = client.post("/api/v1/models", content=chunks(),
                    headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and "MCUPROF_MAX_UPLOAD_BYTES" in r.json()["detail"]


def test_upload_without_file_or_empty_or_bad_tag(client: TestClient, kws_bytes: bytes) -> None:
    r = client.post("/api/v1/models", data={"name": "x"})
    assert r.status_code == 422 and "file" in r.json()["detail"]
    r = client.post("/api/v1/models", json={"file": "abc"})
    assert r.status_code == 422
    r = upload(client, b"")
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = upload(client, kws_bytes, tags=["=v"])
    assert r.status_code == 422 and "key=value" in r.json()["detail"]
    assert count_models(client) == 0


def test_bad_ids_are_4xx(client: TestClient) -> None:
    for path in ("/api/v1/models/abc", "/api/v1/models/0", f"/api/v1/models/{2**40}"):
        assert client.get(path).status_code == 422
