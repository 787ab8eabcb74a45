"""The op-count latency line and its metrics: pure functions, no database, no web.

They sit below the service because both sides use them: the service fits and stores lines
(``service.fitting`` builds on these), and clients such as ``search`` fit a line of their own
on the measurements they fetched or evaluate one the server sent.
"""
