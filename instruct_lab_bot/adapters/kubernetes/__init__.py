"""The Kubernetes API: the only code that talks to it (KServe InferenceServices, Knative
revisions), through the async client `kubernetes-asyncio`."""

from instruct_lab_bot.adapters.kubernetes.client import KubeApi, KubeError, open_kube

__all__ = ["KubeApi", "KubeError", "open_kube"]
