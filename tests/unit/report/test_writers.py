"""Output files: a fresh temporary file renamed into place; no symlink followed or replaced;
devices and pipes streamed to; values orjson refuses still written."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from llm_users.measure.per_request import RequestResult
from llm_users.report.writers import OutputError, RecordsWriter, dumps, write_bytes, write_json


def test_a_new_file_gets_the_usual_mode_and_no_temporary_file_is_left(tmp_path):
    out = tmp_path / "sub" / "s.json"
    write_json(str(out), {"a": 1})
    assert json.loads(out.read_text()) == {"a": 1}
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(out.parent) == ["s.json"]


def test_a_regular_file_is_replaced_and_keeps_its_mode(tmp_path):
    out = tmp_path / "s.json"
    out.write_text("old")
    out.chmod(0o640)
    write_json(str(out), {"a": 2})
    assert json.loads(out.read_text()) == {"a": 2}
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_a_symlink_at_the_target_is_refused_and_left_alone(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "s.json"
    link.symlink_to(victim)
    with pytest.raises(OutputError, match=r"s\.json: a symbolic link, not a regular file"):
        write_json(str(link), {"a": 1})
    assert link.is_symlink() and victim.read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == ["s.json", "victim"]


def test_a_symlink_planted_at_the_old_temporary_name_is_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    out = tmp_path / "s.json"
    for planted in (f"{out}.tmp", tmp_path / f".s.json.{os.getpid()}.tmp"):
        os.symlink(victim, planted)
    write_json(str(out), {"a": 1})
    write_bytes(str(tmp_path / "r.html"), b"<p>", "HTML report")
    assert victim.read_text() == "keep"
    assert json.loads(out.read_text()) == {"a": 1} and not out.is_symlink()


@pytest.mark.parametrize("kind", ["directory", "socket"])
def test_anything_but_a_regular_file_is_refused(tmp_path, kind):
    import socket

    out = tmp_path / "s.json"
    if kind == "directory":
        out.mkdir()
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(out))
    with pytest.raises(OutputError, match=f"a {kind}, not a regular file"):
        write_json(str(out), {"a": 1})
    assert os.listdir(tmp_path) == ["s.json"]


def test_a_character_device_is_streamed_to_not_replaced(tmp_path):
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    write_json("/dev/null", {"a": 1})
    write_json(str(link), {"a": 1})  # a link to a device: streamed through, like /dev/stdout
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and link.is_symlink()


def test_a_fifo_is_streamed_to(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # a reader in another process: threads are greenlets here, and opening a FIFO blocks
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    write_json(str(fifo), {"a": 1})
    out, _ = reader.communicate(timeout=10)
    assert json.loads(out) == {"a": 1}
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_standard_stream_redirected_to_a_file_is_appended_to(tmp_path):
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:
        f.write(b"console summary\n")
        f.flush()
        write_json(f"/proc/self/fd/{f.fileno()}", {"a": 1})
    text = out.read_text()
    assert text.startswith("console summary\n") and json.loads(text.split("\n", 1)[1]) == {"a": 1}


def test_an_int_past_64_bits_does_not_lose_the_file(tmp_path):
    out = tmp_path / "s.json"
    write_json(str(out), {"n": 2**64 + 5, "k": {1: "x"}})
    assert json.loads(out.read_text()) == {"n": 2**64 + 5, "k": {"1": "x"}}
    assert json.loads(dumps({"n": 2**70})) == {"n": 2**70}


def _result() -> RequestResult:
    return RequestResult(endpoint="chat", stream=True, ok=True, start_wall=1.0, e2e_ms=2.0)


def test_the_records_file_appears_whole_when_closed(tmp_path):
    out = tmp_path / "r.jsonl"
    w = RecordsWriter(str(out))
    w.write(_result())
    assert not out.exists()  # in a temporary file until the test stops
    assert w.close() is None
    assert [json.loads(x)["e2e_ms"] for x in out.read_text().splitlines()] == [2.0]
    assert os.listdir(tmp_path) == ["r.jsonl"]


def test_the_records_file_refuses_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "r.jsonl").symlink_to(victim)
    w = RecordsWriter(str(tmp_path / "r.jsonl"))
    w.write(_result())
    err = w.close()
    assert err is not None and "a symbolic link, not a regular file" in str(err)
    assert victim.read_text() == "keep"
