"""`python -m app serve`: a crowd study on one machine — N lean participant processes, the
Streamlit researcher app, nginx in front, and the PostgreSQL answer store.

    python -m app serve --home HOME --processes 4 --db local --port 8080
    python -m app serve --home HOME --processes 4 --db postgresql://USER@HOST/DB \\
        --port 443 --address 0.0.0.0 --tls-cert cert.pem --tls-key key.pem --public-url https://study.example.org/

Layout behind the one public address:
- `/?study=...` and `/media/...`: the lean participant page (app/lean/), N processes.
  They keep no state between requests (the link finds the participant in the store),
  so nginx spreads them by least connections, and when one dies it sends the request
  to another (`proxy_next_upstream`, POSTs included: an answer POST is idempotent);
  this command restarts a process that died. nginx keeps the media files it was served
  (a cache in --run-dir), so a picture costs the participant processes one request in all.
- `/researcher/`: the Streamlit researcher app (password), over its websocket; sticky
  (`hash $remote_addr`), as Streamlit keeps a session in one process.
- `/` without a study: a redirect to `/researcher/`.
Participant links use the public address (`PROTOPROTO_BASE_URL`, set from --public-url,
else from --address/--port). Ctrl-C or SIGTERM stops everything; children also stop if
this process is killed (app/children.py).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from app import children
from app.workspace import REPO
from study.errors import StudyError

RESEARCHER_PATH = "researcher"
START_POSTGRES = "local"             # --db local: start a PostgreSQL server on this machine (not a platform name)


NGINX_ENV = "PROTOPROTO_NGINX"     # the nginx binary, when not on PATH or in /usr/sbin


def find_nginx() -> str:
    chosen = os.environ.get(NGINX_ENV)
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise StudyError(f"nginx is not installed at {chosen} ({NGINX_ENV}): run `bash scripts/setup.sh` "
                             f"(or apt-get install nginx), or unset {NGINX_ENV}")
        return chosen
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if not found:
        raise StudyError("nginx is not installed: run `bash scripts/setup.sh` (or apt-get install nginx)")
    return found


def check_port(address: str, port: int) -> None:
    """A busy public port is one clear line, before anything starts."""
    import errno

    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StudyError(f"port {port} on {address} is already in use (is `python -m app serve` already "
                                 "running? stop it, or choose another --port)") from None
            raise StudyError(f"cannot listen on {address}:{port} ({exc.strerror or exc})") from None


def nginx_conf(run: Path, tmp: Path, listen: str, participants: list[int], researcher: int,
               tls: tuple[str, str] | None, user: str | None) -> str:
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in participants)
    temp = "\n".join(f"  {kind}_temp_path {tmp / kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    ssl = (f"    listen {listen} ssl;\n    ssl_certificate {tls[0]};\n    ssl_certificate_key {tls[1]};\n"
           "    ssl_protocols TLSv1.2 TLSv1.3;\n") if tls else f"    listen {listen};\n"
    common = """      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;"""
    participant = f"""{common}
      proxy_set_header Connection "";
      proxy_pass http://participants;
      proxy_connect_timeout 2s;
      proxy_read_timeout 60s;
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries {len(participants) + 1};"""
    return f"""# written by `python -m app serve` (app/serve.py); regenerated at every start
{'user ' + user + ';' if user else ''}
worker_processes 1;
pid {run / 'nginx.pid'};
error_log {run / 'nginx-error.log'} warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  server_tokens off;
{temp}
  client_max_body_size 12m;
  # the studies' media files (immutable, opaque names, only those a study lists: the lean
  # page checks the name once) are kept by nginx after the first request
  proxy_cache_path {tmp / 'media-cache'} levels=1:2 keys_zone=media:10m max_size=2g inactive=1d use_temp_path=off;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream participants {{
    least_conn;
{servers}
    keepalive 128;
  }}
  upstream researcher {{
    hash $remote_addr consistent;
    server 127.0.0.1:{researcher};
  }}
  server {{
{ssl}    location = / {{
{participant}
    }}
    location /media/ {{
{participant}
      proxy_cache media;
      proxy_cache_valid 200 1d;
      proxy_cache_lock on;
    }}
    location = /healthz {{
{participant}
    }}
    location /{RESEARCHER_PATH}/ {{
{common}
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_pass http://researcher;
      proxy_read_timeout 1d;
      proxy_buffering off;
    }}
    location / {{ return 404; }}
  }}
}}
"""


def _wait_http(url: str, proc, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise StudyError(f"{what} stopped at start (exit status {proc.returncode}; see its log)")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise StudyError(f"{what} did not answer at {url} within {timeout:g} s")
        time.sleep(0.2)


def _bind_local() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Crowd:
    """Everything `serve` started, in start order; `stop()` ends it in reverse."""

    def __init__(self, args, home: Path, run: Path):
        self.args, self.home, self.run = args, home, run
        self.procs: list = []
        self.pg = None
        self.nginx = None
        self.researcher = None
        self.nginx_tmp: Path | None = None
        self.lean: list = []          # (socket, process)
        self.db: str | None = None
        self.public_url = ""

    def _env(self) -> dict:
        env = dict(os.environ, PROTOPROTO_HOME=str(self.home), PROTOPROTO_BASE_URL=self.public_url,
                   PYTHONUNBUFFERED="1")
        if self.db:
            env["PROTOPROTO_DB"] = self.db
        else:
            env.pop("PROTOPROTO_DB", None)
        return env

    def _log(self, name: str):
        return open(self.run / f"{name}.log", "ab")

    def start_lean(self, index: int) -> None:
        sock = self.lean[index][0] if index < len(self.lean) else _bind_local()
        cmd = [sys.executable, "-m", "app", "lean", "--fd", str(sock.fileno()),
               "--researcher-url", f"/{RESEARCHER_PATH}/"]
        proc = children.start(cmd, env=self._env(), log=self._log(f"lean-{index}"), pass_fds=(sock.fileno(),))
        if index < len(self.lean):
            self.lean[index] = (sock, proc)
        else:
            self.lean.append((sock, proc))

    def start(self) -> None:
        args = self.args
        nginx = find_nginx()
        check_port(args.address, args.port)
        tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
        scheme = "https" if tls else "http"
        host = args.address if args.address not in ("0.0.0.0", "::") else "127.0.0.1"
        self.public_url = args.public_url or f"{scheme}://{host}:{args.port}/"
        # the store
        if args.db == START_POSTGRES:
            from app import pgserver

            self.pg, self.db = pgserver.start(Path(args.pg_data or self.home / ".postgres"), self.run / "postgres.log",
                                              max_connections=max(100, 40 * args.processes + 40))
            self.procs.append(self.pg)
        elif args.db and "://" in args.db and args.db.split("://")[0].startswith("postgres"):
            from app import pgserver

            pgserver.check_url(args.db)
            self.db = args.db
        else:
            self.db = args.db
            if args.processes > 1:
                print(f"warning: {args.processes} processes share SQLite answer stores; for a crowd use "
                      "PostgreSQL (--db local, or --db postgresql://...)", file=sys.stderr, flush=True)
        # the researcher app
        port = _bind_local()
        researcher_port = port.getsockname()[1]
        port.close()
        cmd = [sys.executable, "-m", "app", "--home", str(self.home), "--no-build", "--port", str(researcher_port),
               "--address", "127.0.0.1", "--trusted-proxy", "127.0.0.1", "--base-path", RESEARCHER_PATH]
        self.researcher = children.start(cmd, env=self._env(), log=self._log("researcher"))
        self.procs.append(self.researcher)
        # the participant processes
        for index in range(args.processes):
            self.start_lean(index)
        for index, (sock, proc) in enumerate(self.lean):
            _wait_http(f"http://127.0.0.1:{sock.getsockname()[1]}/healthz", proc, f"participant process {index}")
        _wait_http(f"http://127.0.0.1:{researcher_port}/{RESEARCHER_PATH}/_stcore/health", self.researcher,
                   "the researcher app")
        # the proxy
        # nginx's temporary files and media cache: a folder of its own under the system's
        # temporary folder, which nginx's workers (www-data when started as root) can reach
        self.nginx_tmp = Path(tempfile.mkdtemp(prefix="protoproto-nginx-"))
        user = None
        if os.geteuid() == 0:
            user = "www-data"
            shutil.chown(self.nginx_tmp, user, user)
        conf = self.run / "nginx.conf"
        conf.write_text(nginx_conf(self.run, self.nginx_tmp, f"{'[' + args.address + ']' if ':' in args.address else args.address}:"
                                   f"{args.port}", [s.getsockname()[1] for s, _ in self.lean], researcher_port,
                                   tls, user))
        test = children.start([nginx, "-t", "-q", "-p", str(self.run), "-c", str(conf)], log=self._log("nginx"))
        if test.wait() != 0:
            raise StudyError(f"nginx refused its configuration {conf} (see {self.run / 'nginx.log'})")
        self.nginx = children.start([nginx, "-p", str(self.run), "-c", str(conf), "-g", "daemon off;"],
                                    log=self._log("nginx"))
        _wait_http(f"http://127.0.0.1:{args.port}/healthz" if not tls else
                   f"http://127.0.0.1:{self.lean[0][0].getsockname()[1]}/healthz", self.nginx, "nginx")

    def supervise(self, stop_flag: list[bool]) -> None:
        """Restart a participant process that died; stop when another part dies or on a signal."""
        while not stop_flag:
            for index, (_, proc) in enumerate(self.lean):
                if proc.poll() is not None:
                    print(f"participant process {index} ended (status {proc.returncode}); restarting it",
                          file=sys.stderr, flush=True)
                    self.start_lean(index)
            for name, proc in (("nginx", self.nginx), ("the researcher app", self.researcher), ("PostgreSQL", self.pg)):
                if proc is not None and proc.poll() is not None:
                    print(f"error: {name} ended (status {proc.returncode}; logs in {self.run}); stopping",
                          file=sys.stderr, flush=True)
                    return
            time.sleep(0.5)

    def stop(self) -> None:
        if self.nginx is not None:
            children.stop([self.nginx], signal.SIGQUIT, 10)
        children.stop([p for _, p in self.lean] + ([self.researcher] if self.researcher else []), grace_s=10)
        for sock, _ in self.lean:
            sock.close()
        if self.pg is not None:
            children.stop([self.pg], signal.SIGINT, 20)      # fast shutdown: clients are gone
        if self.nginx_tmp is not None:
            shutil.rmtree(self.nginx_tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=os.environ.get("PROTOPROTO_HOME"),
                        help="workspace folder (default: $PROTOPROTO_HOME, else the demo workspace .demo, "
                             "built first if missing, as `python -m app` does)")
    parser.add_argument("--processes", type=int, default=2, help="lean participant processes (default 2)")
    parser.add_argument("--db", default=os.environ.get("PROTOPROTO_DB"),
                        help="answer store: 'local' (start PostgreSQL here, data in --pg-data), a PostgreSQL URL, "
                             "or a SQLite path (default: each study's answers.sqlite; not for a crowd)")
    parser.add_argument("--pg-data", default=None, help="data folder of --db local (default HOME/.postgres)")
    parser.add_argument("--proxy", default="nginx", choices=("nginx",), help="the reverse proxy (Debian's nginx)")
    parser.add_argument("--port", type=int, default=8080, help="the public port (default 8080)")
    parser.add_argument("--address", default="127.0.0.1", help="the public address (0.0.0.0: every interface)")
    parser.add_argument("--tls-cert", default=None, help="certificate (PEM) for HTTPS at the proxy")
    parser.add_argument("--tls-key", default=None, help="its private key (PEM)")
    parser.add_argument("--public-url", default=None, help="the address participants open (PROTOPROTO_BASE_URL), "
                        "e.g. https://study.example.org/ (default: from --address and --port)")
    parser.add_argument("--run-dir", default=None, help="configuration and logs (default: a temporary folder)")
    args = parser.parse_args(argv)
    if not 1 <= args.processes <= 64:
        parser.error("--processes must be between 1 and 64")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    for name in ("tls_cert", "tls_key"):
        value = getattr(args, name)
        if value and not os.path.isfile(value):
            print(f"error: --{name.replace('_', '-')} {value}: no such file", file=sys.stderr)
            return 2
        if value:
            setattr(args, name, os.path.abspath(value))
    home = Path(args.home or REPO / ".demo").resolve()
    if not args.home:
        from app.demo import ensure_demo
        from common.errors import ToolkitError

        try:
            ensure_demo(home, progress=True)
        except ToolkitError as exc:
            print(f"error: building the demo workspace: {exc}", file=sys.stderr)
            return 1
    if not (home / "studies").is_dir():
        print(f"error: {home}: no studies/ folder (not a workspace; build one with `python -m app` or "
              "`python -m study build ... --out HOME/studies/ID`)", file=sys.stderr)
        return 2
    from app import auth

    if not auth.configured_password():
        password = auth.generate_password()
        os.environ[auth.ENV_VAR] = password
        print(f"Researcher password (set {auth.ENV_VAR} to choose your own): {password}", flush=True)
    run = Path(args.run_dir).resolve() if args.run_dir else Path(tempfile.mkdtemp(prefix="protoproto-serve-"))
    run.mkdir(parents=True, exist_ok=True)
    os.chmod(run, 0o755)
    crowd = Crowd(args, home, run)
    stop_flag: list[bool] = []

    def on_signal(signum, _frame):
        stop_flag.append(True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = 0
    try:
        crowd.start()
        print(f"Participants: {crowd.public_url}?study=ID (links on the researcher's 'Run and monitor' page)\n"
              f"Researcher:   {crowd.public_url.rstrip('/')}/{RESEARCHER_PATH}/\n"
              f"{args.processes} participant processes, store {_safe(crowd.db)}; logs in {run}. "
              "Ctrl-C stops everything.", flush=True)
        if not stop_flag:
            crowd.supervise(stop_flag)
            code = 0 if stop_flag else 1
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    finally:
        crowd.stop()
    print("stopped", flush=True)
    return code


def _safe(db: str | None) -> str:
    if not db:
        return "each study's answers.sqlite"
    if "://" not in db:
        return db
    from study.store import shown_url

    return shown_url(db)
