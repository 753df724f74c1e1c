"""The team stack on one machine: its settings and secrets (``config``), Debian's PostgreSQL
(``postgres``), the servers as processes (``supervisor``, ``servers``) and the operations behind
``digitflow stack`` (``stack``). May import every layer up to ``tracking``; not ``reporting`` or ``sweep``.
"""
