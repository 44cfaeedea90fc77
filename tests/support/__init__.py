"""Shared test support: one table of canned conversations with the verdicts each must produce
(`conversations`), one `free_port` and one `wait_listening` (`net`), one nginx (`nginx`).

Import as `from support.conversations import CONVERSATIONS` (tests/ is on sys.path).
"""
