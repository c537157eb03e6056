"""The codec against the shared vectors of conformance/vectors/frames.json."""

from conftest import vectors

from distarch_worker import encode_frame, parse_master_line
from distarch_worker._frames import log_frame

import pytest


def test_worker_frames_are_encoded_byte_exact() -> None:
    for v in vectors("frames.json")["worker"]:
        assert encode_frame(v["frame"]) == (v["line"] + "\n").encode("utf-8"), v["name"]


def test_master_lines_are_read_as_the_vectors_say() -> None:
    for v in vectors("frames.json")["master"]:
        got = parse_master_line(v["line"].encode("utf-8"))
        kind = v["expect"]["kind"]
        if kind == "ignored":
            assert got is None, v["name"]
        else:
            assert got == (kind, v["expect"].get("count")), v["name"]


def test_unencodable_values_become_text_and_nan_is_not_sent_as_json() -> None:
    line = encode_frame(log_frame("info", "x", {"nan": float("nan"), "obj": object}))
    assert b"NaN" not in line or b'"nan"' in line
    assert line.startswith(b'\x1e{"type":"log"') and line.endswith(b"}\n")


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        log_frame("fatal", "x")
