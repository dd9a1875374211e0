"""The control plane: rulesets and models changed without a deploy, by two people, on the record.

store.py keeps versions, proposals and the audit log; listener.py is how an instance hears of a change on
`risk.control` and swaps its scoring core (the runtime announces changes and holds the core).
"""
