"""The home folder: settings, database, model versions. Everything clagent keeps lives here."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from clagent.config import Settings, resolve_home
from clagent.errors import ClagentError
from clagent.memory import db as dbmod
from clagent.models import gguf_io, sources, templates
from clagent.models.quantize import check_quant, quantize
from clagent.models.registry import Registry, Version
from clagent.private import make_private
from clagent.progress import Progress, say

MASTER_NAME = "master.f16.gguf"


def served_name(quant: str) -> str:
    return f"served.{quant.lower()}.gguf"


class Home:
    def __init__(self, path: Path, settings: Settings):
        self.path = path
        self.settings = settings
        self._db = None
        self._registry = None

    @classmethod
    def open(cls, home: str | os.PathLike | None = None, create: bool = True, **overrides) -> "Home":
        path = resolve_home(home)
        if create:
            try:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as e:
                raise ClagentError(f"cannot create home folder {path}: {e.strerror}") from None
            if not os.access(path, os.W_OK | os.X_OK):
                raise ClagentError(f"home folder {path} is not writable")
            make_private(path)
        elif not path.is_dir():
            raise ClagentError(f"no clagent home at {path} (start the daemon once to create it)")
        settings = Settings.load(path, **overrides)
        check_quant(settings.quant)
        return cls(path, settings)

    @property
    def db_path(self) -> Path:
        return self.path / dbmod.DB_FILE

    @property
    def db(self):
        if self._db is None:
            self._db = dbmod.connect(self.db_path)
        return self._db

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.path, self.db)
        return self._registry

    def close(self) -> None:
        """Close the database (checkpointed: the last one to close leaves no -wal/-shm file)."""
        if self._db is not None:
            dbmod.close(self._db)
            self._db = None
            self._registry = None

    # -- first start ------------------------------------------------------------------------------
    def ensure_model(self, model: str | os.PathLike | None = None, verbose: bool = True) -> Version:
        """Return the served version, initialising version 1 from ``model`` (a GGUF path,
        ``ollama:NAME[:TAG]``, or None for the embedded default) when the home has none yet."""
        registry = self.registry
        registry.cleanup()
        served = registry.served()
        if served is not None:
            if model is not None:
                label = sources.label(model)  # the home has its own copy: Ollama's may be gone
                base = registry.lineage(served)[-1]
                if base.info.get("source") != label:
                    raise ClagentError(
                        f"home {self.path} already serves version {served.id} (from "
                        f"{base.info.get('source', '?')}); use another --home to start from {model}, "
                        f"or add it to this home with: clagent models import {model}"
                    )
            return served
        return self.import_model(sources.resolve(model), verbose=verbose)

    def import_model(self, source: "sources.Source | Path", parent: int | None = None, verbose: bool = True,
                     serve: bool = True, inside=None) -> Version:
        """Make a new version from a GGUF of any supported architecture and quantization: an F16
        master and the served quantization. Every check runs before anything is written."""
        if not isinstance(source, sources.Source):
            source = sources.Source(Path(source), str(source))
        quant = self.settings.quant
        registry = self.registry
        described = sources.check(source)
        reader = gguf_io.open_gguf(source.path)
        spec = described.spec
        fallback = None if described.has_chat_template else templates.fallback_for_gguf(reader)
        if verbose:
            say(f"clagent: making a version from {source.label} ({spec.arch}, "
                f"{gguf_io.human_parameters(described.parameters)} parameters, {described.quantization}) "
                f"in {self.path}")
            if fallback:
                say(f"clagent: the model has no chat template; using clagent's {fallback.name!r} fallback template "
                    f"(clagent/models/templates.py)")
        staging = registry.staging_dir()
        try:
            master = staging / MASTER_NAME
            # One tensor at a time: dequantized, written as F16, dropped (a whole 1.5B model is 7 GB).
            gguf_io.write_gguf(master, spec, gguf_io.LazyTensors(reader), template=reader,
                               chat_template=fallback.template if fallback else None,
                               progress=Progress("writing the F16 master") if verbose else None)
            if verbose:
                say(f"quantizing to {quant} ...")
            quantize(master, staging / served_name(quant), quant, self.settings.n_threads)
            info = {"source": source.label, "spec": spec.to_dict(), "arch": spec.arch,
                    "parameters": described.parameters, "source_quant": described.quantization,
                    "model_name": described.name,
                    "chat_template": f"fallback:{fallback.name}" if fallback else "model"}
            if source.detail:
                info["source_detail"] = source.detail
            return registry.commit(
                staging, parent=parent, method="import", quant=quant,
                master_name=MASTER_NAME, served_name=served_name(quant), info=info, serve=serve, inside=inside,
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
