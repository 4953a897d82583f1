'''The texts inside an evidence bundle: its README and `check_chain.py`.'''

from __future__ import annotations

from typing import Any

CHECK_CHAIN = '''"""Re-check this bundle's audit chain with Python 3 alone:  python3 check_chain.py

Checks that every event's SHA-256 matches its content, that each event links to
the one before it with no gap, that each personal value still held opens its
commitment (HMAC-SHA256 keyed with its salt), and that every checkpoint
statement names an event of the chain with the hash it has here. Signatures
are checked with openssl (see README.md). Exit status 0: all hold; 1: not.
"""
import hashlib, hmac, json, pathlib, sys

HERE = pathlib.Path(__file__).resolve().parent
FIELDS = ("seq", "at", "actor", "action", "subject", "before", "after", "prev_hash")


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def at(document, pointer):
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        document = document[int(token)] if isinstance(document, list) else document[token]
    return document


problems, hashes, previous = [], {}, None
for name in ("chain.jsonl", "chain-after.jsonl"):
    path = HERE / name
    for line in (path.read_text("utf-8").splitlines() if path.exists() else []):
        event = json.loads(line)
        seq = event["seq"]
        if previous is not None and seq != previous[0] + 1:
            problems.append(f"event {seq}: events {previous[0] + 1}..{seq - 1} are missing")
        if "unreadable" in event:
            problems.append(f"event {seq}: unreadable in the database: {event['unreadable']}")
            previous = (seq, None)
            continue
        body = {key: event[key] for key in FIELDS}
        if event.get("personal"):
            body["personal"] = event["personal"]
        if hashlib.sha256(canonical(body)).hexdigest() != event["hash"]:
            problems.append(f"event {seq}: its content does not match its hash")
        if previous is not None and previous[1] is not None and event["prev_hash"] != previous[1]:
            problems.append(f"event {seq}: does not link to event {previous[0]}")
        for pointer, sealed in (event.get("personal_data") or {}).items():
            if sealed == "[erased]":
                continue
            mac = hmac.new(bytes.fromhex(sealed["salt"]), canonical(sealed["value"]), hashlib.sha256)
            if at({"before": body["before"], "after": body["after"]}, pointer) != "hmac-sha256:" + mac.hexdigest():
                problems.append(f"event {seq}: the personal data at {pointer} does not open its commitment")
        hashes[seq] = event["hash"]
        previous = (seq, event["hash"])

for path in sorted((HERE / "checkpoints").glob("*.json")):
    statement = json.loads(path.read_text("utf-8"))["statement"]
    if statement["seq"] in hashes and hashes[statement["seq"]] != statement["hash"]:
        problems.append(f"{path.name}: event {statement['seq']} has another hash in the chain")

for problem in problems:
    print(problem)
print(f"{len(hashes)} events checked: " + ("all hold" if not problems else f"{len(problems)} problem(s)"))
sys.exit(1 if problems else 0)
'''


def readme(manifest: dict[str, Any]) -> str:
    period = manifest["period"]
    cover = manifest.get("covered_by")
    key = manifest.get("key_id")
    if manifest["events"]:
        span = f"events {manifest['first_seq']} to {manifest['last_seq']} ({manifest['events']} events)"
    else:
        span = "no audit events"
    if cover:
        covered = (f"The period's last event is covered by the checkpoint of event {cover['seq']}, signed "
                   f"{cover['signed_at']} (`{cover['file']}`).")
    else:
        covered = ("No signed checkpoint covers the period's last event: the chain below is only "
                   "self-consistent (a rewrite of the whole chain would not show). Configure "
                   "OPSLOOP_AUDIT_SIGNING_KEY, run `opsloop audit checkpoint`, then build the bundle again.")
    return f"""# opsloop audit evidence

Period: {period['since']} (inclusive) to {period['until']} (exclusive), generated {manifest['generated_at']}.
It holds {span} of the audit chain. {covered}
Signing key id: {key or 'none'} (the SHA-256 of the public key's DER form).

## What is inside

| file | what it is |
|---|---|
| `chain.jsonl` | the audit events of the period, one JSON object per line |
| `chain-after.jsonl` | the events after the period up to the covering checkpoint (absent when not needed) |
| `checkpoints/*.json` | signed checkpoints: "event `seq` of the chain has hash `hash`", as copied out of the database |
| `checkpoints/*.statement`, `*.sig` | the exact signed bytes of each checkpoint, and its raw Ed25519 signature |
| `public-key.pem` | the public key of the signing key |
| `runbook-versions.json`, `runbooks/` | every runbook version a run used in the period, with its content hash and bytes |
| `runbook-runs.jsonl` | those runs step by step, with who approved each approval step and when |
| `remediation.jsonl` | remediation calls (runbook http steps): the request (secrets as names), outcome, approvers |
| `roles.jsonl` | the roles and permissions in effect at the period's start and at each start of the bot in it |
| `manifest.json` | the period, the events it spans, the covering checkpoint, the key id |
| `check_chain.py` | re-checks the chain with Python 3 alone |
| `SHA256SUMS`, `SHA256SUMS.sig` | the SHA-256 of every file, and its signature by the same key |

Each line of the chain is `{{seq, at, actor, action, subject, before, after, personal?, prev_hash}}`
(exactly what is hashed), plus `hash` and `personal_data`. An event's `hash` is the SHA-256 of the
canonical JSON of those fields (keys sorted, no spaces, UTF-8); its `prev_hash` is the hash of the
event before. Personal data (contact emails, names, free text) is not hashed directly: the hashed
field holds `hmac-sha256:<hex>`, the HMAC-SHA256 of the value's canonical JSON keyed with the salt
in `personal_data`. A person erased under GDPR shows `"[erased]"` there: the commitment stays in the
chain, so the chain still verifies, and without the salt it reveals nothing.

## How to verify it

First compare the key id above with the one the company gave you independently
(`openssl pkey -pubin -in public-key.pem -outform DER | sha256sum` prints it). Then:

```sh
sha256sum -c SHA256SUMS                                   # no file was changed
openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig
for f in checkpoints/*.statement; do                      # each checkpoint was signed by that key
  openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin -in "$f" -sigfile "${{f%.statement}}.sig"
done
python3 check_chain.py                                    # hashes, links, commitments, checkpoints
```

`cat checkpoints/*.statement` shows what each checkpoint asserts; `check_chain.py` checks that the
chain has exactly those hashes at those events. Because each event's hash covers the one before it,
the signed checkpoint after the period vouches for every event of the period: editing, removing or
reordering any of them changes the hash the checkpoint recorded.

With opsloop installed: `opsloop audit verify --bundle THIS.zip --public-key KEY.pem` does all of
the above (with the key you were given, it also proves the bundle's key is that key).
"""
