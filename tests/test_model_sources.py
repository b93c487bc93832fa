"""Where models come from: the user's Ollama store (laid out here the way Ollama lays it out) and
loose GGUF files, and every way such a file can be wrong: a clear one-line error, and the home
unchanged (not even created)."""

import hashlib
import json
import shutil
import sqlite3

import gguf
import httpx
import numpy as np
import pytest

from clagent.errors import ClagentError
from clagent.models import gguf_io, ollama
from tests.conftest import run_cli, smollm2_reader, start_daemon
from tests.test_cli import one_line_error
from tests.tiny_models import make_model, state


# -- an Ollama store ---------------------------------------------------------------------------------
def _blob(store, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    path = store / "blobs" / f"sha256-{digest}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def add_to_store(store, ref: str, model_file) -> None:
    """What `ollama pull`/`ollama create` leave: a manifest naming the GGUF blob and the other layers."""
    name, tag = ref.rsplit(":", 1)
    namespace, model = name.split("/") if "/" in name else ("library", name)
    layers = [{"mediaType": "application/vnd.ollama.image.model", **_blob(store, model_file.read_bytes())},
              {"mediaType": "application/vnd.ollama.image.template",
               **_blob(store, b"{{ .System }}{{ .Prompt }}")},
              {"mediaType": "application/vnd.ollama.image.params", **_blob(store, b'{"stop": ["<|im_end|>"]}')},
              {"mediaType": "application/vnd.ollama.image.license", **_blob(store, b"Apache-2.0")}]
    config = _blob(store, json.dumps({"model_format": "gguf", "model_family": "llama"}).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **config},
                "layers": layers}
    path = store / "manifests" / "registry.ollama.ai" / namespace / model / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))


def tree(path) -> dict:
    """Every file under a folder with its content hash: to show nothing was changed."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_qwen_gguf(tmp_path_factory):
    spec, model = make_model("qwen2", seed=4)
    return gguf_io.write_gguf(tmp_path_factory.mktemp("qwen") / "tiny-qwen2.gguf", spec, state(model),
                              template=smollm2_reader(), name="clagent-tiny-qwen")


@pytest.fixture
def store(tmp_path, tiny_gguf, tiny_qwen_gguf, monkeypatch):
    root = tmp_path / "ollama-models"
    add_to_store(root, "tinyllama:latest", tiny_gguf)
    add_to_store(root, "someone/tiny-qwen:q8", tiny_qwen_gguf)
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    return root


def test_names_are_parsed_like_ollama():
    assert ollama.parse("ollama:gemma3:270m") == ("registry.ollama.ai", "library", "gemma3", "270m")
    assert ollama.parse("ollama:gemma3") == ("registry.ollama.ai", "library", "gemma3", "latest")
    assert ollama.parse("ollama:someone/tiny-qwen:q8") == ("registry.ollama.ai", "someone", "tiny-qwen", "q8")
    assert ollama.parse("ollama:hf.co/org/model:Q4_K_M") == ("hf.co", "org", "model", "Q4_K_M")
    for bad in ("ollama:", "ollama:../../etc:x", "ollama:a/b/c/d"):
        with pytest.raises(ClagentError, match="not an Ollama model name"):
            ollama.parse(bad)


def test_store_locations(tmp_path, monkeypatch, tiny_gguf):
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ollama.stores() == [tmp_path / ".ollama" / "models", ollama.Path("/usr/share/ollama/.ollama/models")]
    add_to_store(tmp_path / ".ollama" / "models", "tinyllama:latest", tiny_gguf)
    found = ollama.resolve("ollama:tinyllama")
    assert found.reference == "ollama:tinyllama:latest" and found.blob.read_bytes() == tiny_gguf.read_bytes()
    assert found.blob.parent == tmp_path / ".ollama" / "models" / "blobs"


def test_serve_and_import_from_the_ollama_store(tmp_path, store):
    before = tree(store)
    home = tmp_path / "home"
    d = start_daemon(home, "--model", "ollama:tinyllama")
    try:
        reply = d.openai().chat.completions.create(model="clagent", messages=[{"role": "user", "content": "Hi"}],
                                                   max_tokens=4, temperature=0)
        assert reply.choices[0].message.content is not None and reply.usage.completion_tokens > 0
        st = json.loads(run_cli("status", "--home", str(home), "--json").stdout)
        assert st["served_version"]["info"]["source"] == "ollama:tinyllama:latest"

        # a second model, a user's, into the running home: a new base version, served at once
        p = run_cli("models", "import", "ollama:someone/tiny-qwen:q8", "--home", str(home), "--json", timeout=300)
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        assert out["version"] == 2 and out["arch"] == "qwen2" and out["source_quant"] == "F16"
        assert out["hot_swapped"] and httpx.get(f"{d.url}/health").json()["version"] == 2
        reply = d.openai().chat.completions.create(model="clagent", messages=[{"role": "user", "content": "Hi"}],
                                                   max_tokens=4, temperature=0)
        assert reply.system_fingerprint == "clagent-v2" and reply.choices[0].message.content is not None
        rows = json.loads(run_cli("models", "--home", str(home), "--json").stdout)
        assert [(r["id"], r["arch"], r["parent"], r["served"]) for r in rows] == [(1, "llama", None, False),
                                                                                  (2, "qwen2", None, True)]
        assert rows[1]["info"]["source"] == "ollama:someone/tiny-qwen:q8" and rows[1]["parameters"] > 0
        listing = run_cli("models", "--home", str(home)).stdout
        assert "qwen2" in listing and "llama" in listing and all(len(x) <= 80 for x in listing.splitlines())
    finally:
        d.stop()
    assert tree(store) == before  # Ollama's store is read, never written
    # the home keeps its own copy: restarting with the same name works with the store gone
    shutil.rmtree(store)
    d = start_daemon(home, "--model", "ollama:someone/tiny-qwen:q8")
    assert httpx.get(f"{d.url}/health").json()["version"] == 2
    d.stop()


def test_ollama_errors_leave_no_home(tmp_path, store, tiny_home, monkeypatch):
    home = tmp_path / "h"
    p = run_cli("serve", "--home", str(home), "--port", "0", "--model", "ollama:nothere:7b")
    one_line_error(p, "Ollama model 'nothere:7b' is not installed")
    assert "tinyllama:latest" in p.stderr and "someone/tiny-qwen:q8" in p.stderr and "ollama pull" in p.stderr
    assert not home.exists()

    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "no-such-store"))
    one_line_error(run_cli("serve", "--home", str(home), "--port", "0", "--model", "ollama:tinyllama"),
                   "no Ollama model store found")
    monkeypatch.setenv("OLLAMA_MODELS", str(store))

    broken = store / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    one_line_error(run_cli("serve", "--home", str(home), "--port", "0", "--model", "ollama:broken"),
                   "is not valid JSON")
    manifest = json.loads((store / "manifests/registry.ollama.ai/library/tinyllama/latest").read_text())
    manifest["layers"][0]["digest"] = "sha256:" + "0" * 64
    (store / "manifests/registry.ollama.ai/library/gone/latest").parent.mkdir(parents=True)
    (store / "manifests/registry.ollama.ai/library/gone/latest").write_text(json.dumps(manifest))
    one_line_error(run_cli("serve", "--home", str(home), "--port", "0", "--model", "ollama:gone"),
                   "lacks the model blob")
    assert not home.exists()

    # into an existing home: refused, and the home is exactly as it was
    before = tree(tiny_home)
    one_line_error(run_cli("models", "import", "ollama:nothere", "--home", str(tiny_home)), "is not installed")
    assert tree(tiny_home) == before


# -- bad GGUF files ------------------------------------------------------------------------------------
def rewrite(src, dst, *, arch=None, drop=(), add=None, keys=None):
    """A copy of a GGUF with its architecture renamed, tensors dropped or added, keys set."""
    reader = gguf.GGUFReader(src)
    old = reader.fields["general.architecture"].contents()
    arch = arch or old
    keys = keys or {}
    writer = gguf.GGUFWriter(dst, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        name = f"{arch}.{key[len(old) + 1:]}" if key.startswith(f"{old}.") else key
        if name not in keys:
            vtype = field.types[0]
            writer.add_key_value(name, field.contents(), vtype,
                                 field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None)
    for name, (value, vtype) in keys.items():
        writer.add_key_value(name, value, vtype)
    for t in reader.tensors:
        if t.name not in drop:
            writer.add_tensor(t.name, np.array(t.data))
    for name, value in (add or {}).items():
        writer.add_tensor(name, value)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    return dst


U32 = gguf.GGUFValueType.UINT32
BAD = {
    "truncated": (lambda src, dst: dst.write_bytes(src.read_bytes()[:-4096]), "is truncated"),
    "unsupported": (lambda src, dst: rewrite(src, dst, arch="mamba"),
                    "'mamba' is not supported; clagent supports llama (Llama 2/3, Mistral, SmolLM2), qwen2"),
    "missing": (lambda src, dst: rewrite(src, dst, drop={"blk.1.ffn_down.weight"}),
                "missing tensors (1 of the 20 of a llama model"),
    "metadata_vs_shapes": (lambda src, dst: rewrite(src, dst, keys={"llama.feed_forward_length": (96, U32)}),
                           "metadata and tensors disagree: blk.0.ffn_gate.weight has shape [128, 64]"),
    "metadata_vs_family": (lambda src, dst: rewrite(src, dst, arch="phi3"),
                           "metadata and tensors disagree: tensor blk.0.ffn_gate.weight is not part of a phi3"),
    "split": (lambda src, dst: rewrite(src, dst, keys={"split.count": (3, gguf.GGUFValueType.UINT16),
                                                       "split.no": (0, gguf.GGUFValueType.UINT16)}),
              "one part of a split GGUF (3 parts)"),
    "vision": (lambda src, dst: rewrite(src, dst, add={"v.blk.0.attn_q.weight": np.zeros((8, 8), np.float32)}),
               "is a vision (multimodal) model (tensor v.blk.0.attn_q.weight)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_gguf_gets_one_line_and_no_home(case, tmp_path, tiny_gguf):
    make, match = BAD[case]
    bad = tmp_path / f"{case}.gguf"
    make(tiny_gguf, bad)
    home = tmp_path / "h"
    one_line_error(run_cli("serve", "--home", str(home), "--port", "0", "--model", str(bad)), match)
    assert not home.exists()


@pytest.mark.parametrize("case", ["truncated", "metadata_vs_family", "vision"])
def test_bad_gguf_into_an_existing_home_changes_nothing(case, tmp_path, tiny_gguf, tiny_home):
    make, match = BAD[case]
    bad = tmp_path / f"{case}.gguf"
    make(tiny_gguf, bad)
    before = tree(tiny_home)
    one_line_error(run_cli("models", "import", str(bad), "--home", str(tiny_home)), match)
    assert tree(tiny_home) == before
    con = sqlite3.connect(tiny_home / "clagent.db")
    assert [r[0] for r in con.execute("SELECT id FROM versions")] == [1]
    con.close()


def test_split_file_named_like_llama_gguf_split(tmp_path, tiny_gguf):
    part = tmp_path / "model-00001-of-00002.gguf"
    shutil.copy(tiny_gguf, part)
    with pytest.raises(ClagentError, match="split GGUF"):
        gguf_io.open_gguf(part)
