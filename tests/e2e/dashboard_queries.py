#!/usr/bin/env python3
"""Runs every panel query of dashboards/s3canary.json against a real Prometheus and fails on a
query error or an empty result (a panel that would show "No data").

usage: dashboard_queries.py PROMETHEUS_URL DASHBOARD_JSON SECONDS_OF_HISTORY
"""
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# Grafana variables, as a dashboard with "All" selected expands them.
VARIABLES = {
    "$__rate_interval": "30s",
    "$target": ".*",
    "$region": ".*",
    "$bucket": ".*",
    "$job": ".*",
}


def expand(expr):
    for k, v in VARIABLES.items():
        expr = expr.replace(k, v)
    return expr


def query_range(base, expr, start, end):
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "5"})
    try:
        with urllib.request.urlopen(f"{base}/api/v1/query_range?{q}", timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def main():
    base, path, history = sys.argv[1], sys.argv[2], float(sys.argv[3])
    dash = json.load(open(path))
    end = time.time()
    start = end - history
    failures, checked = 0, 0
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            expr = expand(t["expr"])
            res = query_range(base, expr, start, end)
            checked += 1
            title = f'{panel["title"]} [{t["refId"]}]'
            if res.get("status") != "success":
                print(f"ERROR  {title}: {res.get('error')}\n       {expr}")
                failures += 1
            elif not any(
                v[1] != "NaN" for s in res["data"]["result"] for v in s.get("values", [])
            ):
                print(f"EMPTY  {title}\n       {expr}")
                failures += 1
            else:
                print(f"ok     {title}: {len(res['data']['result'])} series")
    print(f"dashboard queries: {checked - failures} passed, {failures} failed")
    sys.exit(1 if failures or not checked else 0)


if __name__ == "__main__":
    main()
