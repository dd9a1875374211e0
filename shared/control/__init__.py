"""The control plane: rulesets and models changed without a deploy, by two people, on the record.

store.py keeps versions, proposals and the audit log; announce.py tells every instance on `risk.control`;
listener.py is how an instance hears it and swaps its scoring core (shared.runtime.CoreHolder).
"""
