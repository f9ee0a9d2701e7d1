"""The stand-in writes what the real `ilab` writes: for each release it plays, the files,
folders and record keys of `data generate` (a skill leaf and a knowledge leaf) equal the
layout recorded from the real release (tests/fixtures/ilab_layout/, README "Tests with the
real ilab")."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from testkit.ilab_layout import layout
from testkit.taxonomy import (
    checkout_pr,
    default_knowledge_seeds,
    default_skill_seeds,
    knowledge_qna,
    leaf_files,
    skill_qna,
)
from tests.fixtures.taxonomy import PR_SKILL_DIR, TaxonomyFactory

LAYOUTS = Path(__file__).resolve().parent / "fixtures" / "ilab_layout"
LEAVES = ("compositional_skills_extraction_units_conversion", "knowledge_science_astronomy_moon")
MODEL = "/models/tiny-llama"


@pytest.mark.parametrize("version", sorted(p.stem for p in LAYOUTS.glob("*.json")))
def test_standin_layout_matches_the_real_one(
    version: str, ilab_standin: str, taxonomy_remote: TaxonomyFactory, tmp_path: Path
) -> None:
    files = {
        **leaf_files(PR_SKILL_DIR, skill_qna(default_skill_seeds())),
        **leaf_files("knowledge/science/astronomy/moon", knowledge_qna(default_knowledge_seeds())),
    }
    taxonomy = checkout_pr(taxonomy_remote(pr_files=files), tmp_path / "taxonomy")
    out = tmp_path / "out"
    argv = [ilab_standin, "data", "generate", "--taxonomy-path", str(taxonomy)]
    argv += ["--taxonomy-base", "origin/main", "--output-dir", str(out), "--pipeline", "simple"]
    argv += ["--sdg-scale-factor", "2", "--endpoint-url", "http://127.0.0.1:9/v1"]
    argv += ["--model", MODEL]
    env = {**os.environ, "ILAB_STANDIN_VERSION": version, "ILAB_STANDIN_DURATION": "0"}
    env["ILAB_STANDIN_CONFIG"] = "optional"
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recorded = json.loads((LAYOUTS / f"{version}.json").read_text(encoding="utf-8"))
    assert layout(out, Path(MODEL).name, LEAVES) == recorded
