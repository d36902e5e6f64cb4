"""The broker engine: sessions, routing, retained messages, wills and timers.

It never touches sockets or files: connections reach it through a ``Link`` and time
through a ``Clock``; durable state goes through a ``Store``.
"""
