"""Compliance (合规): the wording dictionary and the text-review engine.

- `review.review_text` / `review_many` / `scan_many`: verdicts (block / review / pass) and findings
  with offsets into the original text, from the wording dictionary (Aho–Corasick over normalised
  text, with negation and disclosure rules) and detectors (phones, ID numbers, bank cards,
  WeChat/QQ ids, QR codes, red packets and transfers, outside links). Pure and fast; no database.
- `dictionary`: the wording dictionary per corp over the installation's, versioned and audited.
- `seed`: the installation seed shipped in data/wording_seed.json.
- `cli`: `siyu compliance check`.
"""
