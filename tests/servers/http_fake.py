"""A small threaded HTTP server on 127.0.0.1: raw files for the Web connection, and the few GitLab v4
endpoints python-gitlab uses (projects.get, projects.files.get, repository_tree) for the GitLab one.

No GitLab can be installed here, so this stands in for it; the replies carry exactly the fields and
pagination headers python-gitlab reads. Start one per session with start_http_fake(); a test that needs
to stop a server mid-test starts its own.
"""
import base64
import hashlib
import json
import posixpath
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

GITLAB_TOKEN = "glpat-fake-Token-4711"
DEFAULT_PER_PAGE = 20


@dataclass
class RawFile:
    data: bytes
    content_type: str = "text/plain; charset=utf-8"
    auth: tuple | None = None  # (header name, exact value) the request must carry
    delay: float = 0.0  # seconds to wait before answering (timeout tests)
    send_length: bool = True  # False: no Content-Length, the body simply ends when the connection closes


@dataclass
class FakeProject:
    id: int
    path_with_namespace: str
    refs: dict = field(default_factory=dict)  # ref -> {file path: bytes}


class FakeHttpServer:
    # Small on purpose, so every recursive listing in the tests spans several pages.
    max_per_page = 3

    def __init__(self):
        self.files = {}
        self.projects = {}
        self.gitlab_token = GITLAB_TOKEN
        self.requests = []  # (method, path with query, headers) of every request, for assertions
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a handler still sleeping in a timeout test must not block stop()
        self._server.fake = self
        self._thread = None

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"http-fake-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop listening; the port refuses connections afterwards."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def add_file(self, path, data, **options):
        """Serve `data` at `path` (e.g. "/raw/query.sql"); return its full URL."""
        self.files[path] = RawFile(data.encode() if isinstance(data, str) else data, **options)
        return self.url + path

    def add_project(self, path_with_namespace, files, ref="main"):
        """A GitLab project (or another ref of it) holding {file path: text or bytes}."""
        project = self.projects.get(path_with_namespace)
        if project is None:
            project = FakeProject(id=1000 + len(self.projects), path_with_namespace=path_with_namespace)
            self.projects[path_with_namespace] = project
        project.refs[ref] = {name: data.encode() if isinstance(data, str) else data for name, data in files.items()}
        return project

    def find_project(self, key):
        for project in self.projects.values():
            if key in (project.path_with_namespace, str(project.id)):
                return project
        return None


def start_http_fake():
    return FakeHttpServer().start()


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeHTTP/1.0"

    def log_message(self, format, *args):  # keep test output clean
        pass

    @property
    def fake(self):
        return self.server.fake

    def do_GET(self):
        self.fake.requests.append(("GET", self.path, dict(self.headers)))
        try:
            parts = urlsplit(self.path)
            if parts.path.startswith("/api/v4/"):
                self._gitlab(parts.path.removeprefix("/api/v4/"), parse_qs(parts.query))
            else:
                self._raw(parts.path)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    # --- raw files --------------------------------------------------------------------------------

    def _raw(self, path):
        served = self.fake.files.get(path)
        if served is None:
            return self._send(404, b"not found\n", "text/plain")
        if served.delay:
            time.sleep(served.delay)
        if served.auth is not None and self.headers.get(served.auth[0]) != served.auth[1]:
            return self._send(401, b"unauthorized\n", "text/plain")
        self._send(200, served.data, served.content_type, length=served.send_length)

    # --- GitLab v4 --------------------------------------------------------------------------------

    def _gitlab(self, route, query):
        if self.headers.get("PRIVATE-TOKEN") != self.fake.gitlab_token:
            return self._json(401, {"message": "401 Unauthorized"})
        # Project paths and file paths arrive %2F-encoded, so split before decoding.
        segments = route.split("/")
        if segments[0] != "projects" or len(segments) < 2:
            return self._json(404, {"error": "404 Not Found"})
        project = self.fake.find_project(unquote(segments[1]))
        if project is None:
            return self._json(404, {"message": "404 Project Not Found"})
        rest = segments[2:]
        if not rest:
            return self._json(200, {"id": project.id, "path_with_namespace": project.path_with_namespace,
                                    "name": project.path_with_namespace.rsplit("/", 1)[-1],
                                    "default_branch": "main"})
        ref = (query.get("ref") or ["main"])[0]
        files = project.refs.get(ref)
        if rest[:2] == ["repository", "files"] and len(rest) == 3:
            return self._file(files, unquote(rest[2]), ref)
        if rest == ["repository", "tree"]:
            return self._tree(files, query)
        return self._json(404, {"error": "404 Not Found"})

    def _file(self, files, file_path, ref):
        if files is None or file_path not in files:
            return self._json(404, {"message": "404 File Not Found"})
        data = files[file_path]
        self._json(200, {
            "file_name": posixpath.basename(file_path), "file_path": file_path, "size": len(data),
            "encoding": "base64", "content": base64.b64encode(data).decode(), "ref": ref,
            "content_sha256": hashlib.sha256(data).hexdigest(), "blob_id": hashlib.sha1(data).hexdigest(),
            "commit_id": "0" * 40, "last_commit_id": "0" * 40,
        })

    def _tree(self, files, query):
        if files is None:
            return self._json(404, {"message": "404 Tree Not Found"})
        folder = (query.get("path") or [""])[0].strip("/")
        recursive = (query.get("recursive") or ["false"])[0].lower() == "true"
        entries = _tree_entries(files, folder, recursive)
        if entries is None:
            return self._json(404, {"message": "404 Tree Not Found"})
        per_page = min(int((query.get("per_page") or [DEFAULT_PER_PAGE])[0]), self.fake.max_per_page)
        page = int((query.get("page") or ["1"])[0])
        total_pages = max(1, -(-len(entries) // per_page))
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(entries)),
                   "X-Total-Pages": str(total_pages), "X-Next-Page": "",
                   "X-Prev-Page": str(page - 1) if page > 1 else ""}
        if page < total_pages:
            following = {key: values[0] for key, values in query.items()} | {"page": page + 1, "per_page": per_page}
            next_url = f"{self.fake.url}{urlsplit(self.path).path}?{urlencode(following)}"
            headers["X-Next-Page"] = str(page + 1)
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._json(200, entries[(page - 1) * per_page:page * per_page], headers)

    # --- replies ----------------------------------------------------------------------------------

    def _json(self, status, body, headers=None):
        self._send(status, json.dumps(body).encode(), "application/json", headers=headers)

    def _send(self, status, data, content_type, length=True, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _tree_entries(files, folder, recursive):
    """GitLab tree entries under `folder`: files ("blob") and the folders between them ("tree")."""
    prefix = f"{folder}/" if folder else ""
    blobs = sorted(name for name in files if name.startswith(prefix))
    if folder and not blobs:
        return None
    entries = {}
    for name in blobs:
        parts = name[len(prefix):].split("/")
        for depth in range(1, len(parts) + 1):
            if not recursive and depth > 1:
                break
            path = prefix + "/".join(parts[:depth])
            entries[path] = "blob" if depth == len(parts) else "tree"
    return [{"id": hashlib.sha1(path.encode()).hexdigest(), "name": posixpath.basename(path), "type": kind,
             "path": path, "mode": "100644" if kind == "blob" else "040000"}
            for path, kind in sorted(entries.items())]
