#!/usr/bin/env python3
"""Judges what Prism said about the integration tests' traffic (hack/test-prism.sh).

Reads the JSON lines the test fixture wrote to $D8_PRISM_REPORT (one per
request: method, path, status, the sl-violations Prism found, error code) and
sorts every exchange into:

- contract violation (fails the pass):
  * any violation of an answer (location "response": an undocumented status
    code, header, field or value, a wrong media type);
  * a request the document forbids that the agent accepted (2xx): the
    document is stricter than the agent, or the agent too lax;
  * a route the document does not name that the agent served (2xx);
  * an answer Prism produced itself (application/problem+json): it could
    not pass the exchange on.
- agreed refusal: a request the document forbids that the agent refused too
  (4xx): the negative tests, counted.
- allowed but refused: a request the document allows that the agent answered
  400 (a rule the document cannot state, e.g. a region or image not in the
  agent's configuration), listed for a reader, not a failure.
- bypassed: a wire-level request the fixture sent to the agent directly
  because Prism would re-encode it (malformed or padded JSON, duplicate
  members, no body framing), counted.

One Prism limitation is known and set apart, not counted as a violation:
Prism matches the bearer scheme case-sensitively (/^Bearer\\s/), while RFC
9110 11.1 makes auth schemes case-insensitive and the agent follows it.

Usage: hack/prism-report.py REPORT.jsonl   Exit 1 when any contract
violation was found or when the report holds no request at all.
"""
import collections
import json
import re
import sys

ID_SEG = re.compile(r"^/api/v1/environments/[^/?]+")


def template(path):
    """The route of a request path, so that lines group by route."""
    path = path.split("?", 1)[0]
    return ID_SEG.sub("/api/v1/environments/{id}", path)


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    rows = []
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))

    checked = bypassed = agreed = prism_quirk = 0
    violations = []
    allowed_refused = collections.Counter()
    bypass_why = collections.Counter()
    for r in rows:
        where = f'{r["bin"]}: {r["method"]} {r["path"]} -> {r["status"]}'
        if "bypassed" in r:
            bypassed += 1
            bypass_why[r["bypassed"]] += 1
            continue
        checked += 1
        status = r["status"]
        ok = 200 <= status < 300
        viol = r.get("violations") or []
        if isinstance(viol, str):
            violations.append(f"{where}: Prism cut its report short: {viol[:300]}")
            continue
        if r.get("prismError"):
            violations.append(f"{where}: Prism answered itself (problem+json)")
        request_side = [v for v in viol if v.get("location", [""])[0] == "request"]
        for v in viol:
            loc = ".".join(str(x) for x in v.get("location", []))
            text = f'{where}: {v.get("severity")} {loc}: {v.get("message")}'
            if v.get("location", [""])[0] != "request":
                violations.append(text)
        if request_side and ok:
            quirk = all(
                v.get("message") == "Invalid security scheme used" for v in request_side
            ) and (r.get("authScheme") or "").lower() == "bearer" and r.get("authScheme") != "Bearer"
            if quirk:
                prism_quirk += 1
            else:
                for v in request_side:
                    loc = ".".join(str(x) for x in v.get("location", []))
                    violations.append(
                        f'{where}: the agent accepted a request the document forbids: '
                        f'{v.get("severity")} {loc}: {v.get("message")}'
                    )
        elif request_side:
            agreed += 1
        elif status == 400:
            field = re.sub(r"\[\d+\]", "[N]", r.get("field", ""))
            allowed_refused[(r["method"], template(r["path"]), r.get("code", ""), field)] += 1

    print(f"prism: {checked} requests checked against pkg/api/openapi.yaml, "
          f"{bypassed} sent to the agent directly (wire-level: "
          + (", ".join(f"{n} {w}" for w, n in sorted(bypass_why.items())) or "none") + ")")
    print(f"prism: {agreed} invalid requests refused by the agent as the document says (negative tests)")
    if prism_quirk:
        print(f"prism: {prism_quirk} requests with a lower-case bearer scheme accepted by the agent "
              "(RFC 9110: case-insensitive; Prism's check is case-sensitive, not counted)")
    if allowed_refused:
        print("prism: requests the document allows but the agent refused with 400 "
              "(rules the document cannot state):")
        for (m, p, c, fld), n in sorted(allowed_refused.items()):
            print(f"  {n} x {m} {p}: {c}" + (f" ({fld})" if fld else ""))
    if violations:
        print(f"prism: {len(violations)} contract violations:")
        for v in violations:
            print("  " + v)
        return 1
    if checked == 0:
        print("prism: no request went through Prism")
        return 1
    print("prism: 0 contract violations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
