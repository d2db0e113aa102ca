"""Whether the status page fits a screen WIDTH pixels wide without cutting columns.

Serves a wrapper page on 127.0.0.1 that loads the daemon's page into a same-origin iframe of
that width (srcdoc, so the wrapper's script may measure it), lets headless Chromium lay it out,
and reads back what the script measured: the document's width and every table wider than the
box that holds it (a table cut or scrolled sideways).

usage: fit.py DAEMON_URL CHROMIUM WIDTH [chromium flags...]
Prints the measurements; exits 1 when something does not fit.
"""
import http.server
import json
import re
import subprocess
import sys
import threading
import urllib.request

daemon, chromium, width = sys.argv[1], sys.argv[2], int(sys.argv[3])
flags = sys.argv[4:]

WRAPPER = """<!doctype html><html><body style="margin:0">
<iframe id="f" style="width:%dpx;height:3000px;border:0"></iframe>
<pre id="fit">pending</pre>
<script>
fetch('/page').then(r => r.text()).then(html => {
  const f = document.getElementById('f');
  f.onload = () => {
    const d = f.contentDocument;
    const cut = [];
    d.querySelectorAll('table').forEach((t, i) => {
      const box = t.parentElement;
      if (t.scrollWidth > box.clientWidth + 1 || t.getBoundingClientRect().right > %d + 1) {
        const head = t.querySelector('tr');
        cut.push({table: i, width: t.scrollWidth, box: box.clientWidth,
                  header: head ? head.textContent.slice(0, 80) : ''});
      }
    });
    document.getElementById('fit').textContent = JSON.stringify({
      document: d.documentElement.scrollWidth, tables: d.querySelectorAll('table').length, cut: cut});
  };
  // No refresh inside the frame: the measurement is of this one rendering.
  f.srcdoc = html.replace(/<meta http-equiv="refresh"[^>]*>/, '');
});
</script></body></html>""" % (width, width)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/page":
            with urllib.request.urlopen(daemon + "/", timeout=10) as r:
                body = r.read()
        else:
            body = WRAPPER.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = "http://127.0.0.1:%d/" % server.server_address[1]
try:
    dom = subprocess.run(
        [chromium, *flags, "--window-size=%d,1000" % (width + 40), "--virtual-time-budget=10000",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=90).stdout
finally:
    server.shutdown()
m = re.search(r'<pre id="fit">(.*?)</pre>', dom, re.S)
if not m or m.group(1) == "pending":
    print("MISSING: the wrapper did not measure the page")
    sys.exit(1)
fit = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
print(json.dumps(fit))
if fit["tables"] == 0 or fit["cut"] or fit["document"] > width:
    sys.exit(1)
