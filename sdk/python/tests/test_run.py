"""`run` as a process: exit codes, hello first, ended last, SIGTERM as a stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List

from conftest import ENV, HERE

SRC = str(HERE.parent / "src")


def spawn(body: str, env: Dict[str, str]) -> "subprocess.Popen[bytes]":
    code = "import distarch_worker, time\n" + textwrap.dedent(body)
    full = {k: v for k, v in os.environ.items() if not k.startswith("DISTARCH_")}
    full.update(env)
    full["PYTHONPATH"] = SRC
    return subprocess.Popen([sys.executable, "-c", code], env=full, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def types(out: bytes) -> List[str]:
    return [json.loads(l[1:])["type"] for l in out.split(b"\n") if l.startswith(b"\x1e")]


def test_a_clean_run_exits_0_with_hello_first_and_ended_last() -> None:
    p = spawn("""
        def main(w):
            print("plain from", w.id)
            w.ready()
        distarch_worker.run(main)
    """, ENV)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0
    lines = out.split(b"\n")
    assert lines[0].startswith(b'\x1e{"type":"hello"')
    assert lines[1] == b"plain from 4"
    assert types(out) == ["hello", "ready", "ended"]


def test_an_exception_exits_1_with_an_error_frame() -> None:
    p = spawn("""
        def main(w):
            raise ValueError("bad input")
        distarch_worker.run(main)
    """, ENV)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 1
    logs = [json.loads(l[1:]) for l in out.split(b"\n") if l.startswith(b'\x1e{"type":"log"')]
    assert logs[0]["level"] == "error" and logs[0]["message"] == "bad input"
    assert logs[0]["fields"]["exception"] == "ValueError"
    assert types(out)[-1] == "ended"


def test_not_started_by_distarch_exits_2() -> None:
    p = spawn("distarch_worker.run(lambda w: None)\n", {})
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2
    assert b"not started by distarch: DISTARCH_ID is not set" in err
    assert out == b""


def test_sigterm_is_a_stop_request() -> None:
    p = spawn("""
        def main(w):
            w.ready()
            w.wait_stop()
            w.info("stopping", reason=w.stop_reason.value)
        distarch_worker.run(main)
    """, ENV)
    assert p.stdout is not None
    while b'"ready"' not in p.stdout.readline():
        pass
    p.send_signal(signal.SIGTERM)
    out = p.stdout.read()  # stdin stays open: the stop can only come from SIGTERM
    assert p.wait(timeout=60) == 0
    assert b'"reason":"stop requested"' in out
    assert types(out)[-1] == "ended"


def test_a_worker_that_ignores_the_master_going_away_is_ended_with_3() -> None:
    p = spawn("""
        def main(w):
            w.set_master_gone_exit(0.2)
            w.ready()
            while True:
                time.sleep(0.05)
        distarch_worker.run(main)
    """, ENV)
    assert p.stdin is not None
    p.stdin.close()
    p.wait(timeout=60)
    assert p.returncode == 3


def test_the_package_builds_as_a_wheel_with_its_type_marker(tmp_path: Path) -> None:
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(HERE.parent)], check=True)
    wheels = list(tmp_path.glob("distarch_worker-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "distarch_worker/py.typed" in names and "distarch_worker/aio.py" in names
