"""kmapi.py  A small client for bridged's HTTP/JSON control API (urllib)."""

import json
import urllib.error
import urllib.request


class ApiError(Exception):
    def __init__(self, method, path, status, body):
        super().__init__("%s %s -> %s %s" % (method, path, status, body))
        self.status = status
        self.body = body


class Control:
    """Control API at http://ADDR:PORT with a bearer token."""

    def __init__(self, addr, token, timeout=10.0):
        self.base = "http://" + addr
        self.token = token
        self.timeout = timeout

    def request(self, method, path, body=None, token=True, raw=None,
                headers=None):
        """Return (status, parsed JSON or text or None).  Never raises on
        an HTTP error status."""
        data = None
        hdrs = {}
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
            hdrs["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if token:
            hdrs["Authorization"] = "Bearer " + (
                token if isinstance(token, str) else self.token)
        if headers:
            hdrs.update(headers)
        req = urllib.request.Request(self.base + path, data=data,
                                     headers=hdrs, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if not text:
            return status, None
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def ok(self, method, path, body=None, expect=(200, 201, 204)):
        st, js = self.request(method, path, body)
        if st not in expect:
            raise ApiError(method, path, st, js)
        return js

    # convenience wrappers
    def health(self):
        return self.request("GET", "/v1/health")[0] == 200

    def create_conference(self, cid, **kw):
        body = {"id": cid}
        body.update(kw)
        return self.ok("POST", "/v1/conferences", body)

    def add_leg(self, cid, body):
        return self.ok("POST", "/v1/conferences/%s/legs" % cid, body)

    def add_leg_status(self, cid, body):
        return self.request("POST", "/v1/conferences/%s/legs" % cid, body)

    def conference(self, cid):
        return self.ok("GET", "/v1/conferences/%s" % cid)

    def patch_leg(self, cid, leg, body):
        return self.ok("PATCH", "/v1/conferences/%s/legs/%s" % (cid, leg),
                       body)

    def delete_leg(self, cid, leg):
        return self.ok("DELETE", "/v1/conferences/%s/legs/%s" % (cid, leg))

    def delete_conference(self, cid):
        return self.ok("DELETE", "/v1/conferences/%s" % cid)

    def metrics(self):
        return self.request("GET", "/metrics")[1]
