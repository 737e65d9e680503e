"""History that lasts: every comparison's records in a local SQLite database, owned by who ran it.

``store`` keeps and queries the records (every query takes the owner), ``owners`` says who that is
(a login, a browser's own token, or ``local`` for the CLI), ``exports`` writes downloads into a
folder the app owns, and ``retention`` bounds what piles up (exports, logs, anonymous history).
"""
