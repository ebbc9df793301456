"""The HTTP service: one FastAPI app, one router per audience (see ``api/routes/``)."""
