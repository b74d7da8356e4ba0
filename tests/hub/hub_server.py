#!/usr/bin/env python3
"""A local stand-in for the Hugging Face hub, for mmpipe's download tests.

It serves real fixture files the way huggingface.co does:
  HEAD/GET /<org>/<name>/resolve/<rev>/<path>
      small files: 200 with ETag = git blob sha1, X-Repo-Commit
      LFS files:   302 to /cdn/<sha256> with X-Linked-Etag = sha256, X-Linked-Size, X-Repo-Commit
      errors:      404 + X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound,
                   401 + X-Error-Code GatedRepo without the right bearer token
  GET /cdn/<sha256>          the blob, with Range support (206 + Content-Range)
  GET /api/models/<org>/<name>/revision/<rev>   {"sha": ..., "siblings": [{"rfilename": ...}]}

Modes (for failure tests): --cut-after N makes the first GET of every blob stop after N bytes (the
connection is closed although Content-Length promised more). Each request is logged as one line
"METHOD PATH range=<Range header> auth=<Authorization header>" to --log.
"""
import argparse
import hashlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_test_secret"


def git_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, files, lfs=(), gated=False, bad_sha=(), listing_extra=()):
        self.files = files            # path -> bytes
        self.lfs = set(lfs)           # paths served as LFS (redirect + sha256)
        self.gated = gated
        self.bad_sha = set(bad_sha)   # LFS paths whose announced sha256 is wrong
        self.listing_extra = list(listing_extra)  # names in the listing only (hostile server)


def build_repos(root):
    def rd(rel):
        with open(os.path.join(root, rel), "rb") as f:
            return f.read()

    smol = "hf/HuggingFaceTB--SmolVLM-256M-Instruct/"
    lora = "hf/lora-smollm2-360m-instruct-ml-tutor/"
    repos = {
        "HuggingFaceTB/SmolVLM-256M-Instruct": Repo(
            {
                "config.json": rd(smol + "config.json"),
                "generation_config.json": rd(smol + "generation_config.json"),
                "tokenizer.json": rd(smol + "tokenizer.json"),
                "tokenizer_config.json": rd(smol + "tokenizer_config.json"),
                "merges.txt": rd(smol + "merges.txt"),
                "README.md": rd(smol + "README.md"),
                # a real safetensors file stands in for the weights
                "model.safetensors": rd(lora + "adapter_model.safetensors"),
                "onnx/vision_encoder.onnx": b"not really onnx\n" * 100,
            },
            lfs=["model.safetensors", "tokenizer.json"],
        ),
        "acme/gated": Repo({"config.json": rd(smol + "config.json")}, gated=True),
        "acme/corrupt": Repo(
            {"config.json": b"{}\n", "model.safetensors": rd(lora + "adapter_model.safetensors")},
            lfs=["model.safetensors"], bad_sha=["model.safetensors"]),
        "acme/gguf-only": Repo(
            {"README.md": b"# gguf\n", "tiny-Q4_K_M.gguf": rd("gguf/ggml-vocab-gpt-2.gguf"),
             "tiny-Q8_0.gguf": rd("gguf/ggml-vocab-mpt.gguf")},
            lfs=["tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf"]),
        "acme/evil": Repo({"config.json": b"{}\n"},
                          listing_extra=["../../../../tmp/mmpipe-evil", "/etc/evil", "a/../../b"]),
    }
    return repos


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hubemu/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _log(self):
        with self.server.log_lock, open(self.server.log_path, "a") as f:
            f.write("%s %s range=%s auth=%s\n" % (self.command, self.path, self.headers.get("Range", "-"),
                                                   self.headers.get("Authorization", "-")))

    def _send(self, code, headers=(), body=b"", head=False):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        if not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _err(self, code, ecode, head):
        body = json.dumps({"error": ecode}).encode()
        self._send(code, [("X-Error-Code", ecode), ("X-Error-Message", ecode), ("Content-Type", "application/json")],
                   body, head)

    def _authorized(self, repo):
        return not repo.gated or self.headers.get("Authorization") == "Bearer " + TOKEN

    def do_HEAD(self):
        self._route(head=True)

    def do_GET(self):
        self._route(head=False)

    def _route(self, head):
        self._log()
        path = self.path.split("?")[0]
        parts = path.lstrip("/").split("/")
        if parts[0] == "cdn" and len(parts) == 2:
            return self._blob(parts[1], head)
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "revision":
            return self._api("/".join(parts[2:4]), parts[5], head)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]), head)
        self._err(404, "NotFound", head)

    def _api(self, repo_id, rev, head):
        repo = self.server.repos.get(repo_id)
        if repo is None:
            return self._err(404, "RepoNotFound", head)
        if not self._authorized(repo):
            return self._err(401, "GatedRepo", head)
        if rev not in ("main", COMMIT):
            return self._err(404, "RevisionNotFound", head)
        names = sorted(repo.files) + repo.listing_extra
        body = json.dumps({"id": repo_id, "sha": COMMIT, "siblings": [{"rfilename": n} for n in names]}).encode()
        self._send(200, [("Content-Type", "application/json")], body, head)

    def _resolve(self, repo_id, rev, fpath, head):
        repo = self.server.repos.get(repo_id)
        if repo is None:
            return self._err(404, "RepoNotFound", head)
        if not self._authorized(repo):
            return self._err(401, "GatedRepo", head)
        if rev not in ("main", COMMIT):
            return self._err(404, "RevisionNotFound", head)
        data = repo.files.get(fpath)
        if data is None:
            return self._err(404, "EntryNotFound", head)
        common = [("X-Repo-Commit", COMMIT)]
        if fpath in repo.lfs:
            sha = hashlib.sha256(data).hexdigest()
            served = sha
            if fpath in repo.bad_sha:
                sha = hashlib.sha256(data + b"x").hexdigest()  # announce the wrong checksum
            self.server.blobs[served] = data
            return self._send(302, common + [("Location", "http://127.0.0.1:%d/cdn/%s" % (self.server.port, served)),
                                             ("X-Linked-Etag", '"%s"' % sha), ("X-Linked-Size", str(len(data))),
                                             ("ETag", '"%s"' % git_sha1(data)), ("Content-Length", "0")], b"", head)
        self._send(200, common + [("ETag", '"%s"' % git_sha1(data)), ("Content-Type", "application/octet-stream")],
                   data, head)

    def _blob(self, sha, head):
        data = self.server.blobs.get(sha)
        if data is None:
            return self._err(404, "EntryNotFound", head)
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
        if start > len(data):
            return self._send(416, [("Content-Range", "bytes */%d" % len(data))], b"", head)
        body = data[start:]
        headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body))),
                   ("Accept-Ranges", "bytes")]
        code = 200
        if start:
            code = 206
            headers.append(("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data))))
        cut = self.server.cut_after
        with self.server.log_lock:
            first = sha not in self.server.cut_done
            if cut and first and not head:
                self.server.cut_done.add(sha)
        if cut and first and not head and len(body) > cut:
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        self._send(code, headers, body, head)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients that hang up are part of the tests
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="fixtures folder")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--cut-after", type=int, default=0)
    a = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    srv.repos = build_repos(a.root)
    srv.blobs = {}
    srv.cut_after = a.cut_after
    srv.cut_done = set()
    srv.log_path = a.log
    srv.log_lock = threading.Lock()
    srv.port = srv.server_address[1]
    # pre-register blobs so a resumed GET works without a prior HEAD
    for repo in srv.repos.values():
        for p in repo.lfs:
            srv.blobs[hashlib.sha256(repo.files[p]).hexdigest()] = repo.files[p]
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.port))
    os.rename(tmp, a.port_file)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
