"""Trio actors: the supervisor, one PoolActor per IPPool, watchers, status writers."""
