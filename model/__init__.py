"""Paintstep's engines. Each is imported only when chosen."""
