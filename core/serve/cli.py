"""`python -m core serve`: serve a captioner over OpenAI's chat-completions API (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import sys

from core.annotate.captioners.registry import CAPTIONERS, CaptionerError, make_captioner


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "serve",
        help="an OpenAI-compatible chat endpoint (/v1/chat/completions, /v1/models) over a captioner",
        description="Serve one of the project's captioners the way vLLM / SGLang serve a VLM, so that "
        "`--captioner openai` can talk to it. Binds 127.0.0.1 unless told otherwise. The `grounded` "
        "captioner needs each request's 3D facts in a `densescan_facts` field.",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--captioner", default="grounded", choices=CAPTIONERS)
    p.add_argument(
        "--model-name", help="the model id clients send and /v1/models lists (default: captioner name)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the grounded captioner")
    p.add_argument("--model-path", help="local model directory, for --captioner hf")
    p.add_argument("--api-base", help="upstream endpoint, for --captioner openai (a relay)")
    p.add_argument("--model", help="upstream model name, for --captioner openai")
    p.add_argument("--delay", type=float, default=0.0, help="seconds added to every answer (latency model)")
    p.add_argument("--fail-rate", type=float, default=0.0, help="fraction of requests answered with HTTP 500")
    p.add_argument(
        "--test-hooks",
        action="store_true",
        help="also serve /_test/faults, /_test/stats, /_test/reset (fault injection for client tests)",
    )
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from core.serve.app import Faults, create_app

    try:
        captioner = make_captioner(
            args.captioner,
            api_base=args.api_base,
            model=args.model,
            model_path=args.model_path,
            seed=args.seed,
        )
    except CaptionerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = create_app(
        captioner,
        model_name=args.model_name,
        require_facts=args.captioner == "grounded",
        faults=Faults(delay=args.delay, fail_rate=args.fail_rate),
        test_hooks=args.test_hooks,
        seed=args.seed,
    )
    print(f"serving {args.model_name or captioner.name!r} on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
