"""The local tier's speed: tokens/s and time to first token, called directly vs through tierwise.

    .venv/bin/python benchmarks/local_tier.py [--repeats 5] [--max-tokens 32]
    .venv/bin/python benchmarks/local_tier.py --url http://gpu-host:8000 --model NAME  # e.g. vLLM

Without --url it starts the embedded default (`tierwise local up`: llama.cpp, Gemma 3 270M) on a
free port. It starts a real proxy (SQLite ledger, as in production; policy threshold 1.0 so every
`model=auto` request is scored and routed to the cheap tier), then streams the same prompts to
the model server directly and through the proxy, interleaved (the order alternates each round),
`temperature=0` with a fixed seed so both paths generate the same tokens. Per request:
time to the first content token (TTFT), decode rate (completion tokens after the first / time
after the first), end-to-end tokens/s. Reports medians over all requests, the median of the
paired TTFT differences, and writes benchmarks/results/local_tier.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, pct, save, show

from router.testing.processes import ServerProcess, free_port, proxy_command, upstream_command

PROMPTS = [
    "The three primary colours are",
    "Q: What is the capital of Japan?\nA:",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "Once upon a time, in a small village at the edge of a great forest, there lived an old "
    "clockmaker who had never once left the valley. Every morning he opened his shop, wound "
    "every clock on the wall, and waited for visitors. One winter morning, a stranger arrived",
]

POLICY = """
tiers:
  cheap: {{model: "openai/{model}", api_base: "{base}/v1", local: true,
           price: {{input_per_mtok: 0.05, output_per_mtok: 0.1}}}}
  frontier: {{model: openai/frontier-model, api_base: "{frontier}/v1",
              price: {{input_per_mtok: 3.0, output_per_mtok: 15.0}}}}
routing: {{threshold: 1.0}}
access: {{open: true}}
"""


def stream_once(
    client: httpx.Client, url: str, model: str, prompt: str, max_tokens: int
) -> dict[str, Any]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first: float | None = None
    pieces = 0
    completion_tokens: int | None = None
    tier = None
    with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        tier = response.headers.get("x-tierwise-tier")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                completion_tokens = chunk["usage"].get("completion_tokens")
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    pieces += 1
                    if first is None:
                        first = time.perf_counter()
    total = time.perf_counter() - started
    ttft = (first or time.perf_counter()) - started
    tokens = completion_tokens if completion_tokens is not None else pieces
    decode_s = total - ttft
    return {
        "ttft_s": ttft,
        "total_s": total,
        "tokens": tokens,
        "decode_tok_s": (tokens - 1) / decode_s if tokens > 1 and decode_s > 0 else float("nan"),
        "e2e_tok_s": tokens / total if total > 0 else float("nan"),
        "tier": tier,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "requests": len(runs),
        "ttft_ms_p50": median([r["ttft_s"] for r in runs]) * 1000,
        "ttft_ms_p90": pct([r["ttft_s"] for r in runs], 90) * 1000,
        "total_ms_p50": median([r["total_s"] for r in runs]) * 1000,
        "decode_tok_s_p50": median([r["decode_tok_s"] for r in runs]),
        "e2e_tok_s_p50": median([r["e2e_tok_s"] for r in runs]),
        "completion_tokens_p50": median([r["tokens"] for r in runs]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds over all prompts")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--url", help="an already running OpenAI-compatible server (no /v1)")
    parser.add_argument("--model", default="gemma-3-270m", help="its served model name")
    parser.add_argument("--engine", default="llamacpp", help="label for the results")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument(
        "--ledger-url", help="the proxy's TIERWISE_LEDGER_URL (default: a fresh SQLite file)"
    )
    parser.add_argument("--out", default="local_tier", help="results file name (no .json)")
    args = parser.parse_args()

    from router.local import DEFAULT_CHAT_FORMAT, EngineSpec, LocalServer, default_gguf

    with ExitStack() as stack:  # closed in reverse: servers stop before their state dir goes
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        local_url = args.url
        if local_url is None:
            state = LocalServer(Path(tmp) / "state")
            port = free_port()
            spec = EngineSpec(
                "llamacpp",
                str(default_gguf()),
                args.model,
                port=port,
                threads=args.threads,
                chat_format=DEFAULT_CHAT_FORMAT,
            )
            started = time.perf_counter()
            local_url = state.start(spec, timeout_s=180).url
            startup_s = time.perf_counter() - started
            stack.callback(state.stop)
        else:
            startup_s = float("nan")
        up_port = free_port()
        frontier = stack.enter_context(ServerProcess(upstream_command(up_port), up_port, "/_stats"))
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY.format(model=args.model, base=local_url, frontier=frontier.url))
        proxy_port = free_port()
        ledger = args.ledger_url or f"sqlite:///{Path(tmp) / 'ledger.db'}"
        env = {"TIERWISE_LEDGER_URL": ledger}
        proxy = stack.enter_context(
            ServerProcess(proxy_command(policy, proxy_port), proxy_port, env=env)
        )
        targets = {
            "direct": (f"{local_url}/v1/chat/completions", args.model),
            "tierwise": (f"{proxy.url}/v1/chat/completions", "auto"),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        paired: list[float] = []
        with httpx.Client(timeout=300) as client:
            for url, model in targets.values():  # warm-up: caches, connections
                stream_once(client, url, model, PROMPTS[0], 4)
            for round_ in range(args.repeats):
                for i, prompt in enumerate(PROMPTS):
                    order = list(targets) if (round_ + i) % 2 == 0 else list(targets)[::-1]
                    got = {}
                    for name in order:
                        url, model = targets[name]
                        got[name] = stream_once(client, url, model, prompt, args.max_tokens)
                        runs[name].append(got[name])
                    assert got["tierwise"]["tier"] == "cheap", got["tierwise"]
                    paired.append(got["tierwise"]["ttft_s"] - got["direct"]["ttft_s"])
    summary = {name: summarise(r) for name, r in runs.items()}
    columns = ["path", "requests", "TTFT p50 ms", "TTFT p90 ms", "total p50 ms"]
    columns += ["decode tok/s p50", "end-to-end tok/s p50", "tokens p50"]
    show(
        f"local tier ({args.engine}, {args.model}), streamed, max_tokens={args.max_tokens}",
        columns,
        [[name, *s.values()] for name, s in summary.items()],
    )
    added = median(paired) * 1000
    print(f"TTFT added by tierwise (median of paired differences): {added:.1f} ms")
    path = save(
        args.out,
        {
            "engine": args.engine,
            "model": args.model,
            "max_tokens": args.max_tokens,
            "repeats": args.repeats,
            "prompts": len(PROMPTS),
            "server_startup_s": startup_s,
            "threads": args.threads,
            "ledger": "sqlite" if args.ledger_url is None else args.ledger_url,
            "summary": summary,
            "ttft_added_ms_p50": added,
            "ttft_added_ms_p90": pct(paired, 90) * 1000,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
