"""Routers: HTTP only; the logic they call lives in plain functions elsewhere."""
