"""The HTTP job service: FastAPI app, routes, schemas, settings (``create_app``)."""
