"""Serving PR models for chat: the backend interface and its implementations."""
