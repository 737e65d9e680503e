"""Start the playground web UI: ``python app.py [--share] [--model PATH] [--backends a,b]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from a lab machine

DEFAULT_PORT = 7860


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from playground.engine.policy import DEFAULT_MAX_QUEUE, UNTRUSTED_MAX_TOKENS  # light: no gradio
    from playground.engine.quotas import DEFAULT_MAX_JOBS_PER_CLIENT, DEFAULT_MAX_TOKENS_PER_CLIENT_HOUR

    parser = argparse.ArgumentParser(
        description="Compare LLM inference runtimes side by side in the browser.",
        epilog="Only one comparison runs at a time on this machine; other users' runs wait their turn.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 lets the network in, "
                             "which turns on the untrusted-page restrictions)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", DEFAULT_PORT)),
                        help=f"port (default {DEFAULT_PORT}, or $GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true",
                        help="also open a temporary public gradio.live link (needs internet); page "
                             "users then cannot pick local folders or download models")
    parser.add_argument("--auth", metavar="USER:PASSWORD",
                        help="require this login on the page (with --share and no --auth, a login is "
                             "generated and printed)")
    parser.add_argument("--no-auth", action="store_true",
                        help="share without any login: anyone with the link can run prompts here")
    parser.add_argument("--model", default=None,
                        help="model preselected on the page and always allowed: 'smollm2' (default when "
                             "set up), 'demo' (default otherwise), a Hugging Face hub id, or a local "
                             "model folder")
    parser.add_argument("--backends", default="",
                        help="comma list of backends preselected on the page, each "
                             "name[:device[:precision]], e.g. openvino-genai:NPU:int4,transformers "
                             "(default: every usable backend)")
    parser.add_argument("--endpoint", action="append", default=[], metavar="NAME=URL[,model=M][,key_env=VAR]",
                        help="an OpenAI-compatible server (Ollama, LM Studio, vLLM, llama.cpp's server...) "
                             "as a backend named NAME, e.g. ollama=http://127.0.0.1:11434/v1,model=llama3.2; "
                             "the API key is read from the environment variable key_env (default "
                             "OPENAI_API_KEY); also label=TEXT, timeout=SECONDS; repeatable. Page users can "
                             "pick these, never add or change one")
    parser.add_argument("--allow-downloads", action="store_true",
                        help="let users of a shared / network page download hub models onto this machine")
    parser.add_argument("--public", action="store_true",
                        help="treat every client as a stranger even on 127.0.0.1: for a reverse proxy "
                             "or tunnel in front of the app, where every client looks local")
    parser.add_argument("--max-tokens-per-request", type=int, default=UNTRUSTED_MAX_TOKENS, metavar="N",
                        help="on a shared, network or --public page: the most tokens one comparison may "
                             "generate (lanes x prompts x (warm-up + runs) x max new tokens; default "
                             f"{UNTRUSTED_MAX_TOKENS:,}, 0 = no limit); the owner's loopback page has none")
    parser.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE, metavar="N",
                        help=f"comparisons that may wait their turn, all users together (default "
                             f"{DEFAULT_MAX_QUEUE}); more are refused with a message")
    parser.add_argument("--max-jobs-per-client", type=int, default=DEFAULT_MAX_JOBS_PER_CLIENT, metavar="N",
                        help="on a shared, network or --public page: comparisons one user (login, else "
                             "address) may have running or waiting at once (default "
                             f"{DEFAULT_MAX_JOBS_PER_CLIENT}, 0 = no limit)")
    parser.add_argument("--max-tokens-per-client-hour", type=int, default=DEFAULT_MAX_TOKENS_PER_CLIENT_HOUR,
                        metavar="N",
                        help="on a shared, network or --public page: tokens one user may ask for per "
                             "hour, counted like --max-tokens-per-request (default "
                             f"{DEFAULT_MAX_TOKENS_PER_CLIENT_HOUR:,}, 0 = no limit)")
    args = parser.parse_args(argv)
    if args.auth is not None and (":" not in args.auth or not args.auth.split(":", 1)[0]):
        parser.error("--auth must be USER:PASSWORD")
    if args.no_auth and args.auth:
        parser.error("--no-auth and --auth contradict each other")
    if not 1 <= args.port <= 65535:
        parser.error("--port must be 1-65535")
    if args.max_tokens_per_request < 0:
        parser.error("--max-tokens-per-request must be 0 (no limit) or more")
    if args.max_queue < 1:
        parser.error("--max-queue must be 1 or more")
    if args.max_jobs_per_client < 0 or args.max_tokens_per_client_hour < 0:
        parser.error("--max-jobs-per-client and --max-tokens-per-client-hour must be 0 (no limit) or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from playground import logs

    # Warnings (a lane failed, a worker crashed) on the console too; tracebacks in the file only.
    log_path = logs.configure("app", console_level=logging.WARNING)
    logging.getLogger("playground.app").info("app starting: %s", " ".join(sys.argv))
    from playground.history.retention import start_janitor

    start_janitor()  # old exports, worker logs and anonymous history are pruned now and every 15 minutes
    launch_note = ""
    if args.model is None:
        args.model, launch_note = default_model_choice()
    from playground.backends import backend_classes
    from playground.engine import endpoints
    from playground.engine.probing import probe_all

    try:
        for endpoint in endpoints.configure(args.endpoint):  # before the registry is read
            print(f"Endpoint {endpoints.describe(endpoint)}", flush=True)
    except endpoints.EndpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    backend_classes()  # import adapters here: imports racing in two threads can fail
    probes: dict = {}

    def probe() -> None:  # ~5 s in worker processes, while gradio imports here
        probes.update(probe_all())

    prober = threading.Thread(target=probe, name="probe", daemon=True)
    prober.start()

    from playground.engine.records import parse_backend_specs
    from playground.ui import CSS, AppOptions, build_app
    from playground.ui.options import share_login

    backends = (args.backends,) if args.backends.strip() else ()  # parsed by parse_backend_specs only
    try:
        specs = parse_backend_specs(args.backends)
    except ValueError as exc:
        print(f"error: --backends: {exc}", file=sys.stderr)
        return 2
    given = tuple(args.auth.split(":", 1)) if args.auth else None
    auth = share_login(args.share, given, args.no_auth)  # type: ignore[arg-type]
    options = AppOptions(
        host=args.host, port=args.port, share=args.share, auth=auth, model=args.model,
        backends=backends, allow_downloads=args.allow_downloads,
        launch_models=(args.model,), public=args.public,
        max_tokens_per_request=args.max_tokens_per_request, max_queue=args.max_queue,
        max_jobs_per_client=args.max_jobs_per_client,
        max_tokens_per_client_hour=args.max_tokens_per_client_hour,
    )
    print(f"Log: {log_path}", flush=True)
    print("Probing backends (each in its own process)…", flush=True)
    prober.join()
    unknown = [spec.backend for spec in specs if spec.backend not in probes]
    if unknown:
        print(f"error: --backends: unknown backend(s) {', '.join(unknown)}; known: {', '.join(probes)}",
              file=sys.stderr)
        return 2
    for name, found in probes.items():
        status = "ok" if found.usable else (found.reason or "no usable device")
        print(f"  {name}: {status}", flush=True)
    check_model(args.model)
    if launch_note:
        print(launch_note, flush=True)
    if args.share and not auth:
        bar = "!" * 78
        print(f"\n{bar}\n!! WARNING: sharing WITHOUT a login (--no-auth): anyone with the link can run "
              f"prompts on this machine.\n!! Drop --no-auth for a generated login, or add --auth "
              f"USER:PASSWORD.\n{bar}\n", flush=True)
    elif args.share and given is None:
        print(f"Shared page login (generated; pass --auth USER:PASSWORD to choose one, or --no-auth for "
              f"none): user {auth[0]}  password {auth[1]}", flush=True)
    if options.untrusted:
        limit = options.policy.max_tokens_per_request
        print("Untrusted page: local model folders are refused"
              + ("" if args.allow_downloads else " and hub downloads are off (--allow-downloads)")
              + f"; --model {args.model!r} stays allowed; at most "
              + (f"{limit:,} generated tokens" if limit else "unlimited work")
              + " per comparison (--max-tokens-per-request).", flush=True)
        quota = options.client_quota()
        if quota is not None:
            jobs = f"{quota.max_jobs} comparison(s) at a time" if quota.max_jobs else "any number at a time"
            tokens = f"{quota.max_tokens:,} tokens an hour" if quota.max_tokens else "unlimited tokens"
            print(f"Each user (login, else address): {jobs} (--max-jobs-per-client), {tokens} "
                  "(--max-tokens-per-client-hour).", flush=True)

    import gradio as gr
    from starlette.middleware import Middleware

    from playground.history.exports import exports_root
    from playground.ui.login_throttle import LoginThrottle
    from playground.ui.page_script import PageScript
    from playground.ui.request_guard import EventCallGuard
    from playground.ui.server_tuning import quiet_queue

    quota = options.client_quota()  # one per app: the middleware counts jobs, the engine path tokens
    app = build_app(options, probes, quota)
    app.launch(
        server_name=args.host, server_port=args.port, share=args.share,
        auth=LoginThrottle({auth[0]: auth[1]}) if auth else None,  # failed logins slow the next ones
        app_kwargs={"middleware": [
            Middleware(EventCallGuard, blocks=app, quota=quota, behind_proxy=args.public),  # 4xx, not 500s
            Middleware(PageScript),  # an idle page no longer takes a tenth of a core (page_script.py)
        ]},
        allowed_paths=[str(exports_root())],  # the page's downloads live in the user data folder
        theme=gr.themes.Soft(), css=CSS, prevent_thread_lock=True, show_error=True,
    )
    quiet_queue(app)
    if args.share and not app.share_url:
        print(f"\nSHARE LINK FAILED: the gradio share service could not be reached from this machine, "
              f"so there is no public link. Still serving locally at {app.local_url}", flush=True)
    app.block_thread()  # returns on Ctrl+C after closing the server
    return 0


def default_model_choice() -> tuple[str, str]:
    """The real model when set-up fetched it, else the demo; and a line saying which and why."""
    from playground.models.catalog import DEMO, SMOLLM2, default_model

    chosen = default_model()
    if chosen is SMOLLM2:
        return chosen.id, f"Opening on {SMOLLM2.title} ({SMOLLM2.licence}); `--model demo` for the tiny demo."
    return DEMO.id, (f"Opening on the demo model: {SMOLLM2.title} is not set up here "
                     f"({SMOLLM2.setup_hint}).")


def check_model(spec: str) -> None:
    """Say early when the launch model is missing; the page still starts and says it again."""
    from playground.models.resolve import ModelNotFoundError, resolve_model

    try:
        source = resolve_model(spec, allow_local_paths=True)
        print(f"Model: {source.name} ({source.path})", flush=True)
    except ModelNotFoundError as exc:
        print(f"WARNING: model {spec!r}: {exc}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
