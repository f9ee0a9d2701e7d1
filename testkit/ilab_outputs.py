"""The files `ilab data generate` writes, per release, from seeds and generated samples.

0.18.4 (instructlab-sdg 0.2) writes straight into `--output-dir`, with the teacher model's
name in the legacy files' names; 0.26.1 (instructlab-sdg 0.8) writes into a new
`<output-dir>/<YYYY-MM-DD_HHMMSS>/` folder, adds `preprocessed_*/` (with the knowledge
`documents/`) and `generated_*/`, and drops the model name. Both keep SDG's checkpoints in
`<output-dir>/checkpoints/<leaf>/`. Record keys follow the real writers; the layout test
(tests/test_ilab_layout.py) holds them to the layout recorded from the real 0.26.1.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit.ilab_profiles import Profile


@dataclass(frozen=True)
class Sample:
    """One generated sample of a leaf: the seed it came from, the question and answer."""

    leaf: str  # taxonomy path joined with `_`
    leaf_path: str  # taxonomy path joined with `->`
    kind: str  # freeform_skill | grounded_skill | knowledge
    task_description: str
    seed_question: str
    seed_answer: str
    context: str
    question: str
    answer: str
    documents: tuple[str, ...] = ()  # a knowledge leaf's document file names

    @property
    def knowledge(self) -> bool:
        return self.kind == "knowledge"


def write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _user(question: str, context: str) -> str:
    return question + ("\n" + context if context else "")


def _messages(s: Sample, system: str | None) -> list[dict[str, str]]:
    head = [{"content": system, "role": "system"}] if system is not None else []
    return [
        *head,
        {"content": _user(s.question, s.context), "role": "user"},
        {"content": s.answer, "role": "assistant"},
    ]


def mixed_record(s: Sample, system: str | None) -> dict[str, Any]:
    """The training-ready shape (`*_train_msgs_*`, knowledge `node_datasets_*`): SDG moves
    every other column into a JSON `metadata` string."""
    meta = json.dumps({"dataset": s.leaf, "leaf_node_path": s.leaf_path})
    messages = _messages(s, system)
    return {"id": str(uuid.uuid4()), "messages": messages, "metadata": meta, "unmask": False}


def skill_node_record(s: Sample, system: str) -> dict[str, Any]:
    """A skill leaf's `node_datasets_*` row: the raw pipeline columns plus the messages."""
    row = generated_record(s)
    return {**row, "id": str(uuid.uuid4()), "messages": _messages(s, system), "unmask": False}


def generated_record(s: Sample) -> dict[str, Any]:
    """instructlab-sdg's raw pipeline row: the seed columns plus what the model wrote."""
    return {**seed_record(s), "output": f"{s.question}\n{s.answer}"}


def seed_record(s: Sample) -> dict[str, Any]:
    """A `preprocessed_*` row: the seed as SDG reads it, before generation."""
    if s.knowledge:
        row: dict[str, Any] = {"document": s.context, "document_outline": s.task_description}
        row |= {"domain": s.task_description, "icl_document": s.context}
        for i in (1, 2, 3):  # SDG gives every knowledge sample three in-context examples
            row |= {f"icl_query_{i}": s.seed_question, f"icl_response_{i}": s.seed_answer}
    else:
        row = {"task_description": s.task_description}
        if s.kind == "grounded_skill":
            row["seed_context"] = s.context
        row |= {"seed_question": s.seed_question, "seed_response": s.seed_answer}
    return {**row, "leaf_node_type": s.kind, "leaf_node_path": s.leaf_path}


@dataclass
class Run:
    """Where one run writes: `root` is the dated folder on 0.26, `--output-dir` on 0.18."""

    profile: Profile
    output_dir: Path
    root: Path
    suffix: str  # YYYY-MM-DDTHH_MM_SS
    model_part: str  # `<model-stem>_` on 0.18

    def named(self, prefix: str, ext: str = "jsonl") -> Path:
        return self.root / f"{prefix}_{self.model_part}{self.suffix}.{ext}"


def _by_leaf(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    leaves: dict[str, list[Sample]] = {}
    for s in samples:
        leaves.setdefault(s.leaf, []).append(s)
    return leaves


def write_test(run: Run, seeds: Sequence[Sample], system: str) -> None:
    """Written first, even when generation fails later (as the real SDG does)."""
    records = [
        {"system": system, "user": _user(s.seed_question, s.context), "assistant": s.seed_answer}
        for s in seeds
    ]
    write_jsonl(run.named("test"), records)
    if run.profile.dated_subfolder:
        for leaf, leaf_seeds in _by_leaf(seeds).items():
            folder = run.root / f"preprocessed_{run.suffix}"
            write_jsonl(folder / f"{leaf}.jsonl", [seed_record(s) for s in leaf_seeds])
            if leaf_seeds[0].knowledge:
                _clone_documents(folder / "documents", leaf_seeds)


def _clone_documents(folder: Path, seeds: Sequence[Sample]) -> None:
    """What SDG's clone of the document repository leaves: a work tree with its `.git`
    (the stand-in has no network: the files hold the seeds' contexts)."""
    import subprocess

    clone = folder / f"{seeds[0].leaf}_{secrets.token_hex(4)}"
    clone.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(clone)], check=True, capture_output=True)
    names = [n for n in seeds[0].documents if not any(c in n for c in "*?[")] or ["document.md"]
    text = "\n\n".join(dict.fromkeys(s.context for s in seeds)) + "\n"
    for name in names:
        (clone / name).write_text(text, encoding="utf-8")


def write_checkpoint(run: Run, leaf: str, samples: Sequence[Sample]) -> None:
    folder = run.output_dir / "checkpoints" / leaf
    name = f"data_checkpoint_{uuid.uuid4().hex}.jsonl"
    write_jsonl(folder / name, [generated_record(s) for s in samples])


def _recipe(path: Path, datasets: list[dict[str, Any]], system: str) -> None:
    import yaml

    recipe = {"datasets": datasets, "metadata": {"sys_prompt": system}}
    path.write_text(yaml.safe_dump(recipe, sort_keys=True), encoding="utf-8")


def write_results(run: Run, samples: Sequence[Sample], system: str) -> None:
    """Everything after generation: per-leaf datasets, legacy files, recipes and mixes."""
    nodes = run.root / f"node_datasets_{run.suffix}"
    skills: list[dict[str, Any]] = []
    knowledge: list[dict[str, Any]] = []
    mixed: dict[str, list[dict[str, Any]]] = {"skills": [], "knowledge": []}
    for leaf, leaf_samples in _by_leaf(samples).items():
        if run.profile.dated_subfolder:
            generated = run.root / f"generated_{run.suffix}" / f"{leaf}.jsonl"
            write_jsonl(generated, [generated_record(s) for s in leaf_samples])
        mixed_kind = "knowledge" if leaf_samples[0].knowledge else "skills"
        mixed[mixed_kind] += [mixed_record(s, system) for s in leaf_samples]
        if leaf_samples[0].knowledge:
            records = [mixed_record(s, None) for s in leaf_samples]
            write_jsonl(nodes / f"{leaf}_p07.jsonl", records)
            write_jsonl(nodes / f"{leaf}_p10.jsonl", records)
            write_jsonl(nodes / f"mmlubench_{leaf}.jsonl", [_mmlu(s) for s in leaf_samples])
            (nodes / f"{leaf}_task.yaml").write_text(_task_yaml(leaf, nodes), encoding="utf-8")
            knowledge.append({"path": str(nodes / f"{leaf}_p10.jsonl"), "sampling_size": 1.0})
        else:
            write_jsonl(
                nodes / f"{leaf}.jsonl", [skill_node_record(s, system) for s in leaf_samples]
            )
            skills.append({"path": str(nodes / f"{leaf}.jsonl"), "sampling_size": 30})
    train = [
        {"system": system, "user": _user(s.question, s.context), "assistant": s.answer}
        for s in samples
    ]
    messages = [
        {
            "messages": [
                {"content": t["user"], "role": "user"},
                {"content": t["assistant"], "role": "assistant"},
            ],
            "metadata": json.dumps({"system": system}),
        }
        for t in train
    ]
    write_jsonl(run.named("train"), train)
    write_jsonl(run.named("messages"), messages)
    for kind, datasets in (("skills", skills), ("knowledge", knowledge)):
        _recipe(run.root / f"{kind}_recipe_{run.suffix}.yaml", datasets, system)
        if datasets:  # SDG logs "Not mixing empty recipe file" otherwise
            write_jsonl(run.root / f"{kind}_train_msgs_{run.suffix}.jsonl", mixed[kind])


def _mmlu(s: Sample) -> dict[str, Any]:
    """An lm-eval multiple-choice row (SDG's `mmlubench_*`): the knowledge seed's columns,
    the generated question and answer, and their lm-eval form."""
    options = [s.answer, "Something else", "Nothing", "Everything"]
    text = "\n".join(f"{letter}) {o}" for letter, o in zip("ABCD", options, strict=True))
    row = seed_record(s)
    row |= {"mmlubench_question": f"{s.question}\n\n{text}", "mmlubench_answer": f"A) {s.answer}"}
    row |= {"dataset_type": "mcq_qa", "question": s.question, "choices": options, "answer": 0}
    row["subject"] = row.pop("domain")
    return row


def _task_yaml(leaf: str, nodes: Path) -> str:
    """SDG's lm-eval task for the leaf's MMLU-style data (same keys and values)."""
    import yaml

    task = {
        "task": leaf,
        "dataset_path": "json",
        "dataset_name": None,
        "test_split": "test",
        "doc_to_text": "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. "
        "{{choices[2]}}\nD. {{choices[3]}}\nAnswer:",
        "doc_to_choice": "{{[choices[0], choices[1], choices[2], choices[3]]}}",
        "doc_to_target": "{{answer}}",
        "output_type": "multiple_choice",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": "true"}],
        "dataset_kwargs": {"data_files": {"test": str(nodes / f"mmlubench_{leaf}.jsonl")}},
        "tag": "mmlu_pr",
    }
    return yaml.dump(task, default_flow_style=False)
