#!/usr/bin/env python3
"""Prints the parts of Cornetta's audit answers a person reads: `show.py VIEW FILE`.

Views: events, status, first-event, notices (exits 2 when a notice's text does not hash
to its SHA-256), verifier-key, checkpoints, verify (exits 2 when the log does not verify).
"""
import hashlib
import json
import sys


def main(view, path):
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if view == "events":
        for e in d["events"]:
            purposes = ",".join(e["purposes"])
            print(f"   {e['recorded_at']}  {e['action']:<9} {purposes:<22} ref {e['reference']}  {e['id']}")
    elif view == "first-event":
        print(d["events"][0]["id"] if d["events"] else "")
    elif view == "status":
        for p in d["purposes"]:
            proof = ", ".join(e["id"] for e in p["proof"]) or "-"
            ended = f", ended by {p['ended_by']['action']} {p['ended_by']['id']}" if p.get("ended_by") else ""
            print(f"   {p['purpose']:<14} consented={str(p['consented']).lower():<5} since {p['since'] or '-'}  proof: {proof}{ended}")
    elif view == "notices":
        bad = 0
        for n in d["notices"]:
            # Recomputed here, not taken from the server: the text an event's hash points at.
            ok = hashlib.sha256(n["canonical_text"].encode("utf-8")).hexdigest() == n["sha256"]
            bad += not ok
            current = "  current" if n["current"] else ""
            print(f"   {n['lang']} v{n['version']:<3} {n['published_at']}  {n['id']}  sha256 {'ok' if ok else 'MISMATCH'}{current}")
        if bad:
            print(f"   {bad} NOTICE TEXTS DO NOT MATCH THEIR HASH: see {path}", file=sys.stderr)
            sys.exit(2)
    elif view == "verifier-key":
        print(d["verifier_key"])
    elif view == "checkpoints":
        rows = d["checkpoints"][-3:]
        for c in rows:
            print(f"   tree size {c['tree_size']:>6}  root {c['root_hash']}  signed {c['signed_at']}")
        if not rows:
            print("   none yet (signed on a schedule; an admin can POST /v1/ledger/checkpoints)")
    elif view == "verify":
        print(f"   ok={str(d['ok']).lower()}: {d['events']} events recomputed, root {d['root']}, "
              f"{d['checkpoints_verified']} checkpoints verified, first problem: {d['first_problem']}")
        if not d["ok"]:
            print(f"   THE LOG DOES NOT VERIFY: see {path}", file=sys.stderr)
            sys.exit(2)
    else:
        sys.exit(f"unknown view {view!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
