"""The pooling endpoints: POST /v1/embeddings (OpenAI's shape) and POST /v1/rerank (the
Jina/Cohere shape vLLM serves), each answered whole after its prefill, with usage."""

from __future__ import annotations

import zlib
from typing import Any

from .config import SimConfig
from .parse import BadRequest
from .tokenizer import count_tokens

__all__ = ["EMBEDDING_DIMS", "pooled_answer", "prefill_s"]

EMBEDDING_DIMS = 8  # a short vector: the shape is what a client reads, not the numbers


def _texts(value: Any, what: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(t, str) for t in items):
        raise BadRequest(f"'{what}' must be a string or a non-empty list of strings")
    return items


def _vector(text: str) -> list[float]:
    seed = zlib.crc32(text.encode())
    return [((seed >> i) & 0xFF) / 255.0 for i in range(EMBEDDING_DIMS)]


def pooled_answer(kind: str, req: dict[str, Any], model: str) -> tuple[dict[str, Any], int, int]:
    """The answer to an embeddings or rerank request, its items (inputs embedded, documents
    scored) and its prompt tokens; BadRequest for a body the real APIs refuse."""
    if kind == "embeddings":
        inputs = _texts(req.get("input"), "input")
        tokens = sum(count_tokens(t) for t in inputs)
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(t)}
            for i, t in enumerate(inputs)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": model, "usage": usage}, len(inputs), tokens
    query = req.get("query")
    if not isinstance(query, str):
        raise BadRequest("'query' must be a string")
    documents = _texts(req.get("documents"), "documents")
    tokens = count_tokens(query) * len(documents) + sum(count_tokens(d) for d in documents)
    scores = [zlib.crc32((query + d).encode()) / 2**32 for d in documents]
    order = sorted(range(len(documents)), key=lambda i: -scores[i])  # best first, as servers
    results = [
        {"index": i, "document": {"text": documents[i]}, "relevance_score": scores[i]}
        for i in order
    ]
    top_n = req.get("top_n")
    if isinstance(top_n, int) and top_n > 0:
        results = results[:top_n]
    body = {"id": f"rerank-{zlib.crc32(query.encode()):08x}", "model": model,
            "usage": {"total_tokens": tokens}, "results": results}  # fmt: skip
    return body, len(documents), tokens


def prefill_s(cfg: SimConfig, tokens: int) -> float:
    """How long a pooling request takes: the time to first token's fixed part and the
    prefill of its tokens (no decode: nothing is generated)."""
    return (cfg.ttft_ms + cfg.prefill_ms_per_1k_tokens * tokens / 1000.0) / 1000.0
