"""What differs between the real `ilab` releases the stand-in plays (0.18.4 and 0.26.1).

One `Profile` per release: the flags each command accepts (so a flag one release lacks is a
click usage error, exit 2, as on the real CLI), the defaults, where and under which names
`data generate` writes, and the console wording. Facts come from the released packages
(their click definitions and instructlab-sdg's writers) and from runs of the real CLI
(`make test-real-ilab` records 0.26.1's layout into tests/fixtures/ilab_layout/).
Choose one with `ILAB_STANDIN_VERSION` (default 0.26.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from testkit.ilab_click import Command, Opt

DEFAULT_VERSION = "0.26.1"

_GENERATE_COMMON = (
    Opt("model", ("--model",)),
    Opt("num_cpus", ("--num-cpus",), "int"),
    Opt("chunk_word_count", ("--chunk-word-count",), "int"),
    Opt("num_instructions", ("--num-instructions",), "int"),
    Opt("sdg_scale_factor", ("--sdg-scale-factor",), "int"),
    Opt("taxonomy_path", ("--taxonomy-path",), "path"),
    Opt("taxonomy_base", ("--taxonomy-base",)),
    Opt("output_dir", ("--output-dir",), "path"),
)
_GENERATE_SERVING = (
    Opt("quiet", ("--quiet",), "flag"),
    Opt("endpoint_url", ("--endpoint-url",)),
    Opt("api_key", ("--api-key",)),
    Opt("yaml_rules", ("--yaml-rules",), "path"),
    Opt("server_ctx_size", ("--server-ctx-size",), "int"),
    Opt("tls_insecure", ("--tls-insecure",), "flag"),
    Opt("tls_client_cert", ("--tls-client-cert",), "path"),
    Opt("tls_client_key", ("--tls-client-key",), "path"),
    Opt("tls_client_passwd", ("--tls-client-passwd",)),
    Opt("model_family", ("--model-family",)),
    Opt("pipeline", ("--pipeline",)),
    Opt("batch_size", ("--batch-size",), "int", minimum=0),
    Opt("enable_serving_output", ("--enable-serving-output",), "flag"),
    Opt("gpus", ("--gpus",), "int", minimum=0),
)
_CHAT_COMMON = (
    Opt("model", ("-m", "--model")),
    Opt("context", ("-c", "--context")),
    Opt("session", ("-s", "--session"), "path"),
    Opt("quick_question", ("-qq", "--quick-question"), "flag"),
    Opt("max_tokens", ("--max-tokens",), "int"),
    Opt("endpoint_url", ("--endpoint-url",)),
    Opt("api_key", ("--api-key",)),
    Opt("tls_insecure", ("--tls-insecure",), "flag"),
    Opt("tls_client_cert", ("--tls-client-cert",), "path"),
    Opt("tls_client_key", ("--tls-client-key",), "path"),
    Opt("tls_client_passwd", ("--tls-client-passwd",)),
    Opt("model_family", ("--model-family",)),
)
_CONFIG_INIT_COMMON = (
    Opt("interactive", ("--interactive",), "flag"),
    Opt("non_interactive", ("--non-interactive",), "flag"),
    Opt("model_path", ("--model-path",), "path"),
    Opt("taxonomy_base", ("--taxonomy-base",)),
    Opt("taxonomy_path", ("--taxonomy-path",), "path"),
    Opt("repository", ("--repository",)),
    Opt("min_taxonomy", ("--min-taxonomy",), "flag"),
    Opt("config", ("--config",), "path"),
)
_SERVE_COMMON = (
    Opt("model_path", ("--model-path",), "path"),
    Opt("gpu_layers", ("--gpu-layers",), "int"),
    Opt("num_threads", ("--num-threads",), "int"),
    Opt("max_ctx_size", ("--max-ctx-size",), "int"),
    Opt("model_family", ("--model-family",)),
    Opt("log_file", ("--log-file",), "path"),
    Opt("chat_template", ("--chat-template",)),
    Opt("backend", ("--backend",)),  # click.Choice: llama-cpp | vllm
    Opt("gpus", ("--gpus",), "int", minimum=0),
)
_ILAB_OPTIONS = (
    Opt("config", ("--config",), "path"),
    Opt("verbose", ("-v", "--verbose"), "count"),
    Opt("version", ("--version",), "flag"),
)


@dataclass(frozen=True)
class Profile:
    """One release's CLI surface and output conventions."""

    version: str
    groups: tuple[str, ...]
    generate: Command
    chat: Command
    config_init: Command
    serve: Command
    default_pipeline: str
    default_generate_model: str
    default_chat_model: str
    dated_subfolder: bool  # 0.26: everything under <output-dir>/<YYYY-MM-DD_HHMMSS>/
    model_in_names: bool  # 0.18: train_<model-stem>_<ts>.jsonl
    failure_prefix: str  # the stdout line a failed generate ends with
    boxed_chat: bool  # 0.26: `-qq` answers in a rich panel unless -nd/--no-decoration

    def sdg_logger(self, line_0_18: int, line_0_26: int) -> str:
        """Where SDG's generation messages come from (`logger:lineno` in ilab's log format)."""
        if self.dated_subfolder:
            return f"instructlab.sdg.generate_data:{line_0_26}"
        return f"instructlab.sdg:{line_0_18}"

    @property
    def bars_on_stdout(self) -> bool:
        """0.26 runs generation with sys.stderr swapped for a tee of stdout (its process
        registry's log): tqdm bars land on stdout, log lines stay on stderr, and a failure
        line is printed on stdout right after an unfinished bar, on the same line."""
        return self.dated_subfolder

    def group(self, name: str) -> Command | None:
        subcommands = {
            "data": ("generate",),
            "model": ("chat", "serve"),
            "config": ("init",),
        }
        if name not in subcommands:
            return None
        summary = f"Command Group for Interacting with the {name.capitalize()} of InstructLab."
        return Command(f"ilab {name}", summary, (), subcommands=subcommands[name])

    @property
    def ilab(self) -> Command:
        return Command(
            "ilab", "CLI for interacting with InstructLab.", _ILAB_OPTIONS, subcommands=self.groups
        )


def _generate(*extra: Opt) -> Command:
    summary = "Generates synthetic data to enhance your example data"
    return Command("ilab data generate", summary, (*_GENERATE_COMMON, *extra))


def _chat(*extra: Opt) -> Command:
    summary = "Runs a chat using the modified model"
    return Command("ilab model chat", summary, (*_CHAT_COMMON, *extra), arguments="[QUESTION]...")


def _serve(*extra: Opt) -> Command:
    summary = "Starts a local server"
    # allow_extra_args: words after `--` go to vLLM (llama-cpp refuses them)
    return Command("ilab model serve", summary, (*_SERVE_COMMON, *extra), arguments="[ARGS]...")


def _config_init(*extra: Opt) -> Command:
    summary = "Initializes environment for InstructLab"
    return Command("ilab config init", summary, (*_CONFIG_INIT_COMMON, *extra))


V0_18 = Profile(
    version="0.18.4",
    groups=("config", "data", "model", "system", "taxonomy"),
    generate=_generate(Opt("rouge_threshold", ("--rouge-threshold",), "float"), *_GENERATE_SERVING),
    chat=_chat(Opt("greedy_mode", ("-gm", "--greedy-mode"), "flag")),
    config_init=_config_init(Opt("train_profile", ("--train-profile",), "path")),
    serve=_serve(),
    default_pipeline="simple",
    default_generate_model="~/.cache/instructlab/models/merlinite-7b-lab-Q4_K_M.gguf",
    default_chat_model="~/.cache/instructlab/models/merlinite-7b-lab-Q4_K_M.gguf",
    dated_subfolder=False,
    model_in_names=True,
    failure_prefix="Generating dataset failed with the following error: ",
    boxed_chat=False,
)

V0_26 = Profile(
    version="0.26.1",
    groups=("config", "data", "model", "process", "rag", "system", "taxonomy"),
    generate=_generate(
        *_GENERATE_SERVING,
        Opt("max_num_tokens", ("--max-num-tokens",), "int", minimum=512),
        Opt("detached", ("-dt", "--detached"), "flag"),
        Opt("student_model_id", ("--student-model-id",)),
        Opt("teacher_model_id", ("--teacher-model-id",)),
    ),
    chat=_chat(
        Opt("model_id", ("--model-id",)),
        Opt("serving_log_file", ("--serving-log-file",), "path"),
        Opt("temperature", ("-t", "--temperature")),
        Opt("rag", ("--rag",), "flag"),
        Opt("document_store_uri", ("--document-store-uri",)),
        Opt("document_store_collection_name", ("--document-store-collection-name",)),
        Opt("retriever_embedding_model_path", ("--retriever-embedding-model-path",)),
        Opt("retriever_top_k", ("--retriever-top-k",), "int"),
        Opt("no_decoration", ("-nd", "--no-decoration"), "flag"),
    ),
    config_init=_config_init(Opt("profile", ("--profile",), "path")),
    serve=_serve(
        Opt("model_id", ("--model-id",)),
        Opt("host", ("-h", "--host")),
        Opt("port", ("-p", "--port"), "int"),
    ),
    default_pipeline="full",
    default_generate_model="~/.cache/instructlab/models/mistral-7b-instruct-v0.2.Q4_K_M.gguf",
    default_chat_model="~/.cache/instructlab/models/granite-7b-lab-Q4_K_M.gguf",
    dated_subfolder=True,
    model_in_names=False,
    failure_prefix="failed to generate data with exception: ",
    boxed_chat=True,
)

PROFILES = {p.version: p for p in (V0_18, V0_26)}


def profile_from_env(env: Mapping[str, str]) -> Profile:
    """The profile `ILAB_STANDIN_VERSION` names (ValueError for a release it does not play)."""
    version = env.get("ILAB_STANDIN_VERSION") or DEFAULT_VERSION
    try:
        return PROFILES[version]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ValueError(f"ILAB_STANDIN_VERSION={version!r}: the stand-in plays {known}") from None
