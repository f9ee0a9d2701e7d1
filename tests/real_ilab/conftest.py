"""The real `ilab` (a release installed by `make test-real-ilab` from its lock file) with
what it needs to run offline: an initialised config, a tiny local model folder, a stand-in
teacher, a local git repository for knowledge documents.

Collected only when ILAB_REAL_VENV names that venv (the make target sets it): `make test`
has no real ilab, and runs tests/test_ilab_layout.py against the layout recorded here.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.fake_teacher import Teacher
from testkit.https_git import HttpsGit
from testkit.taxonomy import git

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
collect_ignore_glob = [] if os.environ.get("ILAB_REAL_VENV") else ["test_*.py"]

DOCUMENT_URL = "https://github.com/example/knowledge-docs"
MOON_MD = """# The Moon

The Moon orbits Earth once every 27.3 days (a sidereal month). Because Earth also moves
around the Sun, its phases repeat every 29.5 days.

The Moon is on average 384,400 km from Earth, about 30 Earth diameters. Its surface is
covered by regolith, and its dark plains, the maria, are ancient basaltic lava flows.
"""


@dataclass(frozen=True)
class RealIlab:
    venv: Path
    version: str
    xdg: Path  # XDG_CONFIG_HOME/DATA_HOME/CACHE_HOME live under it (config initialised)
    model: Path  # a tiny model folder: `--model` is also where ilab loads a tokenizer from
    teacher: Teacher
    docs_commit: str
    docs: HttpsGit  # serves the knowledge document repository over https

    @property
    def ilab(self) -> str:
        return str(self.venv / "bin" / "ilab")

    def env(self) -> dict[str, str]:
        """What ilab needs to stay offline and find its config (also given to the sandbox)."""
        return {
            "XDG_CONFIG_HOME": str(self.xdg / "config"),
            "XDG_DATA_HOME": str(self.xdg / "data"),
            "XDG_CACHE_HOME": str(self.xdg / "cache"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TESSDATA_PREFIX": "/usr/share/tesseract-ocr/5/tessdata",
            "COLUMNS": "10000",
            # the knowledge document's URL is cloned from a local https remote instead
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"url.{self.docs.url}/knowledge-docs.git.insteadOf",
            "GIT_CONFIG_VALUE_0": DOCUMENT_URL,
            "GIT_SSL_CAINFO": str(self.docs.cert),
            "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', os.defpath)}",
        }

    def run(self, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.ilab, *args],
            cwd=cwd,
            env={**os.environ, "HOME": str(self.xdg), **self.env()},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _docs_repo(root: Path) -> tuple[Path, str]:
    work = root / "docs-work"
    work.mkdir()
    git("init", "-q", "-b", "main", str(work))
    (work / "moon.md").write_text(MOON_MD, encoding="utf-8")
    git("-C", str(work), "add", "moon.md")
    git("-C", str(work), "commit", "-q", "-m", "moon facts")
    sha = git("-C", str(work), "rev-parse", "HEAD").strip()
    bare = root / "knowledge-docs.git"
    git("clone", "-q", "--bare", str(work), str(bare))
    return bare, sha


@pytest.fixture(scope="session")
def real_ilab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealIlab]:
    venv = Path(os.environ["ILAB_REAL_VENV"]).resolve()
    version = os.environ.get("ILAB_REAL_VERSION", "0.26.1")
    root = tmp_path_factory.mktemp("real-ilab")
    model = root / "models" / "tiny-llama"
    subprocess.run(
        [str(venv / "bin" / "python"), str(ROOT / "testkit" / "tiny_model.py"), str(model)],
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    docs_git, sha = _docs_repo(root)
    (root / "certs").mkdir()
    seed_taxonomy = root / "taxonomy-seed"
    (seed_taxonomy / "compositional_skills").mkdir(parents=True)
    (seed_taxonomy / "README.md").write_text("taxonomy\n", encoding="utf-8")
    sdg_models = root / "xdg" / "data" / "instructlab" / "sdg" / "models"
    sdg_models.mkdir(parents=True)
    (root / "no-docling-models").mkdir()
    # docling's layout models are never needed for markdown; this stops their download
    (sdg_models / "config.yaml").write_text(
        f"models:\n  - path: {root / 'no-docling-models'}\n", encoding="utf-8"
    )
    with Teacher(model=str(model)) as teacher, HttpsGit(docs_git.parent, root / "certs") as docs:
        real = RealIlab(venv, version, root / "xdg", model, teacher, sha, docs)
        init = real.run(
            "config", "init", "--non-interactive", "--taxonomy-path", str(seed_taxonomy), cwd=root
        )
        assert init.returncode == 0, init.stdout + init.stderr
        yield real
