"""Text files (queries, scripts, packages of them) kept in a GitLab repository, read at a chosen ref."""
import os
import posixpath
import uuid
from pathlib import Path

import gitlab
import requests

from django import forms

from connections.protocols.base import REQUIREMENTS, TEXT, Connector, ConnectorError, Secret, verify_tls_option
from connections.protocols.registry import register
from connections.protocols.web import decode_text, describe_request_error, option_flag

DEFAULT_REF = "main"
TREE_PAGE_SIZE = 100


def _clean_folder(folder):
    return (folder or "").strip().strip("/")


def split_ref(path):
    """`path@ref` -> (path, ref); a plain path -> (path, None)."""
    path = (path or "").strip().strip("/")
    if "@" in path:  # a ref may hold slashes (feature/x), a path rarely holds an @
        path, ref = path.rsplit("@", 1)
        return path.strip("/"), ref.strip() or None
    return path, None


@register
class GitlabText(Connector):
    kind = "gitlab"
    label = "GitLab"
    capabilities = frozenset({TEXT})
    caches_text = True
    # path: the GitLab base URL; database: the project's path ("group/project") or numeric id.
    fields = ("path", "database")
    field_labels = {"path": "GitLab URL", "database": "Project (path or numeric ID)"}
    secret_fields = {"token": Secret("Access token")}
    option_fields = {"ref": forms.CharField(label="Branch or tag", required=False),
                     "file_path": forms.CharField(label="File path in the repository", required=False),
                     "verify_tls": verify_tls_option()}
    harmless_options = frozenset({"ref", "file_path"})

    @property
    def base_url(self):
        return (self.connection.path or "").strip().rstrip("/")

    @property
    def project_name(self):
        return (self.connection.database or "").strip().strip("/")

    @property
    def default_ref(self):
        return (self.connection.options.get("ref") or DEFAULT_REF).strip()

    def client(self):
        if not self.base_url.lower().startswith(("http://", "https://")):
            raise ConnectorError("The GitLab address must be a URL such as https://gitlab.example.com",
                                 step="settings")
        if not self.project_name:
            raise ConnectorError("Set the GitLab project: its path (group/project) or its numeric id",
                                 step="settings")
        return gitlab.Gitlab(self.base_url, private_token=self.secret("token") or None, timeout=self.timeout,
                             ssl_verify=option_flag(self.connection.options, "verify_tls"))

    def _error(self, exc, not_found):
        """A ConnectorError for a python-gitlab or requests failure; `not_found` is the 404 sentence."""
        if isinstance(exc, requests.RequestException):
            return describe_request_error(exc, self.base_url, self.timeout, self.scrub)
        code = getattr(exc, "response_code", None)
        if isinstance(exc, gitlab.GitlabAuthenticationError) or code == 401:
            return ConnectorError(f"GitLab at {self.base_url} rejected the access token (HTTP 401): check that it "
                                  "is valid, not expired, and has the read_api or read_repository scope",
                                  step="authentication")
        if code == 403:
            return ConnectorError(f"The access token may not read project {self.project_name} (HTTP 403)",
                                  step="permission")
        if code == 404:
            return ConnectorError(not_found, step="fetch")
        detail = self.scrub(getattr(exc, "error_message", "") or exc)
        if code:
            return ConnectorError(f"GitLab answered HTTP {code}: {detail}", retryable=code >= 500 or code == 429,
                                  step="fetch")
        return ConnectorError(f"GitLab error: {detail}", step="fetch")

    def project(self):
        client = self.client()
        try:
            return client.projects.get(self.project_name)
        except (gitlab.GitlabError, requests.RequestException) as exc:
            raise self._error(exc, f"Project {self.project_name} not found on {self.base_url}, or the token "
                                   "cannot see it") from None

    def _file_bytes(self, project, file_path, ref):
        try:
            return project.files.get(file_path=file_path, ref=ref).decode()
        except (gitlab.GitlabError, requests.RequestException) as exc:
            raise self._error(exc, f"File {file_path} not found at ref {ref} in project {self.project_name}") from None

    def fetch_bytes(self, file_path=None, ref=None):
        file_path = (file_path or self.connection.options.get("file_path") or "").strip().strip("/")
        if not file_path:
            raise ConnectorError("Set the path of the file in the repository", step="settings")
        return self._file_bytes(self.project(), file_path, ref or self.default_ref)

    def fetch_text(self, file_path=None, ref=None):
        data = self.fetch_bytes(file_path, ref)
        return decode_text(data, "utf-8-sig", file_path or self.connection.options.get("file_path"))

    def _tree(self, project, folder, ref):
        try:
            items = project.repository_tree(path=folder, ref=ref, recursive=True, get_all=True,
                                            per_page=TREE_PAGE_SIZE)
        except (gitlab.GitlabError, requests.RequestException) as exc:
            raise self._error(exc, f"Folder {folder or '/'} not found at ref {ref} in project "
                                   f"{self.project_name}") from None
        return sorted(item["path"] for item in items if item.get("type") == "blob")

    def list_tree(self, folder="", ref=None):
        """Paths (from the repository root) of every file under `folder`, at any depth."""
        return self._tree(self.project(), _clean_folder(folder), ref or self.default_ref)

    def fetch_folder(self, folder, ref, target_dir):
        """Write every file under `folder` into `target_dir`, keeping paths relative to `folder`; return them."""
        folder, ref = _clean_folder(folder), ref or self.default_ref
        project = self.project()
        paths = self._tree(project, folder, ref)
        if not paths:
            raise ConnectorError(f"No files under {folder or '/'} at ref {ref} in project {self.project_name}",
                                 step="fetch")
        target = Path(target_dir).resolve()
        written = []
        for path in paths:
            relative = posixpath.relpath(path, folder) if folder else path
            destination = (target / relative).resolve()
            if not destination.is_relative_to(target) or destination == target:
                raise ConnectorError(f"The repository path {path!r} would be written outside the target folder",
                                     step="fetch")
            data = self._file_bytes(project, path, ref)
            destination.parent.mkdir(parents=True, exist_ok=True)
            temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.part")
            temporary.write_bytes(data)
            os.replace(temporary, destination)
            written.append(relative)
        return written

    def fetch_text_files(self, path, target_dir, *, what="text", folder=False, script=False):
        """`path` may name a ref after `@` (`queries/daily.sql@release`); else the connection's ref is used.
        A blank path is the connection's own file path."""
        path, ref = split_ref(path)
        target_dir = Path(target_dir)
        if folder:
            self.fetch_folder(path, ref, target_dir)
            return None
        data = self.fetch_bytes(path or None, ref)
        name = posixpath.basename(path or self.connection.options.get("file_path") or "text")
        (target_dir / name).write_bytes(data)
        if script and name != REQUIREMENTS and path:
            try:
                (target_dir / REQUIREMENTS).write_bytes(
                    self.fetch_bytes(posixpath.join(posixpath.dirname(path), REQUIREMENTS), ref))
            except ConnectorError:
                pass  # a script without a requirements.txt is the common case
        return name

    def test(self):
        project = self.project()
        file_path = (self.connection.options.get("file_path") or "").strip().strip("/")
        ref = self.default_ref
        name = getattr(project, "path_with_namespace", self.project_name)
        if not file_path:
            return f"Connected; project {name} is readable"
        data = self._file_bytes(project, file_path, ref)
        return f"Connected; {file_path} at ref {ref} in {name} has {len(data)} bytes"
