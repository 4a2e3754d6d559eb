"""A loopback HTTP file server for the download tests (Range requests included)."""
import http.server
import re
import threading


class FileServer:
    """Serves ``files`` (name -> bytes) on 127.0.0.1 at a free port.

    ``requests`` records ``(name, range header, status)`` of every GET.
    Knobs: ``honour_range`` (False answers 200 to ranges), ``html`` (names
    answered with a Google-Drive-like quota page) and ``cut_after`` (name ->
    bytes sent before the connection is dropped, announcing the full length).
    """

    def __init__(self, files=None):
        self.files = dict(files or {})
        self.requests = []
        self.honour_range = True
        self.html = set()
        self.cut_after = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server._serve(self)

            def log_message(self, *args):
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, name):
        return f"{self.base_url}/{name}"

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def statuses(self, name):
        return [status for served, _, status in self.requests if served == name]

    def _serve(self, handler):
        name = handler.path.lstrip("/")
        range_header = handler.headers.get("Range")
        if name in self.html:
            return self._send(handler, name, range_header, 200,
                              b"<!DOCTYPE html><html><title>Google Drive - Quota exceeded</title></html>",
                              content_type="text/html")
        if name not in self.files:
            return self._send(handler, name, range_header, 404, b"not found", content_type="text/plain")
        data = self.files[name]
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
        if not (match and self.honour_range):
            return self._send(handler, name, range_header, 200, data, cut=self.cut_after.get(name))
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else len(data) - 1
        if start >= len(data):
            return self._send(handler, name, range_header, 416, b"",
                              extra={"Content-Range": f"bytes */{len(data)}"})
        return self._send(handler, name, range_header, 206, data[start:end + 1],
                          extra={"Content-Range": f"bytes {start}-{end}/{len(data)}"})

    def _send(self, handler, name, range_header, status, body, content_type="application/octet-stream",
              extra=None, cut=None):
        self.requests.append((name, range_header, status))
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body if cut is None else body[:cut])
        handler.wfile.flush()
        if cut is not None:
            handler.close_connection = True
