"""`python -m core serve`: serve a captioner over OpenAI's chat-completions API (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from core.annotate.captioners.registry import CAPTIONERS, CaptionerError, make_captioner
from core.serve.limits import MIB, Limits


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "serve",
        help="an OpenAI-compatible chat endpoint (/v1/chat/completions, /v1/models) over a captioner",
        description="Serve one of the project's captioners the way vLLM / SGLang serve a VLM, so that "
        "`--captioner openai` can talk to it. Binds 127.0.0.1 unless told otherwise. The `grounded` "
        "captioner needs each request's 3D facts in a `densescan_facts` field; `ross3d` (the project's "
        "Ross3D, --checkpoint, --scans) needs their `key` ('<scene_id>|<object_id>'): send --send-facts.",
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
    p.add_argument(
        "--checkpoint", help="a trained Ross3D folder, for --captioner ross3d (default: assets/ross3d)"
    )
    p.add_argument("--scans", help="dataset root the scenes are read from, for --captioner ross3d")
    p.add_argument("--device", help="cpu / cuda, for --captioner ross3d or hf (default: cuda if present)")
    p.add_argument("--api-base", help="upstream endpoint, for --captioner openai (a relay)")
    p.add_argument("--model", help="upstream model name, for --captioner openai")
    p.add_argument("--delay", type=float, default=0.0, help="seconds added to every answer (latency model)")
    p.add_argument("--fail-rate", type=float, default=0.0, help="fraction of requests answered with HTTP 500")
    limits = p.add_argument_group(
        "request limits",
        "checked before the cost is paid (the body as it arrives, image headers before decoding); a "
        "request over a limit gets an OpenAI-format 4xx error, which clients do not retry",
    )
    limits.add_argument(
        "--max-body-mb",
        type=positive(float),
        default=Limits.max_body_bytes / MIB,
        help="largest request body in MiB, base64 images included (default %(default)g; over it: 413)",
    )
    limits.add_argument(
        "--max-images",
        type=positive(int),
        default=Limits.max_images,
        help="most images in one request (default %(default)d)",
    )
    limits.add_argument(
        "--max-image-pixels",
        type=positive(int),
        default=Limits.max_image_pixels,
        help="most pixels (width x height, read from the header) of one image (default %(default)d = 4096^2)",
    )
    limits.add_argument(
        "--max-total-pixels",
        type=positive(int),
        default=Limits.max_total_pixels,
        help="most pixels of all images of one request together (default %(default)d; an RGB image takes "
        "3 bytes a pixel once decoded)",
    )
    p.add_argument(
        "--test-hooks",
        action="store_true",
        help="also serve /_test/faults, /_test/stats, /_test/reset (fault injection for client tests)",
    )
    p.set_defaults(run=run_serve)


def positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: a number of `kind` above 0, or a one-line usage error."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
        return value

    return parse


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from core.serve.app import Faults, create_app

    try:
        captioner = make_captioner(
            args.captioner,
            api_base=args.api_base,
            model=args.model,
            model_path=args.checkpoint if args.captioner == "ross3d" else args.model_path,
            seed=args.seed,
            scans=args.scans,
            device=args.device,
        )
    except CaptionerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = create_app(
        captioner,
        model_name=args.model_name,
        require_facts=args.captioner in ("grounded", "ross3d"),
        faults=Faults(delay=args.delay, fail_rate=args.fail_rate),
        test_hooks=args.test_hooks,
        seed=args.seed,
        limits=Limits(
            max_body_bytes=max(1, int(args.max_body_mb * MIB)),
            max_images=args.max_images,
            max_image_pixels=args.max_image_pixels,
            max_total_pixels=args.max_total_pixels,
        ),
    )
    print(f"serving {args.model_name or captioner.name!r} on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
