"""`padlens inspect|embed --engine ray`: the same outputs as in-process, one `Error:` line on bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import BATCH, MAX_LEN, assert_same_json

N = 200


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, texts):
    """The same N texts as a .txt file and as a Parquet file with a "body" column."""
    folder = tmp_path_factory.mktemp("cli")
    (folder / "c.txt").write_text("\n".join(texts[:N]) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"body": texts[:N]}), folder / "c.parquet", row_group_size=50)
    return folder


@pytest.mark.slow  # the CLI on a Ray cluster, end to end
def test_inspect_engine_ray_writes_the_json_of_in_process(ray_local, cli_run, tiny, corpora, tmp_path):
    common = ["--max-length", MAX_LEN, "--batch-size", BATCH, "--pad-to", "longest"]
    code, _, err = cli_run("-q", "inspect", tiny, "--texts", corpora / "c.txt", *common, "--json", tmp_path / "a.json")
    assert code == 0, err
    code, out, err = cli_run("-q", "inspect", tiny, "--texts", corpora / "c.parquet", "--text-column", "body",
                             *common, "--engine", "ray", "--workers", 2, "--json", tmp_path / "b.json")
    assert code == 0, err
    assert "pad" in out  # the same terminal table follows
    local, remote = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert remote["texts_count"] == N
    assert_same_json(local, remote)


@pytest.mark.slow  # the CLI on a Ray cluster, end to end
def test_embed_engine_ray_writes_a_parquet_dataset_of_the_in_process_vectors(ray_local, cli_run, tiny, corpora,
                                                                               texts, tmp_path):
    code, _, err = cli_run("-q", "embed", tiny, "--texts", corpora / "c.txt", "-o", tmp_path / "a.npy",
                           "--max-length", MAX_LEN, "--batch-size", 2)  # windows of 128 texts: two blocks
    assert code == 0, err
    code, out, err = cli_run("-q", "embed", tiny, "--texts", corpora / "c.parquet", "--text-column", "body",
                             "-o", tmp_path / "emb", "--keep-text", "--engine", "ray", "--max-length", MAX_LEN,
                             "--batch-size", 2)
    assert code == 0, err
    assert f"wrote {tmp_path / 'emb'}: {N} x" in out
    assert sorted(p.name for p in (tmp_path / "emb").iterdir()) == [
        "_padlens.json", "part-000000000000.parquet", "part-000000000128.parquet"]
    table = pq.read_table(tmp_path / "emb")
    assert table.column("text").to_pylist() == texts[:N]
    np.testing.assert_array_equal(np.stack(table.column("embedding").to_numpy(zero_copy_only=False)),
                                  np.load(tmp_path / "a.npy"))


@pytest.mark.slow  # the CLI on a Ray cluster, end to end
@pytest.mark.parametrize("args, message", [
    (["inspect", "{tiny}", "--engine", "ray"], "--engine ray reads a corpus: pass --texts FILE, FOLDER or GLOB"),
    (["inspect", "{tiny}", "--texts", "{corpora}/c.parquet", "--engine", "ray"],
     "no \"text\" column in {corpora}/c.parquet (columns found: 'body'): pass --text-column"),
    (["inspect", "{tiny}", "--texts", "{corpora}/c.txt", "--engine", "ray", "--workers", "0"],
     "--workers must be at least 1, got 0"),
    (["inspect", "{tiny}", "--texts", "{corpora}/c.txt", "--workers", "2"], "--workers needs --engine ray"),
    (["embed", "{tiny}", "--texts", "{corpora}/c.txt", "-o", "{tmp}/e.npy", "--engine", "ray", "--keep-text"],
     "--keep-text needs a Parquet output folder (-o DIR), not a .npy file"),
    (["inspect", "{tiny}", "--texts", "{tmp}/empty", "--engine", "ray"],
     "no texts: folder {tmp}/empty holds no .txt, .jsonl, .csv, .parquet, .pq files"),
    (["inspect", "{tiny}", "--texts", "{corpora}/c.txt", "--engine", "ray", "--provider", "openvino",
      "--max-length", "24"],
     "provider openvino (OpenVINOExecutionProvider) is not available in this onnxruntime build"),
])
def test_bad_input_is_one_error_line_and_exit_2(ray_local, cli_run, tiny, corpora, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    names = {"tiny": tiny, "corpora": corpora, "tmp": tmp_path}
    code, out, err = cli_run(*[a.format(**names) for a in args])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: " + message.format(**names)), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # nothing written


def test_help_teaches_the_engine_with_examples(cli_run):
    for command in ("inspect", "embed"):
        code, out, _ = cli_run(command, "--help")
        assert code == 0
        assert "--engine [local|ray]" in out and "--ray-address" in out and "--text-column" in out
        assert f"padlens {command} " in out and "--engine ray" in out.split("Examples:")[1]


def test_in_process_commands_never_import_ray(tiny, corpora):
    code = ("import sys\nfrom padlens.cli import main\ntry:\n"
            f"    main(['-q', 'inspect', {str(tiny)!r}, '--texts', {str(corpora / 'c.txt')!r}, '--max-length', '24'])\n"
            "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "print('RAY' if 'ray' in sys.modules else 'NO RAY')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "NO RAY"


@pytest.mark.slow  # the CLI on a Ray cluster, end to end
def test_ctrl_c_stops_the_job_leaves_no_output_and_no_ray_processes(tiny, corpora, tmp_path):
    """A real `padlens embed --engine ray` (its own local Ray), interrupted once its job runs."""
    from tests.hardening.conftest import sigint_default

    from .conftest import _processes_of

    big = tmp_path / "big.txt"
    big.write_text(((corpora / "c.txt").read_text()) * 40)
    proc = subprocess.Popen([sys.executable, "-m", "padlens", "-q", "embed", str(tiny), "--texts", str(big),
                             "-o", str(tmp_path / "emb"), "--engine", "ray", "--workers", "1", "--batch-size", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".emb.*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the temporary folder appears when the Ray job starts writing
    session = Path(os.path.realpath("/tmp/ray/session_latest")).name
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "Error: interrupted", err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt"]
    time.sleep(2)
    assert _processes_of(session) == []


def test_without_ray_the_engine_names_the_extra_to_install(tiny, corpora):
    """``ray`` made unimportable (as in an install without the extra): one Error line, exit 2."""
    code = ("import sys\nsys.modules['ray'] = None\nfrom padlens.cli import main\n"
            f"main(['inspect', {str(tiny)!r}, '--texts', {str(corpora / 'c.txt')!r}, '--engine', 'ray'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("Error: --engine ray needs Ray Data (ray is not installed): "
                                   "pip install 'padlens[ray]'")
