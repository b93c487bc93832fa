"""Presets assembled from part packages: small fake part packages, built here from the tiny model's
GGUF cut into slices, stand for the real ones (the real presets run end to end in
test_preset_e2e.py). Every refusal is one line, and nothing is written into the home or left as a
file in the cache."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap

import pytest
from click.testing import CliRunner

from clagent.cli.main import cli
from clagent.errors import ClagentError
from clagent.home import Home
from clagent.models import presets, sources

NAME = "tiny-preset"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def parts(tmp_path, tiny_gguf, monkeypatch):
    """Three part packages holding the tiny GGUF's bytes, importable, and a preset pinning them."""
    data = tiny_gguf.read_bytes()
    cut = [0, len(data) // 3, 2 * (len(data) // 3), len(data)]  # the first two of one size
    site = tmp_path / "site"
    prefix = f"clagent_test_part_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}_"
    files = []
    for i in range(1, 4):
        pkg = site / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        part = pkg / "data" / f"part{i:02d}.bin"
        part.write_bytes(data[cut[i - 1]:cut[i]])
        (pkg / "__init__.py").write_text(textwrap.dedent(f"""\
            import os
            def get_part_path():
                return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "part{i:02d}.bin")
            """))
        files.append(part)
    monkeypatch.syspath_prepend(str(site))
    preset = presets.Preset(
        name=NAME, model="the tiny test model", filename="tiny-preset.gguf", size=len(data), sha256=sha(data),
        parts=tuple(presets.Part(f"{prefix}{i}", f"tiny-part{i}", f.stat().st_size, sha(f.read_bytes()))
                    for i, f in enumerate(files, 1)),
        version="1.0", install="make tiny-preset")
    monkeypatch.setitem(presets.PRESETS, NAME, preset)
    monkeypatch.setenv("CLAGENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(presets, "_verified", {})
    yield preset, files, data
    for i in range(1, 4):
        sys.modules.pop(f"{prefix}{i}", None)


def cache_files(tmp_path) -> list[str]:
    folder = tmp_path / "cache" / "models"
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def run(*args):
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def one_line_error(result, text):
    """Exit 1 and one error line, the last (progress of an assembly may come before it)."""
    code, _, err = result
    lines = err.rstrip("\n").split("\n")
    assert code == 1 and lines[-1].startswith("clagent: error: ") and err.count("clagent: error") == 1, err
    assert text in lines[-1], err
    assert "Traceback" not in err


def test_assembled_once_verified_and_recorded(tmp_path, parts):
    preset, _, data = parts
    source = sources.resolve(NAME)
    assert source.path == tmp_path / "cache" / "models" / "tiny-preset.gguf"
    assert source.path.read_bytes() == data and source.label == "preset:tiny-preset"
    assert source.detail["sha256"] == preset.sha256 and source.detail["packages"] == "tiny-part1..3 1.0"
    assert cache_files(tmp_path) == ["tiny-preset.gguf"]  # no partial file left
    mtime = source.path.stat().st_mtime_ns
    assert sources.resolve(f"preset:{NAME}").path.stat().st_mtime_ns == mtime  # assembled once

    home = tmp_path / "home"
    code, out, err = run("models", "import", NAME, "--home", str(home), "--json")
    assert code == 0, err
    assert json.loads(out)["source"] == "preset:tiny-preset"
    code, out, _ = run("models", "--home", str(home), "--json")
    origin = json.loads(out)[0]["origin"]
    assert (origin["kind"], origin["preset"], origin["sha256"]) == ("import", NAME, preset.sha256)
    code, out, _ = run("models", "--home", str(home))
    assert "v1 from preset tiny-preset: the tiny test model" in out and "tiny-part1..3 1.0" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    assert not list(home.rglob("tiny-preset.gguf"))  # the home keeps its own master, not the cache's file

    h = Home.open(home)  # the same name again: the home's model, not a second import
    assert h.ensure_model(NAME, verbose=False).id == 1
    h.close()


def test_a_changed_cached_file_is_assembled_again(tmp_path, parts):
    preset, _, data = parts
    path = sources.resolve(NAME).path
    broken = bytearray(data)
    broken[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(broken))
    presets._verified.clear()
    assert sources.resolve(NAME).path.read_bytes() == data  # the copy on disk was hashed, refused, rebuilt


def test_missing_parts_say_what_to_run(tmp_path, parts, monkeypatch):
    preset, _, _ = parts
    gone = presets.Part("clagent_no_such_part_module", "tiny-part2", 1, "0" * 64)
    monkeypatch.setitem(presets.PRESETS, NAME, presets.Preset(**{**preset.__dict__,
                                                                 "parts": (preset.parts[0], gone, preset.parts[2])}))
    home = tmp_path / "home"
    one_line_error(run("serve", "--home", str(home), "--model", NAME),
                   "preset tiny-preset is not installed (1 of its 3 part packages are missing, e.g. tiny-part2); "
                   "run: make tiny-preset")
    assert not home.exists() and cache_files(tmp_path) == []


def test_parts_in_the_wrong_order_are_refused(tmp_path, parts):
    preset, files, _ = parts
    a, b = files[0].read_bytes(), files[1].read_bytes()
    assert len(a) == len(b)  # as a user's swapped files would pass the size check
    files[0].write_bytes(b)
    files[1].write_bytes(a)
    home = tmp_path / "home"
    one_line_error(run("serve", "--home", str(home), "--model", NAME),
                   "part 1 (tiny-part1")
    code, _, err = run("serve", "--home", str(home), "--model", NAME)
    assert "holds part 2's bytes (parts in the wrong order)" in err
    assert not home.exists() and cache_files(tmp_path) == []


def test_a_part_with_other_bytes_is_refused(tmp_path, parts):
    preset, files, _ = parts
    data = bytearray(files[2].read_bytes())
    data[5] ^= 0x01
    files[2].write_bytes(bytes(data))
    home = tmp_path / "home"
    one_line_error(run("models", "import", NAME, "--home", str(home)),
                   "part 3 (tiny-part3")
    _, _, err = run("serve", "--home", str(home), "--model", NAME)
    assert "does not match its pinned sha256; reinstall the parts: make tiny-preset" in err
    assert cache_files(tmp_path) == []


def test_a_part_of_another_size_is_refused_before_anything_is_written(tmp_path, parts):
    preset, files, _ = parts
    files[1].write_bytes(files[1].read_bytes()[:-10])
    home = tmp_path / "home"
    one_line_error(run("serve", "--home", str(home), "--model", NAME),
                   f"part 2 (tiny-part2) has {preset.parts[1].size - 10:,} bytes, {preset.parts[1].size:,} expected")
    assert not home.exists() and not (tmp_path / "cache").exists()


def test_the_whole_file_is_checked_too(tmp_path, parts, monkeypatch):
    preset, _, _ = parts  # every part right, the pinned whole-file hash another file's
    monkeypatch.setitem(presets.PRESETS, NAME, presets.Preset(**{**preset.__dict__, "sha256": "ab" * 32}))
    one_line_error(run("serve", "--home", str(tmp_path / "home"), "--model", NAME),
                   "the assembled file's sha256")
    assert cache_files(tmp_path) == [] and not (tmp_path / "home").exists()


def test_not_enough_disk(tmp_path, parts, monkeypatch):
    import shutil

    real = shutil.disk_usage

    def nearly_full(path):
        u = real(path)
        return type(u)(u.total, u.total - 1000, 1000)

    monkeypatch.setattr(presets.shutil, "disk_usage", nearly_full)
    one_line_error(run("serve", "--home", str(tmp_path / "home"), "--model", NAME),
                   f"not enough disk for {NAME}")
    _, _, err = run("serve", "--home", str(tmp_path / "home"), "--model", NAME)
    assert "GB free (set CLAGENT_CACHE to a folder with room)" in err
    assert cache_files(tmp_path) == [] and not (tmp_path / "home").exists()


def test_an_interrupted_assembly_leaves_nothing_used(tmp_path, parts, monkeypatch):
    preset, _, data = parts
    calls = []

    def interrupt(stage):
        def progress(done, total, what):
            calls.append(done)
            if done >= total // 2:
                raise KeyboardInterrupt  # Ctrl-C halfway
        return progress

    with pytest.raises(KeyboardInterrupt):
        presets.ensure(preset, progress=interrupt)
    assert calls and cache_files(tmp_path) == []  # neither the file nor a partial one

    # a killed assembly (no chance to clean up) leaves a partial file: never used, removed next time
    folder = tmp_path / "cache" / "models"
    (folder / ".tiny-preset.gguf.partial-999999").write_bytes(data[:100])
    assert sources.resolve(NAME).path.read_bytes() == data
    assert cache_files(tmp_path) == ["tiny-preset.gguf"]


def test_unknown_preset_lists_the_presets(tmp_path):
    home = tmp_path / "home"
    one_line_error(run("serve", "--home", str(home), "--model", "qwen-9b"),
                   "unknown model 'qwen-9b': no such file, and not a preset (presets: qwen2.5-coder-0.5b, "
                   "qwen2.5-coder-1.5b")
    one_line_error(run("serve", "--home", str(home), "--model", "preset:qwen-9b"),
                   "unknown preset 'qwen-9b'; presets: qwen2.5-coder-0.5b, qwen2.5-coder-1.5b")
    one_line_error(run("serve", "--home", str(home), "--model", "./qwen-9b.gguf"), "model file not found")
    assert not home.exists()


def test_the_real_presets_are_pinned(tmp_path):
    for name in ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"):
        p = presets.get(name)
        assert sum(part.size for part in p.parts) == p.size and p.licence == "Apache-2.0"
        assert len({part.sha256 for part in p.parts}) == len(p.parts)
        requirements = (presets_root() / "requirements" / f"{p.install.split()[-1]}.txt").read_text()
        assert all(f"{part.distribution}=={p.version} \\\n    --hash=sha256:" in requirements for part in p.parts)
    code, out, _ = run("models", "presets")
    assert code == 0 and "qwen2.5-coder-0.5b" in out and "qwen2.5-coder-1.5b" in out


def presets_root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent
