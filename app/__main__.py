"""`python -m app`: build the demo workspace if it is missing, then start Streamlit.

    python -m app                       # demo workspace in .demo/ (built once, offline)
    python -m app --home DIR            # your own workspace (atlases/, studies/, answers)
    python -m app --port 8600 --no-build
    python -m app --trusted-proxy 127.0.0.1   # behind a reverse proxy on this machine
    python -m app demo [--home DIR] [--quiet] # only build the demo workspace (app/demo.py)
    python -m app lean --port 8601      # the lean participant page only (app/lean/server.py)
    python -m app serve --processes 4 --db postgresql://... --port 8080
                                        # a crowd study: N lean processes, the researcher app,
                                        # nginx and PostgreSQL (app/serve.py, docs/APP.md)
    python -m app loadtest URL --study ID --participants 50   # simulated participants (app/loadtest/)

The demo workspace holds studies, so its command lives here, above core and study
(`COMMANDS`, dispatched like `python -m core` and `python -m study`).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app import auth
from app.workspace import REPO

# commands besides starting the app: name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("app.demo", "Build the demo workspace (synthetic birds, models, atlases, studies) without the app."),
    "lean": ("app.lean.server", "Serve the lean participant page only."),
    "serve": ("app.serve", "A crowd study: N lean participant processes, the researcher app, nginx and PostgreSQL."),
    "loadtest": ("app.loadtest.cli", "Simulated participants against a running participant page."),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        from common.cli import dispatch

        return dispatch("python -m app", COMMANDS, argv)
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=None, help="workspace folder (default: .demo)")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--no-build", action="store_true", help="do not build missing demo assets")
    parser.add_argument("--base-path", default="", help="serve the app under /PATH/ (behind a reverse proxy; "
                        "`python -m app serve` uses /researcher/)")
    parser.add_argument("--trusted-proxy", action="append", default=None, metavar="ADDR",
                        help="a reverse proxy (address or network) whose X-Forwarded-For header is "
                             "believed for the sign-in lockout; repeatable (default: none, or "
                             f"{auth.TRUSTED_PROXIES_ENV})")
    args = parser.parse_args(argv)
    if args.trusted_proxy is not None:
        os.environ[auth.TRUSTED_PROXIES_ENV] = ",".join(args.trusted_proxy)
    try:
        auth.trusted_proxies()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    home = os.path.abspath(args.home) if args.home else str(REPO / ".demo")
    os.environ["PROTOPROTO_HOME"] = home
    # participant links shown on "Run and monitor"; set it to the public address when proxied
    os.environ.setdefault("PROTOPROTO_BASE_URL", f"http://{args.address}:{args.port}/")
    if not args.no_build and not args.home:
        from common.errors import ToolkitError
        from app.demo import ensure_demo

        try:
            ensure_demo(Path(home), progress=True)
        except ToolkitError as exc:  # one clear line; what was built is kept
            print(f"error: building the demo workspace: {exc}", file=sys.stderr)
            return 1

    from app import processes

    warning, error = processes.check(home, os.environ.get("PROTOPROTO_DB"))   # SQLite shared by processes?
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)

    if not auth.configured_password():
        password = auth.generate_password()
        os.environ[auth.ENV_VAR] = password
        print(f"Researcher password (set {auth.ENV_VAR} to choose your own): {password}", flush=True)

    command = [
        sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "main.py"),
        "--server.headless=true", f"--server.port={args.port}", f"--server.address={args.address}",
        "--browser.gatherUsageStats=false",
        "--client.toolbarMode=minimal",   # participants get no "Deploy" button or developer menu
        "--client.showErrorDetails=none",  # a bug outside app/errors.py's wrapper: no traceback either
        "--server.maxUploadSize=10",      # MB; app/upload.py checks type and pixel count by content
    ]
    if args.base_path.strip("/"):
        command.append(f"--server.baseUrlPath={args.base_path.strip('/')}")
    print(f"Starting the app at http://{args.address}:{args.port}", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
