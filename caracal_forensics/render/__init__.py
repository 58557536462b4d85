"""Presentation: the tail --json record, JSON lines, JMESPath, rich tables.

Nothing here queries or decides; each function takes rows already selected (an Arrow
table or record batch of the event schema, or plain rows) and turns them into text.
The report and stats commands reuse ``records`` and ``table``.
"""
